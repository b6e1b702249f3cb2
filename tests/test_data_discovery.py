"""cxrseg.data.discover: layouts, pairing by case id, and every problem named by file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxrseg.data import (
    Case,
    case_id_from_mask,
    discover,
    natural_key,
    structure_name,
)
from cxrseg.errors import InputError
from data_builders import (
    jsrt_png,
    montgomery,
    radiograph,
    rect_mask,
    shenzhen,
    standard,
    write_png,
)


def kinds(dataset) -> list[tuple[str, str, str]]:
    return [(p.severity, p.kind, p.path.name if p.path else "") for p in dataset.problems]


# --- naming rules ------------------------------------------------------------------------


def test_natural_key_orders_numbers_by_value():
    ids = ["case10", "case2", "Case1", "case1b", "case01"]
    assert sorted(ids, key=natural_key) == ["case01", "Case1", "case1b", "case2", "case10"]


def test_structure_name_is_snake_case():
    assert [structure_name(n) for n in ("left lung", "Left-Lung", "rightMask", " heart ")] == [
        "left_lung",
        "left_lung",
        "right_mask",
        "heart",
    ]


def test_structure_name_without_letters_is_refused():
    with pytest.raises(InputError, match="no letters or digits"):
        structure_name("--")


@pytest.mark.parametrize(
    ("stem", "case_id"),
    [
        ("CHNCXR_0001_0_mask", "CHNCXR_0001_0"),
        ("a-mask", "a"),
        ("a_LABEL", "a"),
        ("a_seg", "a"),
        ("a", "a"),
        ("_mask", "_mask"),  # never strip a whole name
    ],
)
def test_mask_suffix_is_stripped_once(stem, case_id):
    assert case_id_from_mask(stem) == case_id


# --- layouts -------------------------------------------------------------------------------


def test_standard_single_folder_pairs_in_natural_order(tmp_path):
    standard(tmp_path, ids=["case10", "case2", "case1"])
    dataset = discover(tmp_path)
    assert dataset.layout == "standard"
    assert dataset.case_ids == ["case1", "case2", "case10"]
    assert dataset.structures == ["foreground"]
    assert dataset.cases[0] == Case(
        "case1", tmp_path / "images" / "case1.png", {"foreground": [tmp_path / "masks/case1.png"]}
    )
    assert dataset.problems == []


def test_standard_subfolders_are_structures(tmp_path):
    standard(tmp_path, structures=["Left Lung", "heart"])
    dataset = discover(tmp_path)
    assert dataset.layout == "standard"
    assert dataset.structures == ["heart", "left_lung"]  # folder names, natural order
    assert dataset.cases[0].masks["left_lung"] == [tmp_path / "masks/Left Lung/case1.png"]


def test_dataset_json_orders_structure_folders(tmp_path):
    standard(tmp_path, structures=["heart", "left_lung", "right_lung"])
    labels = {"background": 0, "right_lung": 1, "left_lung": 2, "heart": 3}
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": labels}))
    assert discover(tmp_path).structures == ["right_lung", "left_lung", "heart"]


def test_dataset_json_names_the_single_structure(tmp_path):
    standard(tmp_path)
    (tmp_path / "dataset.json").write_text('{"labels": {"background": 0, "lungs": 1}}')
    dataset = discover(tmp_path)
    assert dataset.structures == ["lungs"]
    assert dataset.labels is None  # one label: a binary mask


def test_dataset_json_with_several_labels_makes_label_index_masks(tmp_path):
    standard(tmp_path)
    (tmp_path / "dataset.json").write_text(
        '{"labels": {"0": "background", "1": "heart", "2": "lungs"}}'
    )
    dataset = discover(tmp_path)
    assert dataset.structures == ["heart", "lungs"]
    assert dataset.labels == {"heart": 1, "lungs": 2}
    mask = tmp_path / "masks" / "case1.png"
    assert dataset.cases[0].masks == {"heart": [mask], "lungs": [mask]}


def test_labels_argument_overrides_dataset_json(tmp_path):
    standard(tmp_path)
    (tmp_path / "dataset.json").write_text('{"labels": {"background": 0, "lungs": 1}}')
    assert discover(tmp_path, labels={"a": 1, "b": 2}).structures == ["a", "b"]


def test_broken_dataset_json_is_named(tmp_path):
    standard(tmp_path)
    (tmp_path / "dataset.json").write_text('{"labels": {"lungs": 1.5}}')
    with pytest.raises(InputError, match="dataset.json.*1.5"):
        discover(tmp_path)


def test_explicit_folders(tmp_path):
    standard(tmp_path / "d")
    dataset = discover(images=tmp_path / "d/images", masks=tmp_path / "d/masks")
    assert dataset.layout == "explicit"
    assert dataset.case_ids == ["case1", "case2"]
    assert dataset.root is None


def test_explicit_named_folders_union_repeated_names(tmp_path):
    montgomery(tmp_path)
    left, right = tmp_path / "ManualMask/leftMask", tmp_path / "ManualMask/rightMask"
    dataset = discover(images=tmp_path / "CXR_png", masks={"Lungs": [left, right]})
    assert dataset.structures == ["lungs"]
    assert dataset.cases[0].masks["lungs"] == [
        left / "MCUCXR_0001_0.png",
        right / "MCUCXR_0001_0.png",
    ]


def test_montgomery_layout_keeps_left_and_right_lungs(tmp_path):
    montgomery(tmp_path)
    dataset = discover(tmp_path)
    assert dataset.layout == "montgomery"
    assert dataset.structures == ["left_lung", "right_lung"]
    assert dataset.case_ids == ["MCUCXR_0001_0", "MCUCXR_0002_1"]
    assert dataset.cases[0].masks["left_lung"] == [
        tmp_path / "ManualMask/leftMask/MCUCXR_0001_0.png"
    ]


def test_shenzhen_layout_strips_mask_suffix(tmp_path):
    shenzhen(tmp_path)
    dataset = discover(tmp_path)
    assert dataset.layout == "shenzhen"
    assert dataset.structures == ["lungs"]
    assert dataset.cases[1].masks["lungs"] == [tmp_path / "mask/CHNCXR_0002_1_mask.png"]
    assert dataset.problems == []


def test_jsrt_layout_merges_scr_folds(tmp_path):
    jsrt_png(tmp_path, {"fold1": ["JPCLN001", "JPCNN010"], "fold2": ["JPCLN002"]})
    dataset = discover(tmp_path)
    assert dataset.layout == "jsrt"
    assert dataset.structures == [
        "heart",
        "left_clavicle",
        "left_lung",
        "right_clavicle",
        "right_lung",
    ]
    assert dataset.case_ids == ["JPCLN001", "JPCLN002", "JPCNN010"]
    assert dataset.cases[1].masks["left_lung"] == [
        tmp_path / "scratch/fold2/masks/left lung/JPCLN002.gif"
    ]


def test_jsrt_layout_finds_raw_img_files(tmp_path):
    (tmp_path / "All247images").mkdir()
    (tmp_path / "All247images" / "JPCLN001.IMG").write_bytes(b"\0" * 16)  # never read here
    write_png(tmp_path / "masks" / "left lung" / "JPCLN001.png", rect_mask())
    dataset = discover(tmp_path)
    assert dataset.layout == "jsrt"
    assert dataset.cases[0].image.name == "JPCLN001.IMG"


def test_forced_layout_that_does_not_match_names_what_is_missing(tmp_path):
    standard(tmp_path)
    with pytest.raises(InputError, match="CXR_png"):
        discover(tmp_path, layout="montgomery")


def test_unknown_layout_name_is_refused(tmp_path):
    standard(tmp_path)
    with pytest.raises(InputError, match="unknown layout 'nnunet'"):
        discover(tmp_path, layout="nnunet")


# --- folders that leave nothing to do: InputError at once ----------------------------------


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match="not found") as info:
        discover(tmp_path / "nope")
    assert info.value.path == tmp_path / "nope"


def test_empty_folder(tmp_path):
    with pytest.raises(InputError, match="folder is empty"):
        discover(tmp_path)


def test_images_without_masks_folder(tmp_path):
    write_png(tmp_path / "images" / "a.png", radiograph(0))
    with pytest.raises(InputError, match="no masks folder next to the 1 images") as info:
        discover(tmp_path)
    assert "masks" in str(info.value.hint)


def test_empty_masks_folder(tmp_path):
    write_png(tmp_path / "images" / "a.png", radiograph(0))
    (tmp_path / "masks").mkdir()
    with pytest.raises(InputError, match="no mask files"):
        discover(tmp_path)


def test_images_folder_without_images(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "notes.txt").write_text("x")
    write_png(tmp_path / "masks" / "a.png", rect_mask())
    with pytest.raises(InputError, match=r"no image files .*1 other files"):
        discover(tmp_path)


def test_loose_images_without_layout(tmp_path):
    write_png(tmp_path / "a.png", radiograph(0))
    with pytest.raises(InputError, match="directly in the folder"):
        discover(tmp_path)


def test_no_pair_at_all_names_an_example_of_each_side(tmp_path):
    write_png(tmp_path / "images" / "a.png", radiograph(0))
    write_png(tmp_path / "masks" / "b.png", rect_mask())
    with pytest.raises(InputError, match="image 'a' and mask 'b'"):
        discover(tmp_path)


def test_folder_and_explicit_folders_together_are_refused(tmp_path):
    standard(tmp_path)
    with pytest.raises(InputError, match="not both"):
        discover(tmp_path, images=tmp_path / "images", masks=tmp_path / "masks")


def test_images_without_masks_argument(tmp_path):
    standard(tmp_path)
    with pytest.raises(InputError, match="without masks"):
        discover(images=tmp_path / "images")


# --- per-file problems: recorded, named, nothing dropped silently --------------------------


def test_orphans_both_ways_are_named(tmp_path):
    standard(tmp_path, ids=["a", "b"])
    write_png(tmp_path / "images" / "c.png", radiograph(3))
    write_png(tmp_path / "masks" / "d.png", rect_mask())
    dataset = discover(tmp_path)
    assert dataset.case_ids == ["a", "b"]
    assert kinds(dataset) == [
        ("warning", "orphan_image", "c.png"),
        ("warning", "orphan_mask", "d.png"),
    ]


def test_orphan_mask_hint_suggests_the_suffix(tmp_path):
    standard(tmp_path, ids=["a"])
    write_png(tmp_path / "images" / "b.png", radiograph(1))
    write_png(tmp_path / "masks" / "b_m.png", rect_mask())
    dataset = discover(tmp_path)
    orphan = next(p for p in dataset.problems if p.kind == "orphan_mask")
    assert "suffix '_m'" in orphan.message


def test_configurable_mask_suffix(tmp_path):
    write_png(tmp_path / "images" / "b.png", radiograph(1))
    write_png(tmp_path / "masks" / "b_m.png", rect_mask())
    assert discover(tmp_path, mask_suffixes=["_m"]).case_ids == ["b"]


def test_duplicate_ids_are_errors_naming_both_files(tmp_path):
    standard(tmp_path, ids=["a", "b"])
    write_png(tmp_path / "images" / "a.tif", radiograph(5))
    dataset = discover(tmp_path)
    assert dataset.case_ids == ["b"]
    (problem,) = dataset.problems
    assert (problem.severity, problem.kind, problem.case_id) == ("error", "duplicate_id", "a")
    assert "a.png" in problem.message and "a.tif" in problem.message


def test_case_missing_one_structure_is_an_error(tmp_path):
    standard(tmp_path, ids=["a", "b"], structures=["heart", "lungs"])
    (tmp_path / "masks" / "heart" / "b.png").unlink()
    dataset = discover(tmp_path)
    assert dataset.case_ids == ["a"]
    (problem,) = dataset.problems
    assert problem.kind == "missing_structure" and "heart" in problem.message


def test_jpeg_mask_is_refused_by_name(tmp_path):
    standard(tmp_path, ids=["a", "b"])
    (tmp_path / "masks" / "b.png").unlink()
    (tmp_path / "masks" / "b.jpg").write_bytes(b"not decoded at discovery")
    dataset = discover(tmp_path)
    assert dataset.case_ids == ["a"]
    assert kinds(dataset) == [("error", "lossy_mask", "b.jpg")]


def test_non_image_files_are_ignored_and_listed(tmp_path):
    standard(tmp_path)
    (tmp_path / "images" / "notes.txt").write_text("x")
    (tmp_path / "masks" / "Thumbs.db").write_bytes(b"x")
    (tmp_path / "images" / ".DS_Store").write_bytes(b"x")
    dataset = discover(tmp_path)
    assert [p.name for p in dataset.ignored] == ["notes.txt", "Thumbs.db"]
    assert dataset.problems == []


def test_strict_makes_every_problem_an_error(tmp_path):
    standard(tmp_path, ids=["a"])
    write_png(tmp_path / "images" / "c.png", radiograph(3))
    dataset = discover(tmp_path, strict=True)
    assert [p.severity for p in dataset.problems] == ["error"]
    assert dataset.strict


def test_discovery_does_not_read_pixels(tmp_path):
    standard(tmp_path, ids=["a"])
    (tmp_path / "images" / "a.png").write_bytes(b"")  # zero bytes: only validation can tell
    assert discover(tmp_path).case_ids == ["a"]


def test_contains_tells_input_folders(tmp_path):
    standard(tmp_path / "d")
    dataset = discover(tmp_path / "d")
    assert dataset.contains(tmp_path / "d" / "sheet.png")
    assert not dataset.contains(tmp_path / "out" / "sheet.png")


def test_discovery_leaves_files_untouched(tmp_path):
    standard(tmp_path, ids=["a", "b"])
    write_png(tmp_path / "images" / "c.png", radiograph(3))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    discover(tmp_path)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not Path(tmp_path / "splits.json").exists()
