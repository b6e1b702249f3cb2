"""Open the evaluation report in headless Chromium: it renders cleanly, images load, order holds.

Needs Debian's ``chromium`` at /usr/bin/chromium and Playwright for Python (the ``test`` extra);
Playwright's own browser download is never used. Skipped with the reason when either is absent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from cxrseg.evaluation import EvaluationResult, evaluate
from cxrseg.io import read_mask, write_mask
from cxrseg.phantom import STRUCTURES, write_phantom_dataset

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
)

WORST = 4


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> EvaluationResult:
    """Report of 8 phantoms whose predictions are dilated by a case-dependent amount."""
    root = tmp_path_factory.mktemp("browser")
    ids = write_phantom_dataset(root / "data", 8, size=64, seed=5)
    for structure in STRUCTURES:
        for index, case_id in enumerate(ids):
            mask = read_mask(root / "data" / "masks" / structure / f"{case_id}.png")
            if index % 3:  # cases 0, 3, 6 stay exact; the others grow by 1..4 pixels
                side = 2 * (index % 5) + 1
                mask = cv2.dilate(mask, np.ones((side, side), np.uint8))
            write_mask(root / "pred" / "masks" / structure / f"{case_id}.png", mask)
    return evaluate(root / "pred", root / "data", root / "out", worst=WORST)


@pytest.fixture(scope="module")
def page(report: EvaluationResult) -> Iterator[tuple[Any, list[str]]]:
    """The report opened in Chromium, with the console errors and page errors it produced."""
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        tab.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
        tab.goto(report.report_path.resolve().as_uri(), wait_until="load")
        yield tab, errors
        browser.close()


def test_report_renders_without_console_or_page_errors(page):
    tab, errors = page
    assert tab.title() == "cxrseg evaluation"
    assert errors == []


def test_every_image_loads(page):
    tab, _ = page
    images = tab.evaluate(
        "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
    )
    assert len(images) == WORST
    assert all(complete and width > 0 for _, complete, width in images), images


def test_worst_case_table_is_sorted_by_ascending_mean_dice(page, report):
    tab, _ = page
    cells = tab.eval_on_selector_all(
        "#worst-cases > tbody > tr > td.mean-dice", "cells => cells.map(c => c.dataset.value)"
    )
    values = [float(v) for v in cells]
    assert len(values) == WORST
    assert values == sorted(values)
    assert values == [case.mean_dice for case in report.worst(WORST)]


def test_box_plots_are_drawn_for_every_metric(page, report):
    tab, _ = page
    labels = tab.eval_on_selector_all("svg[role=img]", "s => s.map(e => e.ariaLabel)")
    assert len(labels) == len(report.metrics)


def test_clicking_a_header_sorts_the_full_table(page):
    tab, _ = page
    tab.click("#all-cases thead th:nth-child(3)")  # dice
    values = tab.eval_on_selector_all(
        "#all-cases tbody tr td:nth-child(3)", "cells => cells.map(c => +c.dataset.value)"
    )
    assert values == sorted(values)
    assert len(values) == 8 * len(STRUCTURES)


def test_screenshot_can_be_taken(page, tmp_path):
    """A full-page screenshot, kept when CXRSEG_SCREENSHOT names a file (to look at it)."""
    import os

    tab, _ = page
    target = tmp_path / "report.png"
    tab.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
    if os.environ.get("CXRSEG_SCREENSHOT"):
        shutil.copy(target, os.environ["CXRSEG_SCREENSHOT"])
