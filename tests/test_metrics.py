"""Tests of cxrseg.metrics: hand-made cases, the empty-mask rule, SciPy and brute force."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from cxrseg import metrics
from cxrseg.metrics import (
    confusion,
    dice,
    dice_per_structure,
    hd95,
    jaccard,
    mask_boundary,
    mean_contour_distance,
    segmentation_metrics,
    summarize,
    surface_distances,
)

DATA = Path(__file__).parents[2] / "shared" / "data"


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[top : top + side, left : left + side] = 1
    return mask


def blob(rng: np.random.Generator, size: int = 48, sigma: float = 3.0) -> np.ndarray:
    """Random smooth blobs, some touching the image border."""
    field = ndimage.gaussian_filter(rng.random((size, size)), sigma)
    return (field > np.median(field)).astype(np.uint8)


def brute_force_distances(
    a: np.ndarray, b: np.ndarray, spacing: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise distances between the SciPy-eroded boundaries, no distance transform involved."""
    ba = np.argwhere(a.astype(bool) ^ ndimage.binary_erosion(a.astype(bool))) * spacing
    bb = np.argwhere(b.astype(bool) ^ ndimage.binary_erosion(b.astype(bool))) * spacing
    pairwise = np.sqrt(((ba[:, None, :] - bb[None, :, :]) ** 2).sum(axis=-1))
    return pairwise.min(axis=1), pairwise.min(axis=0)


def test_confusion_counts_every_pixel_once():
    pred = np.array([[1, 1, 0], [0, 0, 0]])
    ref = np.array([[1, 0, 1], [0, 1, 0]])
    assert confusion(pred, ref) == (1, 1, 2, 2)


def test_dice_and_jaccard_of_overlapping_squares_match_geometry():
    side, shift = 10, 4
    a, b = square(32, 5, 5, side), square(32, 5, 5 + shift, side)
    overlap, area = side * (side - shift), side * side
    assert dice(a, b) == pytest.approx(2 * overlap / (2 * area))
    assert jaccard(a, b) == pytest.approx(overlap / (2 * area - overlap))


def test_non_zero_values_are_foreground():
    a = square(16, 2, 2, 6) * 255
    assert dice(a, a.astype(bool)) == 1.0


@pytest.mark.parametrize("shift", [(0, 3), (3, 0)])
def test_hd95_of_square_shifted_by_three_pixels_is_three(shift):
    a = square(40, 10, 10, 20)
    b = np.roll(a, shift, axis=(0, 1))
    assert hd95(a, b) == pytest.approx(3.0)


def test_identical_masks_have_zero_distances():
    a = square(32, 4, 6, 12)
    assert hd95(a, a) == 0.0
    assert mean_contour_distance(a, a) == 0.0


def test_both_empty_follows_the_documented_rule():
    empty = np.zeros((16, 16), dtype=np.uint8)
    assert dice(empty, empty) == 1.0
    assert jaccard(empty, empty) == 1.0
    assert hd95(empty, empty) == 0.0
    assert mean_contour_distance(empty, empty) == 0.0


def test_one_empty_follows_the_documented_rule():
    empty, full = np.zeros((16, 16), dtype=np.uint8), square(16, 4, 4, 5)
    for pred, ref in ((empty, full), (full, empty)):
        assert dice(pred, ref) == 0.0
        assert jaccard(pred, ref) == 0.0
        assert math.isnan(hd95(pred, ref))
        assert math.isnan(mean_contour_distance(pred, ref))


def test_empty_rule_values_are_arguments():
    empty, full = np.zeros((16, 16), dtype=np.uint8), square(16, 4, 4, 5)
    assert dice(empty, empty, empty=0.0) == 0.0
    assert hd95(empty, empty, empty_distance=-1.0) == -1.0
    assert hd95(empty, full, one_empty=math.inf) == math.inf
    assert mean_contour_distance(full, empty, one_empty=99.0) == 99.0


def test_surface_distances_with_one_empty_mask_are_infinite_one_way():
    empty, full = np.zeros((16, 16), dtype=np.uint8), square(16, 4, 4, 5)
    to_ref, to_pred = surface_distances(empty, full)
    assert to_ref.size == 0
    assert to_pred.size == np.count_nonzero(mask_boundary(full))
    assert np.all(np.isinf(to_pred))


