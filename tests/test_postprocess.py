"""Tests of cxrseg.postprocess: each step against SciPy, and the choice on validation data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from cxrseg import postprocess
from cxrseg.metrics import dice
from cxrseg.postprocess import (
    PostprocessConfig,
    choose_postprocessing,
    default_config,
    fill_holes,
    keep_largest_components,
    postprocess_mask,
    postprocess_masks,
    remove_small_components,
    smooth,
    typical_component_count,
)

DATA = Path(__file__).parents[2] / "shared" / "data"
SIZE = 64


def two_lungs(speck: bool = True) -> np.ndarray:
    """Right lung (image left) larger than the left lung, plus an optional 2x2 speck."""
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[10:50, 8:28] = 1
    mask[12:46, 38:56] = 1
    if speck:
        mask[56:58, 30:32] = 1
    return mask


def random_mask(rng: np.random.Generator, size: int = 48) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.random((size, size)), 1.5)
    return (field > np.quantile(field, 0.55)).astype(np.uint8)


def scipy_keep_largest(mask: np.ndarray, k: int, structure: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask, structure=structure)
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    keep = np.argsort(-areas, kind="stable")[:k] + 1
    return np.isin(labels, keep).astype(np.uint8)


def test_keep_two_components_keeps_both_lungs_and_drops_the_speck():
    out = keep_largest_components(two_lungs(), k=2)
    np.testing.assert_array_equal(out, two_lungs(speck=False))


def test_keep_one_component_keeps_only_the_bigger_lung():
    out = keep_largest_components(two_lungs(), k=1)
    expected = np.zeros_like(out)
    expected[10:50, 8:28] = 1
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(("connectivity", "structure"), [(8, np.ones((3, 3))), (4, None)])
def test_component_labelling_matches_scipy_label(connectivity, structure):
    rng = np.random.default_rng(0)
    for k in (1, 3):
        mask = random_mask(rng)
        got = keep_largest_components(mask, k, connectivity=connectivity)
        np.testing.assert_array_equal(got, scipy_keep_largest(mask, k, structure))


def test_diagonal_pixels_are_one_component_with_8_connectivity_only():
    mask = np.eye(5, dtype=np.uint8)
    assert keep_largest_components(mask, 1).sum() == 5
    assert keep_largest_components(mask, 1, connectivity=4).sum() == 1


def test_remove_small_components_is_relative_to_the_largest_component():
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[0:10, 0:10] = 1  # largest: 100 px
    mask[20:23, 20:23] = 1  # 9 px: under 10 %
    mask[40:44, 40:43] = 1  # 12 px: over 10 %
    out = remove_small_components(mask, 0.1)
    assert out[0:10, 0:10].all()
    assert not out[20:23, 20:23].any()
    assert out[40:44, 40:43].all()


def test_fill_holes_fills_an_enclosed_hole_but_not_a_notch():
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[10:30, 10:30] = 1
    mask[18:22, 18:22] = 0  # hole
    mask[40:60, 10:30] = 1
    mask[48:52, 10:20] = 0  # notch open to the left
    out = fill_holes(mask)
    assert out[18:22, 18:22].all()
    assert not out[48:52, 10:20].any()


def test_fill_holes_matches_scipy_on_random_masks():
    rng = np.random.default_rng(1)
    for _ in range(5):
        mask = 1 - random_mask(rng)  # background blobs become holes
        expected = ndimage.binary_fill_holes(mask).astype(np.uint8)
        np.testing.assert_array_equal(fill_holes(mask), expected)


def test_smooth_matches_scipy_opening_then_closing_with_a_disk():
    rng = np.random.default_rng(2)
    radius = 2
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    disk = x * x + y * y <= radius * radius
    for _ in range(3):
        mask = np.pad(random_mask(rng), 2 * radius + 2)  # away from the border
        expected = ndimage.binary_closing(ndimage.binary_opening(mask, disk), disk)
        np.testing.assert_array_equal(smooth(mask, radius), expected.astype(np.uint8))


def test_smooth_removes_a_speck_and_closes_a_narrow_gap():
    mask = two_lungs(speck=False)
    mask[30, 20] = 0  # one-pixel hole
    mask[5, 5] = 1  # one-pixel speck
    out = smooth(mask, 2)
    assert out[30, 20] == 1
    assert out[5, 5] == 0


def test_smooth_with_radius_zero_returns_the_mask():
    np.testing.assert_array_equal(smooth(two_lungs() * 255, 0), two_lungs())


def test_steps_do_not_modify_their_input():
    mask = two_lungs()
    before = mask.copy()
    for step in (keep_largest_components, remove_small_components, fill_holes, smooth):
        step(mask)
    np.testing.assert_array_equal(mask, before)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: keep_largest_components(m, 0), "k must be"),
        (lambda m: keep_largest_components(m, 1, connectivity=6), "connectivity"),
        (lambda m: remove_small_components(m, 0.0), "min_fraction"),
        (lambda m: remove_small_components(m, 1.5), "min_fraction"),
        (lambda m: smooth(m, -1), "radius"),
        (lambda m: fill_holes(m[None]), "2-D"),
    ],
)
def test_bad_arguments_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call(two_lungs())


def test_config_round_trips_through_json():
    config = PostprocessConfig(keep_components=2, min_fraction=0.2, fill_holes=True)
    assert PostprocessConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_config_from_dict_names_an_unknown_option():
    with pytest.raises(ValueError, match="keep_largest"):
        PostprocessConfig.from_dict({"keep_largest": 2})


@pytest.mark.parametrize(
    "kwargs",
    [{"keep_components": 0}, {"min_fraction": 2.0}, {"smooth_radius": -1}, {"smooth_radius": 1.5}],
)
def test_config_refuses_bad_values(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        PostprocessConfig(**kwargs)


def test_postprocess_mask_applies_steps_in_order():
    mask = two_lungs()
    mask[20:24, 14:18] = 0  # hole in the bigger lung
    config = PostprocessConfig(keep_components=2, fill_holes=True)
    np.testing.assert_array_equal(postprocess_mask(mask, config), two_lungs(speck=False))


def test_postprocess_masks_leaves_unconfigured_structures_unchanged():
    masks = {"lungs": two_lungs(), "heart": two_lungs()}
    out = postprocess_masks(masks, {"lungs": PostprocessConfig(keep_components=1)})
    np.testing.assert_array_equal(out["heart"], two_lungs())
    assert out["lungs"].sum() < two_lungs().sum()


def test_postprocess_masks_names_an_unknown_structure():
    with pytest.raises(ValueError, match="'lung'"):
        postprocess_masks({"lungs": two_lungs()}, {"lung": PostprocessConfig()})


def test_typical_component_count_ignores_specks_and_empty_masks():
    refs = [two_lungs(), two_lungs(speck=False), np.zeros((SIZE, SIZE), np.uint8)]
    assert typical_component_count(refs) == 2
    assert typical_component_count([np.zeros((8, 8), np.uint8)]) is None


@pytest.mark.parametrize(
    ("name", "typical", "k"),
    [("lungs", None, 2), ("foreground", None, 2), ("heart", None, 1), ("heart", 2, 2)],
)
def test_default_config_keeps_two_components_for_both_lungs(name, typical, k):
    assert default_config(name, typical).keep_components == k


def _validation_set(n: int = 4) -> tuple[list[dict], list[dict]]:
    """Two-lung structure predicted with specks; a 'spots' structure predicted perfectly whose
    reference has a real small component that keep-largest would delete."""
    rng = np.random.default_rng(3)
    spots = np.zeros((SIZE, SIZE), dtype=np.uint8)
    spots[5:25, 5:25] = 1
    spots[40:44, 40:44] = 1  # 16 px, 4 % of the big one: typical count stays 1
    preds, refs = [], []
    for _ in range(n):
        noisy = two_lungs(speck=False)
        rows, cols = rng.integers(52, SIZE, 6), rng.integers(0, SIZE, 6)  # below the lungs
        noisy[rows, cols] = 1
        preds.append({"lungs": noisy, "spots": spots.copy()})
        refs.append({"lungs": two_lungs(speck=False), "spots": spots.copy()})
    return preds, refs


def test_choose_keeps_keep_two_components_where_specks_hurt():
    preds, refs = _validation_set()
    config, report = choose_postprocessing(preds, refs)
    assert config["lungs"].keep_components == 2
    lungs = report["structures"]["lungs"]
    assert lungs["dice_after"] > lungs["dice_before"]
    assert lungs["dice_after"] == pytest.approx(1.0)


def test_choose_rejects_steps_that_hurt_or_do_nothing():
    preds, refs = _validation_set()
    config, report = choose_postprocessing(preds, refs)
    assert config["spots"] == PostprocessConfig()
    keep_step = report["structures"]["spots"]["steps"][0]
    assert keep_step["step"] == "keep_components"
    assert keep_step["dice_after"] < keep_step["dice_before"]
    assert not keep_step["kept"]


def test_choose_never_lets_a_structure_get_worse():
    preds, refs = _validation_set()
    _, report = choose_postprocessing(preds, refs)
    for entry in report["structures"].values():
        assert entry["dice_after"] >= entry["dice_before"]
        assert all(not step["worse"] for step in entry["steps"] if step["kept"])


def test_choose_rejects_a_step_that_helps_one_structure_but_hurts_another(monkeypatch):
    """A coupled post-processing (e.g. exclusive labels) must not trade one structure away."""
    original = postprocess.steps.postprocess_masks

    def coupled(masks, config):
        out = original(masks, config)
        if config.get("lungs", PostprocessConfig()).keep_components is not None:
            out["spots"] = np.zeros_like(out["spots"])
        return out

    monkeypatch.setattr(postprocess.steps, "postprocess_masks", coupled)
    preds, refs = _validation_set()
    config, report = choose_postprocessing(preds, refs)
    keep_step = report["structures"]["lungs"]["steps"][0]
    assert keep_step["dice_after"] > keep_step["dice_before"]
    assert keep_step["worse"] == ["spots"]
    assert config["lungs"].keep_components is None


def test_choose_report_is_json_serialisable():
    preds, refs = _validation_set(2)
    config, report = choose_postprocessing(preds, refs)
    assert json.loads(json.dumps(report))["structures"]["lungs"]["config"] == (
        config["lungs"].to_dict()
    )


def test_choose_names_a_structure_missing_from_the_references():
    preds, refs = _validation_set(2)
    del refs[1]["spots"]
    with pytest.raises(ValueError, match="case 1.*'spots'"):
        choose_postprocessing(preds, refs)


def test_choose_refuses_mismatched_case_counts():
    preds, refs = _validation_set(2)
    with pytest.raises(ValueError, match="same non-zero number"):
        choose_postprocessing(preds, refs[:1])


@pytest.mark.realdata
def test_real_lung_masks_have_two_components():
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA}")
    from PIL import Image

    paths = sorted((DATA / "montgomery" / "masks").glob("*.png"))[:3]
    if not paths:
        pytest.skip("no Montgomery masks found")
    masks = [np.asarray(Image.open(p).convert("L")) > 0 for p in paths]
    assert typical_component_count(masks) == 2
    for mask in masks:
        assert dice(keep_largest_components(mask, 2), mask) > 0.99


def _heart_and_clavicles(n: int = 4) -> tuple[list[dict], list[dict]]:
    """A heart predicted with a blob below the diaphragm (the gastric bubble), and a label
    holding both clavicles predicted with a third, spurious bar."""
    heart = np.zeros((SIZE, SIZE), np.uint8)
    heart[20:40, 22:42] = 1
    clavicles = np.zeros((SIZE, SIZE), np.uint8)
    clavicles[4:7, 4:28] = 1
    clavicles[4:7, 36:60] = 1
    preds, refs = [], []
    for _ in range(n):
        blob, bar = heart.copy(), clavicles.copy()
        blob[50:58, 40:48] = 1
        bar[12:14, 28:36] = 1
        preds.append({"heart": blob, "clavicles": bar})
        refs.append({"heart": heart.copy(), "clavicles": clavicles.copy()})
    return preds, refs


def test_choose_offers_keep_largest_to_every_structure_with_its_own_k():
    preds, refs = _heart_and_clavicles()
    config, report = choose_postprocessing(preds, refs)
    assert config["heart"].keep_components == 1
    assert config["clavicles"].keep_components == 2
    tried = [s["value"] for s in report["structures"]["heart"]["steps"]
             if s["step"] == "keep_components"]  # fmt: skip
    assert tried == [1, 2]
