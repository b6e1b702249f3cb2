"""`cxrseg inspect`: tables, JSON, contact sheet, exit status; the input is never modified."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from cxrseg.cli import app
from data_builders import montgomery, radiograph, rect_mask, standard, tree_state, write_png

runner = CliRunner()


def inspect(*args: str):
    return runner.invoke(app, ["inspect", *map(str, args)])


def test_clean_dataset_exits_zero_with_counts(tmp_path):
    standard(tmp_path, ids=["case1", "case2", "case10"])
    result = inspect(tmp_path)
    assert result.exit_code == 0, result.output
    assert "3 valid pairs, 0 errors, 0 warnings" in result.output
    assert result.output.index("case2") < result.output.index("case10")


def test_errors_exit_one_and_name_the_file(tmp_path):
    standard(tmp_path, ids=["a", "b"])
    bad = rect_mask()
    bad[0, 0] = 7
    write_png(tmp_path / "masks" / "b.png", bad)
    result = inspect(tmp_path)
    assert result.exit_code == 1
    assert "masks/b.png" in result.output and "{0, 7, 255}" in result.output
    assert "1 valid pairs, 1 errors, 0 warnings" in result.output


def test_warnings_alone_exit_zero_and_strict_exits_one(tmp_path):
    standard(tmp_path, ids=["a"])
    write_png(tmp_path / "images" / "orphan.png", radiograph(1))
    relaxed, strict = inspect(tmp_path), inspect(tmp_path, "--strict")
    assert relaxed.exit_code == 0 and "images/orphan.png" in relaxed.output
    assert strict.exit_code == 1 and "0 warnings" in strict.output


def test_missing_folder_exits_two_with_one_message(tmp_path):
    result = inspect(tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "nowhere: dataset folder not found" in result.output


def test_json_to_stdout_is_parseable(tmp_path):
    standard(tmp_path / "d", ids=["a", "b"])
    result = runner.invoke(app, ["inspect", str(tmp_path / "d"), "--json", "-"])
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert (summary["valid_pairs"], summary["structures"]) == (2, ["foreground"])
    assert [c["case_id"] for c in summary["case_stats"]] == ["a", "b"]


def test_json_file_and_contact_sheet_are_written_outside_the_data(tmp_path):
    montgomery(tmp_path / "d")
    out = tmp_path / "out"
    result = inspect(tmp_path / "d", "--json", out / "s.json", "--sheet", out / "sheet.png")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "s.json").read_text())["layout"] == "montgomery"
    sheet = np.array(Image.open(out / "sheet.png"))
    assert sheet.ndim == 3 and sheet.shape[1] == 2 * 128  # two cases side by side


def test_refuses_to_write_inside_the_dataset(tmp_path):
    standard(tmp_path, ids=["a"])
    before = tree_state(tmp_path)
    result = inspect(tmp_path, "--sheet", tmp_path / "sheet.png")
    assert result.exit_code == 2 and "inside the dataset" in result.output
    assert tree_state(tmp_path) == before


def test_bad_input_leaves_every_file_untouched(tmp_path):
    standard(tmp_path, ids=["a", "b", "c"])
    (tmp_path / "images" / "b.png").write_bytes(b"")
    write_png(tmp_path / "masks" / "c.png", rect_mask(48))
    (tmp_path / "images" / "notes.txt").write_text("x")
    before = tree_state(tmp_path)
    result = inspect(tmp_path)
    assert result.exit_code == 1
    assert "0 bytes" in result.output and "mask is 48x48" in result.output
    assert "Ignored 1 files that are not images: images/notes.txt" in result.output
    assert tree_state(tmp_path) == before


def test_explicit_named_mask_folders(tmp_path):
    montgomery(tmp_path)
    result = inspect(
        "--images",
        tmp_path / "CXR_png",
        "--masks",
        f"lungs={tmp_path / 'ManualMask/leftMask'}",
        "--masks",
        f"lungs={tmp_path / 'ManualMask/rightMask'}",
    )
    assert result.exit_code == 0, result.output
    assert "explicit layout, 2 cases, structures: lungs" in result.output


def test_malformed_masks_option(tmp_path):
    standard(tmp_path)
    result = inspect("--images", tmp_path / "images", "--masks", "a", "--masks", "b")
    assert result.exit_code == 2 and "NAME=DIR" in result.output


def test_mask_suffix_option(tmp_path):
    write_png(tmp_path / "images" / "a.png", radiograph(0))
    write_png(tmp_path / "masks" / "a_gt.png", rect_mask())
    assert inspect(tmp_path, "--mask-suffix", "_gt").exit_code == 0


def test_limit_collapses_the_case_table(tmp_path):
    standard(tmp_path, ids=[f"c{i}" for i in range(1, 9)])
    result = inspect(tmp_path, "--limit", "4")
    assert "... 4 more" in result.output
    assert "c1 " in result.output and "c8 " in result.output and "c5 " not in result.output