def test_mask_boundary_matches_scipy_erosion_including_image_border():
    rng = np.random.default_rng(1)
    for _ in range(5):
        mask = blob(rng)
        expected = mask.astype(bool) ^ ndimage.binary_erosion(mask.astype(bool))
        np.testing.assert_array_equal(mask_boundary(mask), expected)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.7, 0.7), (0.5, 1.75)])
def test_surface_distances_match_brute_force_on_random_blobs(spacing):
    rng = np.random.default_rng(2)
    for _ in range(3):
        a, b = blob(rng), blob(rng)
        got_ab, got_ba = surface_distances(a, b, spacing)
        want_ab, want_ba = brute_force_distances(a, b, spacing)
        np.testing.assert_allclose(got_ab, want_ab, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got_ba, want_ba, rtol=1e-5, atol=1e-5)


def test_surface_distances_match_scipy_distance_transform():
    rng = np.random.default_rng(3)
    a, b = blob(rng, 96, 5.0), blob(rng, 96, 5.0)
    ba = a.astype(bool) ^ ndimage.binary_erosion(a.astype(bool))
    bb = b.astype(bool) ^ ndimage.binary_erosion(b.astype(bool))
    got_ab, got_ba = surface_distances(a, b)
    np.testing.assert_allclose(got_ab, ndimage.distance_transform_edt(~bb)[ba], atol=1e-5)
    np.testing.assert_allclose(got_ba, ndimage.distance_transform_edt(~ba)[bb], atol=1e-5)


def test_hd95_and_mcd_pool_both_directions():
    rng = np.random.default_rng(4)
    a, b = blob(rng), blob(rng)
    pooled = np.concatenate(brute_force_distances(a, b, (1.0, 1.0)))
    assert hd95(a, b) == pytest.approx(np.percentile(pooled, 95), abs=1e-5)
    assert mean_contour_distance(a, b) == pytest.approx(pooled.mean(), abs=1e-5)


def test_anisotropic_spacing_scales_each_axis():
    a = square(40, 10, 10, 20)
    row_mm, col_mm = 2.0, 0.5
    down, right = np.roll(a, 3, axis=0), np.roll(a, 3, axis=1)
    assert hd95(a, down, (row_mm, col_mm)) == pytest.approx(3 * row_mm)
    assert hd95(a, right, (row_mm, col_mm)) == pytest.approx(3 * col_mm)


def test_isotropic_spacing_multiplies_pixel_distances():
    rng = np.random.default_rng(5)
    a, b = blob(rng), blob(rng)
    assert mean_contour_distance(a, b, 0.25) == pytest.approx(
        0.25 * mean_contour_distance(a, b), rel=1e-6
    )


@pytest.mark.parametrize("spacing", [(1.0,), (0.0, 1.0), (1.0, -2.0), (math.nan, 1.0), "abc"])
def test_bad_spacing_is_refused(spacing):
    a = square(16, 4, 4, 5)
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, spacing)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((8, 8)), np.zeros((8, 9)))


def test_non_2d_mask_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        dice(np.zeros((1, 8, 8)), np.zeros((1, 8, 8)))


def test_non_array_mask_is_refused():
    with pytest.raises(TypeError, match="numpy array"):
        dice([[0, 1]], np.zeros((1, 2)))  # type: ignore[arg-type]


def test_segmentation_metrics_gives_pixel_keys_without_spacing():
    a = square(40, 10, 10, 20)
    result = segmentation_metrics({"heart": a}, {"heart": np.roll(a, 3, axis=1)})
    assert set(result["heart"]) == {"dice", "jaccard", "hd95", "mcd"}
    assert result["heart"]["hd95"] == pytest.approx(3.0)


def test_segmentation_metrics_adds_mm_keys_with_spacing():
    a = square(40, 10, 10, 20)
    b = np.roll(a, 3, axis=0)
    for spacing in ((0.5, 0.5), (2.0, 0.5)):
        row = segmentation_metrics({"heart": a}, {"heart": b}, spacing)["heart"]
        assert row["hd95_mm"] == pytest.approx(3 * spacing[0])
        assert row["mcd_mm"] == pytest.approx(mean_contour_distance(a, b, spacing))
        assert row["dice"] == pytest.approx(dice(a, b))


