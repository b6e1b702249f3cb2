"""validate and load_case: pixel checks and statistics; a bad file never stops the rest."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from cxrseg.data import discover, load_case, validate
from cxrseg.errors import InputError
from data_builders import (
    SIZE,
    jsrt_png,
    montgomery,
    radiograph,
    rect_mask,
    standard,
    write_gif,
    write_png,
)


def only(report, kind):
    found = [p for p in report.problems if p.kind == kind]
    assert len(found) == 1, report.problems
    return found[0]


# --- statistics ------------------------------------------------------------------------------


def test_valid_dataset_statistics(tmp_path):
    standard(tmp_path, ids=["a", "b"])
    report = validate(discover(tmp_path))
    assert report.ok and report.problems == []
    assert [c.case_id for c in report.valid_cases] == ["a", "b"]
    stats = report.cases[0]
    image = radiograph(0)
    expected = (rect_mask() > 0).mean()
    assert (stats.height, stats.width, stats.bit_depth, stats.channels) == (SIZE, SIZE, 8, 1)
    assert (stats.raw_min, stats.raw_max) == (image.min(), image.max())
    assert stats.coverage == {"foreground": pytest.approx(expected)}
    assert stats.mask_values == {"a.png": [0, 255]}


def test_sixteen_bit_image_range_is_reported(tmp_path):
    standard(tmp_path, ids=["a"])
    pixels = np.arange(SIZE * SIZE, dtype=np.uint16).reshape(SIZE, SIZE) * 40
    write_png(tmp_path / "images" / "a.png", pixels)
    stats = validate(discover(tmp_path)).cases[0]
    assert (stats.bit_depth, stats.raw_min, stats.raw_max) == (16, 0, pixels.max())


def test_structure_summary(tmp_path):
    standard(tmp_path, ids=["a", "b"], structures=["heart", "lungs"])
    write_png(tmp_path / "masks" / "lungs" / "b.png", rect_mask(value=0))
    summary = validate(discover(tmp_path)).structure_summary()
    covered = (rect_mask(box=(5, 2, 9, 10)) > 0).mean()
    assert summary["lungs"] == {
        "cases": 2,
        "empty": 1,
        "mean": covered / 2,
        "min": 0.0,
        "max": covered,
    }


def test_zero_one_masks_are_binary(tmp_path):
    standard(tmp_path, ids=["a"])
    write_png(tmp_path / "masks" / "a.png", rect_mask(value=1))
    report = validate(discover(tmp_path))
    assert report.ok and report.cases[0].coverage["foreground"] > 0


def test_progress_reports_every_case(tmp_path):
    standard(tmp_path, ids=["a", "b", "c"])
    calls = []
    validate(discover(tmp_path), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_threads_give_the_same_report(tmp_path):
    standard(tmp_path, ids=["a", "b", "c", "d"])
    write_png(tmp_path / "masks" / "b.png", rect_mask(value=7))
    dataset = discover(tmp_path)
    one, two = validate(dataset, workers=1), validate(dataset, workers=3)
    assert one.to_dict() == two.to_dict()


def test_workers_below_one_are_refused(tmp_path):
    standard(tmp_path, ids=["a"])
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        validate(discover(tmp_path), workers=0)


def test_report_is_json_ready(tmp_path):
    standard(tmp_path, ids=["a", "b"])
    (tmp_path / "images" / "b.png").write_bytes(b"")
    data = json.loads(json.dumps(validate(discover(tmp_path)).to_dict()))
    assert (data["valid_pairs"], data["errors"]) == (1, 1)
    assert data["case_stats"][1]["raw_min"] is None


# --- problems, one per bad input ----------------------------------------------------------


def test_mask_with_stray_values_names_file_and_values(tmp_path):
    standard(tmp_path, ids=["a", "b"])
    bad = rect_mask()
    bad[0, 0] = 7
    write_png(tmp_path / "masks" / "b.png", bad)
    report = validate(discover(tmp_path))
    problem = only(report, "mask_values")
    assert problem.severity == "error" and problem.path == tmp_path / "masks" / "b.png"
    assert "{0, 7, 255}" in problem.message and problem.hint
    assert [c.case_id for c in report.valid_cases] == ["a"]


def test_label_values_without_labels_suggest_dataset_json(tmp_path):
    standard(tmp_path, ids=["a"])
    labels = rect_mask(value=1)
    labels[20:24, 20:24] = 2
    write_png(tmp_path / "masks" / "a.png", labels)
    problem = only(validate(discover(tmp_path)), "mask_values")
    assert "look like label indices" in problem.message
    assert '"label_1": 1, "label_2": 2' in problem.hint


def test_label_index_masks_with_dataset_json(tmp_path):
    standard(tmp_path, ids=["a"])
    labels = rect_mask(value=1)
    labels[20:24, 20:24] = 2
    write_png(tmp_path / "masks" / "a.png", labels)
    (tmp_path / "dataset.json").write_text('{"labels": {"background": 0, "heart": 1, "lungs": 2}}')
    dataset = discover(tmp_path)
    report = validate(dataset)
    assert report.ok
    assert report.cases[0].coverage["lungs"] == pytest.approx(16 / SIZE**2)
    _, masks = load_case(dataset.cases[0], dataset)
    np.testing.assert_array_equal(masks["lungs"], (labels == 2).astype(np.uint8))
    np.testing.assert_array_equal(masks["heart"], (labels == 1).astype(np.uint8))


def test_value_outside_declared_labels_is_an_error(tmp_path):
    standard(tmp_path, ids=["a"])
    write_png(tmp_path / "masks" / "a.png", rect_mask(value=3))
    (tmp_path / "dataset.json").write_text('{"labels": {"background": 0, "heart": 1, "lungs": 2}}')
    problem = only(validate(discover(tmp_path)), "mask_values")
    assert "include {3}" in problem.message


def test_absent_label_is_a_warning(tmp_path):
    standard(tmp_path, ids=["a"])
    write_png(tmp_path / "masks" / "a.png", rect_mask(value=1))
    (tmp_path / "dataset.json").write_text('{"labels": {"background": 0, "heart": 1, "lungs": 2}}')
    problem = only(validate(discover(tmp_path)), "empty_mask")
    assert problem.severity == "warning" and "'lungs'" in problem.message


def test_mask_of_another_size(tmp_path):
    standard(tmp_path, ids=["a", "b"])
    write_png(tmp_path / "masks" / "b.png", rect_mask(SIZE + 8))
    report = validate(discover(tmp_path))
    problem = only(report, "size_mismatch")
    assert problem.path.name == "b.png"
    assert f"mask is {SIZE + 8}x{SIZE + 8} but its image b.png is {SIZE}x{SIZE}" in problem.message
    assert math.isnan(report.cases[1].coverage["foreground"])


def test_truncated_image_is_named_and_the_rest_still_checked(tmp_path):
    standard(tmp_path, ids=["a", "b", "c"])
    path = tmp_path / "images" / "b.png"
    path.write_bytes(path.read_bytes()[:60])
    report = validate(discover(tmp_path))
    problem = only(report, "unreadable_image")
    assert problem.path == path and problem.severity == "error" and problem.hint
    assert [c.case_id for c in report.valid_cases] == ["a", "c"]
    assert report.cases[1].coverage["foreground"] > 0  # its mask was still read


def test_zero_byte_mask_is_named(tmp_path):
    standard(tmp_path, ids=["a", "b"])
    (tmp_path / "masks" / "a.png").write_bytes(b"")
    problem = only(validate(discover(tmp_path)), "unreadable_mask")
    assert problem.path.name == "a.png" and "0 bytes" in problem.message


def test_file_that_is_not_an_image_inside_is_named(tmp_path):
    standard(tmp_path, ids=["a"])
    (tmp_path / "images" / "a.png").write_text("hello, I am text")
    problem = only(validate(discover(tmp_path)), "unreadable_image")
    assert problem.path.name == "a.png"


def test_empty_and_full_masks_are_warnings(tmp_path):
    standard(tmp_path, ids=["a", "b", "c"])
    write_png(tmp_path / "masks" / "a.png", rect_mask(value=0))
    write_png(tmp_path / "masks" / "b.png", np.full((SIZE, SIZE), 255, np.uint8))
    report = validate(discover(tmp_path))
    assert [(p.severity, p.kind, p.case_id) for p in report.problems] == [
        ("warning", "empty_mask", "a"),
        ("warning", "full_mask", "b"),
    ]
    assert len(report.valid_cases) == 3


def test_strict_turns_warnings_into_errors(tmp_path):
    standard(tmp_path, ids=["a", "b"])
    write_png(tmp_path / "masks" / "a.png", rect_mask(value=0))
    report = validate(discover(tmp_path, strict=True))
    assert [p.severity for p in report.problems] == ["error"]
    assert [c.case_id for c in report.valid_cases] == ["b"]


def test_discovery_problems_are_part_of_the_report(tmp_path):
    standard(tmp_path, ids=["a"])
    write_png(tmp_path / "images" / "orphan.png", radiograph(2))
    report = validate(discover(tmp_path))
    assert only(report, "orphan_image").path.name == "orphan.png"


def test_raise_for_errors_lists_the_files(tmp_path):
    standard(tmp_path, ids=["a", "b"])
    (tmp_path / "masks" / "b.png").write_bytes(b"")
    report = validate(discover(tmp_path))
    with pytest.raises(InputError, match=r"(?s)1 error in the dataset.*b\.png"):
        report.raise_for_errors()


def test_validation_leaves_files_untouched(tmp_path):
    standard(tmp_path, ids=["a", "b"])
    (tmp_path / "masks" / "b.png").write_bytes(b"")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    validate(discover(tmp_path))
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


# --- load_case ----------------------------------------------------------------------------


def test_load_case_returns_float_image_and_binary_masks(tmp_path):
    montgomery(tmp_path)
    dataset = discover(tmp_path)
    image, masks = load_case(dataset.cases[0], dataset)
    assert image.dtype == np.float32 and image.shape == (SIZE, SIZE)
    np.testing.assert_allclose(image, radiograph(0) / 255.0, atol=1e-6)
    assert list(masks) == ["left_lung", "right_lung"]
    left = np.array(Image.open(tmp_path / "ManualMask/leftMask/MCUCXR_0001_0.png")) > 0
    np.testing.assert_array_equal(masks["left_lung"], left.astype(np.uint8))


def test_load_case_unions_the_files_of_a_structure(tmp_path):
    montgomery(tmp_path)
    left, right = tmp_path / "ManualMask/leftMask", tmp_path / "ManualMask/rightMask"
    dataset = discover(images=tmp_path / "CXR_png", masks={"lungs": [left, right]})
    _, masks = load_case(dataset.cases[0], dataset)
    expected = (np.array(Image.open(left / "MCUCXR_0001_0.png")) > 0) | (
        np.array(Image.open(right / "MCUCXR_0001_0.png")) > 0
    )
    assert masks["lungs"].dtype == np.uint8
    np.testing.assert_array_equal(masks["lungs"], expected.astype(np.uint8))


def test_load_case_refuses_stray_values(tmp_path):
    standard(tmp_path, ids=["a"])
    write_png(tmp_path / "masks" / "a.png", rect_mask(value=7) | rect_mask(box=(20, 20, 24, 24)))
    dataset = discover(tmp_path)
    with pytest.raises(InputError, match=r"a\.png.*\{0, 7, 255\}"):
        load_case(dataset.cases[0], dataset)


def test_load_case_refuses_another_size(tmp_path):
    standard(tmp_path, ids=["a"])
    write_png(tmp_path / "masks" / "a.png", rect_mask(SIZE * 2))
    dataset = discover(tmp_path)
    with pytest.raises(InputError, match="mask is 64x64 but its image a.png is 32x32"):
        load_case(dataset.cases[0], dataset)


def test_jsrt_half_size_scr_masks_are_enlarged(tmp_path):
    jsrt_png(tmp_path, {"fold1": ["JPCLN001"]}, image_size=64)
    dataset = discover(tmp_path)
    assert validate(dataset).ok
    image, masks = load_case(dataset.cases[0], dataset)
    gif = np.array(Image.open(tmp_path / "scratch/fold1/masks/left lung/JPCLN001.gif")) > 0
    assert image.shape == (64, 64)
    np.testing.assert_array_equal(
        masks["left_lung"], np.kron(gif, np.ones((2, 2))).astype(np.uint8)
    )


@pytest.fixture(scope="session")
def jsrt_img(tmp_path_factory):
    """One JSRT-sized raw image: 2048 x 2048 big-endian 16-bit, 12-bit values."""
    root = tmp_path_factory.mktemp("jsrt")
    pixels = np.random.default_rng(0).integers(0, 4096, (2048, 2048)).astype(">u2")
    (root / "All247images").mkdir()
    (root / "All247images" / "JPCLN001.IMG").write_bytes(pixels.tobytes())
    write_gif(root / "masks" / "left lung" / "JPCLN001.gif", rect_mask(1024, (100, 100, 900, 500)))
    return root, pixels


def test_jsrt_img_with_scr_gif(jsrt_img):
    root, pixels = jsrt_img
    dataset = discover(root)
    report = validate(dataset)
    stats = report.cases[0]
    assert report.ok and dataset.layout == "jsrt"
    assert (stats.height, stats.width, stats.raw_min, stats.raw_max) == (
        2048,
        2048,
        pixels.min(),
        pixels.max(),
    )
    assert stats.coverage["left_lung"] == pytest.approx(800 * 400 / 1024**2)
