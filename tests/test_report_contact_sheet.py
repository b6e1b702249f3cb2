"""Contact sheet of overlays: colours where the masks are, grid geometry, broken cases shown."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cxrseg.data import discover
from cxrseg.report.contact_sheet import (
    PALETTE,
    contact_sheet,
    overlay,
    pick_evenly,
    write_contact_sheet,
)
from data_builders import standard


def test_overlay_colours_only_the_mask():
    image = np.full((16, 16), 0.5, np.float32)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 1
    out = overlay(image, {"lungs": mask}, alpha=0.5)
    gray = round(0.5 * 255)
    assert out.dtype == np.uint8 and out.shape == (16, 16, 3)
    np.testing.assert_array_equal(out[0, 0], [gray] * 3)  # outside: untouched
    np.testing.assert_array_equal(out[4, 4], PALETTE[0])  # contour: opaque colour
    blend = (0.5 * gray + 0.5 * np.array(PALETTE[0])).astype(np.uint8)
    np.testing.assert_array_equal(out[8, 8], blend)  # inside: translucent fill


def test_overlay_refuses_a_mask_of_another_shape():
    with pytest.raises(ValueError, match="mask 'lungs' has shape \\(8, 8\\)"):
        overlay(np.zeros((16, 16)), {"lungs": np.zeros((8, 8))})


def test_sheet_geometry_and_unreadable_tile():
    image = np.zeros((64, 48), np.float32)  # not square: letterboxed
    tiles = [("a", image, {}), ("b", None, {}), ("c", image, {})]
    sheet = contact_sheet(tiles, ["lungs"], tile=32, columns=2)
    assert sheet.shape == (2 * (32 + 14) + 18, 2 * 32, 3)
    grey_tile = sheet[0:32, 32:64]
    assert (grey_tile == 96).mean() > 0.5


def test_flagged_case_gets_a_red_frame():
    image = np.zeros((32, 32), np.float32)
    sheet = contact_sheet([("a", image, {})], [], tile=32, flagged={"a"})
    np.testing.assert_array_equal(sheet[0, 10], [220, 30, 30])


def test_pick_evenly_keeps_first_and_last():
    items = [str(i) for i in range(10)]
    picked = pick_evenly(items, 4)
    assert len(picked) == 4 and picked[0] == "0" and picked[-1] == "9"
    assert pick_evenly(items[:3], 4) == items[:3]


def test_write_contact_sheet(tmp_path):
    standard(tmp_path / "d", ids=["a", "b", "c"])
    dataset = discover(tmp_path / "d")
    path = write_contact_sheet(tmp_path / "out" / "sheet.png", dataset, max_cases=2, tile=32)
    sheet = np.array(Image.open(path))
    assert sheet.shape == (32 + 14 + 18, 2 * 32, 3)
    assert [p.name for p in path.parent.iterdir()] == ["sheet.png"]


def test_write_contact_sheet_wants_png(tmp_path):
    standard(tmp_path / "d", ids=["a"])
    with pytest.raises(ValueError, match="must end in .png"):
        write_contact_sheet(tmp_path / "sheet.jpg", discover(tmp_path / "d"))