def test_segmentation_metrics_applies_the_empty_rule_per_structure():
    empty, full = np.zeros((16, 16), dtype=np.uint8), square(16, 4, 4, 5)
    result = segmentation_metrics({"a": empty, "b": full}, {"a": empty, "b": empty})
    assert result["a"] == {"dice": 1.0, "jaccard": 1.0, "hd95": 0.0, "mcd": 0.0}
    assert result["b"]["dice"] == 0.0
    assert math.isnan(result["b"]["hd95"])


def test_segmentation_metrics_keeps_empty_rule_values_unscaled_in_mm():
    empty = np.zeros((16, 16), dtype=np.uint8)
    row = segmentation_metrics({"a": empty}, {"a": empty}, 0.5, empty_distance=-1.0)["a"]
    assert row["hd95_mm"] == -1.0
    assert row["mcd_mm"] == -1.0


def test_segmentation_metrics_ignores_predictions_without_reference():
    a = square(16, 4, 4, 5)
    assert set(segmentation_metrics({"lungs": a, "heart": a}, {"lungs": a})) == {"lungs"}


def test_segmentation_metrics_names_a_missing_structure():
    a = square(16, 4, 4, 5)
    with pytest.raises(ValueError, match="'heart'"):
        segmentation_metrics({"lungs": a}, {"lungs": a, "heart": a})


def test_segmentation_metrics_names_the_structure_with_a_shape_mismatch():
    with pytest.raises(ValueError, match="'heart'.*shape"):
        segmentation_metrics({"heart": np.zeros((8, 8))}, {"heart": np.zeros((9, 8))})


def test_dice_per_structure_matches_per_mask_dice():
    rng = np.random.default_rng(6)
    pred = rng.random((3, 2, 16, 16)) > 0.5
    ref = rng.random((3, 2, 16, 16)) > 0.5
    pred[1, 0] = ref[1, 0] = False  # both empty
    expected = [[dice(pred[n, k], ref[n, k]) for k in range(2)] for n in range(3)]
    np.testing.assert_allclose(dice_per_structure(pred, ref), expected)
    assert dice_per_structure(pred, ref, empty=0.0)[1, 0] == 0.0


def test_dice_per_structure_refuses_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(N, K, H, W\)"):
        dice_per_structure(np.zeros((2, 16, 16)), np.zeros((2, 16, 16)))


def test_summarize_skips_and_counts_nan():
    values = [0.9, math.nan, 0.7, 0.8, math.nan]
    kept = np.array([0.9, 0.7, 0.8])
    stats = summarize(values)
    assert stats["n"] == 3
    assert stats["n_nan"] == 2
    assert stats["mean"] == pytest.approx(kept.mean())
    assert stats["median"] == pytest.approx(np.median(kept))
    assert stats["std"] == pytest.approx(kept.std())
    assert stats["p05"] == pytest.approx(np.percentile(kept, 5))


def test_summarize_of_only_nan_reports_nan_statistics():
    stats = summarize([math.nan, math.nan])
    assert stats["n"] == 0
    assert stats["n_nan"] == 2
    assert math.isnan(stats["mean"])


def test_module_docstring_states_the_empty_mask_rule():
    doc = metrics.__doc__ or ""
    assert "both masks empty" in doc
    assert "exactly one mask empty" in doc


@pytest.mark.realdata
def test_real_lung_masks_agree_with_scipy_reference():
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA}")
    from PIL import Image

    paths = sorted((DATA / "montgomery" / "masks").glob("*.png"))[:2]
    if len(paths) < 2:
        pytest.skip("need two Montgomery masks")
    a, b = (np.asarray(Image.open(p).convert("L")) > 0 for p in paths)
    ba, bb = a ^ ndimage.binary_erosion(a), b ^ ndimage.binary_erosion(b)
    pooled = np.concatenate(
        [ndimage.distance_transform_edt(~bb)[ba], ndimage.distance_transform_edt(~ba)[bb]]
    )
    assert hd95(a, b) == pytest.approx(np.percentile(pooled, 95), abs=1e-4)
    assert mean_contour_distance(a, b) == pytest.approx(pooled.mean(), abs=1e-4)
