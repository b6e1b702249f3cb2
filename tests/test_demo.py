"""``cxrseg demo``: the whole pipeline end to end (quick variant), and its folder rules.

One quick demo runs through the CLI for the whole module (about 20 s on 2 busy cores); the
tests read what it wrote. The full demo (Dice > 0.9) takes minutes and is measured by hand
(docs/benchmarks.md), not here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrseg.cli import app
from cxrseg.demo import DEMO_STRUCTURES, MARKER, DemoSettings
from cxrseg.errors import InputError


@pytest.fixture(scope="module")
def piped_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[bool]]:
    """A quick demo with --overwrite over an interrupted earlier demo and a user's file, its
    stdout a pipe read line by line: the lines, and whether the demo was still running when
    each one arrived."""
    out = tmp_path_factory.mktemp("demo") / "cxrseg-demo"
    (out / "run").mkdir(parents=True)
    (out / "run" / "stale.txt").write_text("from the interrupted run")
    (out / MARKER).write_text(json.dumps({"status": "running"}))
    (out / "notes.txt").write_text("the user's own file")
    command = [sys.executable, "-m", "cxrseg", "demo", "--quick", "--out", str(out),
               "--overwrite", "-q"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    lines, running = [], []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        assert process.stdout is not None
        for line in process.stdout:
            running.append(process.poll() is None)
            lines.append(line.rstrip("\n"))
    assert process.returncode == 0, "\n".join(lines)
    return out, lines, running


@pytest.fixture(scope="module")
def demo(piped_demo: tuple[Path, list[str], list[bool]]) -> tuple[Path, str]:
    out, lines, _ = piped_demo
    return out, "\n".join(lines)


def test_piped_demo_names_its_folder_first(piped_demo: tuple[Path, list[str], list[bool]]) -> None:
    out, lines, _ = piped_demo
    assert lines[0].startswith("cxrseg demo: writing into ")
    assert lines[0].endswith(str(out.resolve()))


def test_piped_demo_shows_each_epoch_while_it_runs(
    piped_demo: tuple[Path, list[str], list[bool]],
) -> None:
    _, lines, running = piped_demo
    epochs = [i for i, line in enumerate(lines) if line.strip().startswith("epoch ")]
    assert [lines[i].split(":")[0].strip() for i in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert running[epochs[0]]  # the line reached the pipe before the demo ended


def test_quick_demo_writes_every_stage(demo: tuple[Path, str]) -> None:
    out, _ = demo
    test_ids = sorted(p.stem for p in (out / "test-phantoms" / "images").glob("*.png"))
    assert len(test_ids) == DemoSettings.quick().test_phantoms
    for name in DEMO_STRUCTURES:
        predicted = sorted(p.stem for p in (out / "predictions" / "masks" / name).glob("*.png"))
        assert predicted == test_ids
    written = [
        "evaluation/report.html",
        "evaluation/cases.csv",
        "evaluation/summary.json",
        "run/best/model.safetensors",
        "run/metrics.csv",
        "augmented/manifest.jsonl",
    ]
    for path in written:
        assert (out / path).is_file(), path


def test_quick_demo_reports_finite_dice_and_the_report_path(demo: tuple[Path, str]) -> None:
    out, stdout = demo
    record = json.loads((out / MARKER).read_text())
    assert record["status"] == "finished"
    assert set(record["dice"]) == set(DEMO_STRUCTURES)
    assert all(0.0 <= value <= 1.0 for value in record["dice"].values())
    assert math.isfinite(record["mean_dice"])
    assert f"{record['mean_dice']:.3f}" in stdout
    assert "report.html" in stdout.replace("\n", "")
    for step in ("phantoms", "augment", "train", "predict", "evaluate"):
        assert step in stdout


def test_overwrite_replaces_the_earlier_demo_but_keeps_other_files(demo: tuple[Path, str]) -> None:
    out, _ = demo
    assert (out / "notes.txt").read_text() == "the user's own file"
    assert not (out / "run" / "stale.txt").exists()


def test_augmented_samples_come_from_training_phantoms_only(demo: tuple[Path, str]) -> None:
    out, _ = demo
    splits = json.loads((out / "training-set" / "splits.json").read_text())
    fold = splits["folds"][0]
    manifest = (out / "augmented" / "manifest.jsonl").read_text().splitlines()
    sources = {json.loads(line)["source_id"] for line in manifest}
    assert sources <= set(fold["train"])
    assert not sources & set(fold["val"])
    augmented = {json.loads(line)["id"] for line in manifest}
    assert augmented <= set(fold["train"]) and not augmented & set(fold["val"])


def test_test_phantoms_differ_from_training_phantoms(demo: tuple[Path, str]) -> None:
    out, _ = demo

    def digests(folder: Path) -> set[str]:
        return {hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.png")}

    assert not digests(out / "phantoms" / "images") & digests(out / "test-phantoms" / "images")


def test_earlier_demo_is_kept_without_overwrite(demo: tuple[Path, str]) -> None:
    out, _ = demo
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 2
    assert "--overwrite" in result.stderr
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_folder_of_other_files_is_refused_even_with_overwrite(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(tmp_path), "--overwrite"])
    assert result.exit_code == 2
    assert "no earlier demo" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_unknown_structure_is_refused_by_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--quick", "--out", str(tmp_path / "d"), "--structures", "lungs"]
    )
    assert result.exit_code == 2
    assert "lungs" in result.stderr and "left_lung" in result.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("change", "name"),
    [({"size": 100}, "size=100"), ({"epochs": 0}, "epochs=0"), ({"seed": -1}, "seed=-1"),
     ({"phantoms": 2.5}, "phantoms=2.5")],
)  # fmt: skip
def test_bad_settings_are_refused_by_name(change: dict[str, object], name: str) -> None:
    with pytest.raises(InputError, match=name):
        DemoSettings.full(**change)
