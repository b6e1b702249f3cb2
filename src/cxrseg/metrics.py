"""Segmentation metrics per structure: Dice, Jaccard, HD95 and mean contour distance.

Overlap scores come from confusion counts (true/false positives/negatives), as in
``segmentation_models_pytorch.metrics``; distances come from the boundary pixels of both masks.
A mask is binary: every non-zero pixel is foreground.

Boundary and distance definitions:

* The **boundary** of a mask is its foreground pixels that have at least one 4-connected
  background neighbour; pixels outside the image count as background, so foreground touching the
  image edge is boundary. (``mask XOR erosion(mask)`` with a 3x3 cross, as MONAI and medpy do.)
* The **surface distances** from A to B are, for every boundary pixel of A, the Euclidean distance
  to the nearest boundary pixel of B, measured between pixel centres and scaled by ``spacing``.
* **HD95** is the 95th percentile of the distances of both directions pooled together
  (``percentile(concat(d(A->B), d(B->A)), 95)``, medpy's ``hd95``). MONAI's
  ``compute_hausdorff_distance(percentile=95)`` takes instead the larger of the two directed
  percentiles, which can be slightly larger.
* **Mean contour distance** (MCD, the average symmetric surface distance) is the mean of the same
  pooled distances, ``(sum d(A->B) + sum d(B->A)) / (|dA| + |dB|)``, as MONAI's
  ``SurfaceDistanceMetric(symmetric=True)``.

Spacing is ``(row, column)`` in mm per pixel, in the order of the array axes (the order of DICOM
*PixelSpacing*); ``None`` gives distances in pixels.

Empty-mask rule (every function takes it as keyword arguments):

* both masks empty: Dice = Jaccard = ``empty`` (default 1.0: nothing to find, nothing found) and
  distances = ``empty_distance`` (default 0.0);
* exactly one mask empty: Dice = Jaccard = 0 and distances = ``one_empty`` (default NaN: a
  contour distance to nothing is undefined). :func:`summarize` skips NaN values and reports how
  many it skipped, so missed or hallucinated structures show up as a count, not as a made-up
  distance. Pass ``one_empty=float("inf")`` for MONAI's behaviour, or e.g. the image diagonal for
  a finite penalty.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
from scipy import ndimage

__all__ = [
    "binary_mask",
    "confusion",
    "dice",
    "dice_per_structure",
    "hd95",
    "jaccard",
    "mask_boundary",
    "mean_contour_distance",
    "segmentation_metrics",
    "summarize",
    "surface_distances",
]

logger = logging.getLogger(__name__)

_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=np.uint8)


def binary_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """Check that ``mask`` is a 2-D array and return ``mask != 0`` as a boolean (H, W) array.

    Args:
        mask: Mask (H, W) of any numeric or boolean dtype.
        name: How the error messages call the argument.

    Raises:
        TypeError: If ``mask`` is not a numpy array.
        ValueError: If it is not 2-D.
    """
    if not isinstance(mask, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array, got {type(mask).__name__}; "
            "convert it with np.asarray(...)."
        )
    if mask.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (H, W) mask, got shape {mask.shape}; "
            "pass one structure of one image at a time."
        )
    return mask if mask.dtype == np.bool_ else mask != 0


def _pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, r = binary_mask(pred, "pred"), binary_mask(ref, "ref")
    if p.shape != r.shape:
        raise ValueError(
            f"pred has shape {p.shape} but ref has shape {r.shape}; "
            "resize the prediction to the reference size first."
        )
    return p, r


def _spacing(spacing: float | Sequence[float] | None) -> tuple[float, float] | None:
    """Validate ``spacing`` and return it as a ``(row, column)`` pair of floats."""
    if spacing is None:
        return None
    try:
        values = np.asarray(spacing, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.empty(0)
    if values.ndim == 0:  # one number: square pixels
        values = np.repeat(values, 2)
    if values.shape != (2,):
        raise ValueError(
            f"spacing must be (row, column) in mm, got {spacing!r}; "
            "pass two numbers, one number for square pixels, or None for pixels."
        )
    out = (float(values[0]), float(values[1]))
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise ValueError(
            f"spacing must be positive and finite, got {spacing!r}; "
            "pass None when the pixel spacing is unknown."
        )
    return out


def confusion(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int, int]:
    """Count true positives, false positives, false negatives and true negatives.

    Args:
        pred: Predicted mask (H, W); non-zero is foreground.
        ref: Reference mask (H, W) of the same shape.

    Returns:
        ``(tp, fp, fn, tn)`` as Python ints.

    Raises:
        ValueError: If the masks are not 2-D or their shapes differ.
    """
    p, r = _pair(pred, ref)
    tp = int(np.count_nonzero(p & r))
    n_pred, n_ref = int(np.count_nonzero(p)), int(np.count_nonzero(r))
    fp, fn = n_pred - tp, n_ref - tp
    return tp, fp, fn, p.size - tp - fp - fn


def _overlap(tp: int, fp: int, fn: int, empty: float) -> tuple[float, float]:
    """Dice and Jaccard from confusion counts, ``empty`` when both masks are empty."""
    union = tp + fp + fn
    if union == 0:
        return float(empty), float(empty)
    return 2.0 * tp / (union + tp), tp / union


def dice(pred: np.ndarray, ref: np.ndarray, *, empty: float = 1.0) -> float:
    """Dice coefficient ``2 tp / (2 tp + fp + fn)``.

    Args:
        pred: Predicted mask (H, W); non-zero is foreground.
        ref: Reference mask (H, W).
        empty: Value returned when both masks are empty. When only one is empty the score is 0.

    Returns:
        Dice in [0, 1].
    """
    tp, fp, fn, _ = confusion(pred, ref)
    return _overlap(tp, fp, fn, empty)[0]


def jaccard(pred: np.ndarray, ref: np.ndarray, *, empty: float = 1.0) -> float:
    """Jaccard index (intersection over union) ``tp / (tp + fp + fn)``.

    Args:
        pred: Predicted mask (H, W); non-zero is foreground.
        ref: Reference mask (H, W).
        empty: Value returned when both masks are empty. When only one is empty the score is 0.

    Returns:
        Jaccard in [0, 1].
    """
    tp, fp, fn, _ = confusion(pred, ref)
    return _overlap(tp, fp, fn, empty)[1]


def dice_per_structure(pred: np.ndarray, ref: np.ndarray, *, empty: float = 1.0) -> np.ndarray:
    """Dice of every image and structure of a batch, from vectorised confusion counts.

    Meant for validation during training, where masks come as one-hot or multi-label arrays.

    Args:
        pred: Predicted masks (N, K, H, W); non-zero is foreground.
        ref: Reference masks (N, K, H, W).
        empty: Value where both masks of an (image, structure) pair are empty.

    Returns:
        float64 array (N, K) of Dice scores.

    Raises:
        ValueError: If the arrays are not 4-D or their shapes differ.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.ndim != 4 or pred.shape != ref.shape:
        raise ValueError(
            f"pred and ref must both be (N, K, H, W) with equal shapes, got "
            f"{pred.shape} and {ref.shape}; one-hot encode label maps first."
        )
    p, r = pred != 0, ref != 0
    tp = np.count_nonzero(p & r, axis=(2, 3))
    denominator = np.count_nonzero(p, axis=(2, 3)) + np.count_nonzero(r, axis=(2, 3))
    scores = np.full(tp.shape, float(empty), dtype=np.float64)
    np.divide(2.0 * tp, denominator, out=scores, where=denominator > 0)
    return scores


def mask_boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a mask: foreground with a 4-connected background neighbour.

    Pixels outside the image count as background. Equals
    ``mask ^ scipy.ndimage.binary_erosion(mask)`` (computed with OpenCV for speed).

    Args:
        mask: Mask (H, W); non-zero is foreground.

    Returns:
        Boolean array (H, W).
    """
    m = np.ascontiguousarray(binary_mask(mask, "mask")).view(np.uint8)
    eroded = cv2.erode(m, _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (m != 0) & (eroded == 0)


def _distance_to(target: np.ndarray, spacing: tuple[float, float] | None) -> np.ndarray:
    """Exact Euclidean distance of every pixel to the nearest ``True`` pixel of ``target``."""
    if spacing is None or spacing[0] == spacing[1]:
        scale = 1.0 if spacing is None else spacing[0]
        source = np.where(target, 0, 255).astype(np.uint8)
        distance = cv2.distanceTransform(source, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        return distance.astype(np.float64) * scale
    return np.asarray(ndimage.distance_transform_edt(~target, sampling=spacing), dtype=np.float64)


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: float | Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each boundary pixel of one mask to the nearest boundary pixel of the other.

    Args:
        pred: Predicted mask (H, W); non-zero is foreground.
        ref: Reference mask (H, W).
        spacing: ``(row, column)`` mm per pixel, one number for square pixels, or None for pixels.

    Returns:
        ``(pred_to_ref, ref_to_pred)``: float64 arrays with one distance per boundary pixel of
        ``pred`` and of ``ref``. An empty mask has no boundary pixels: its own array is empty and
        the other mask's distances are all ``inf`` (no contour to reach). Both arrays are empty
        when both masks are.
    """
    p, r = _pair(pred, ref)
    sampling = _spacing(spacing)
    bp, br = mask_boundary(p), mask_boundary(r)
    n_p, n_r = int(np.count_nonzero(bp)), int(np.count_nonzero(br))
    if n_p == 0 or n_r == 0:
        return np.full(n_p, np.inf), np.full(n_r, np.inf)
    # Every boundary pixel lies in the joint bounding box, so the transform of the crop is exact.
    rows, cols = np.nonzero(bp | br)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    bp, br = bp[box], br[box]
    return _distance_to(br, sampling)[bp], _distance_to(bp, sampling)[br]


def _distances(
    p: np.ndarray,
    r: np.ndarray,
    spacing: float | Sequence[float] | None,
    empty_distance: float,
    one_empty: float,
) -> tuple[float, float]:
    """HD95 and mean contour distance of two boolean masks from one distance computation."""
    has_p, has_r = bool(p.any()), bool(r.any())
    if not (has_p or has_r):
        return float(empty_distance), float(empty_distance)
    if has_p != has_r:
        return float(one_empty), float(one_empty)
    pooled = np.concatenate(surface_distances(p, r, spacing))
    return float(np.percentile(pooled, 95)), float(pooled.mean())


def hd95(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    *,
    empty_distance: float = 0.0,
    one_empty: float = math.nan,
) -> float:
    """95th percentile Hausdorff distance, both directions pooled (medpy's definition).

    ``np.percentile(np.concatenate(surface_distances(pred, ref, spacing)), 95)`` with linear
    interpolation. A square shifted by 3 pixels has HD95 = 3.

    Args:
        pred: Predicted mask (H, W); non-zero is foreground.
        ref: Reference mask (H, W).
        spacing: ``(row, column)`` mm per pixel, or None for a result in pixels.
        empty_distance: Value when both masks are empty.
        one_empty: Value when exactly one mask is empty (NaN: undefined, skipped by
            :func:`summarize`).

    Returns:
        HD95 in pixels, or in mm when ``spacing`` is given.
    """
    p, r = _pair(pred, ref)
    return _distances(p, r, spacing, empty_distance, one_empty)[0]


def mean_contour_distance(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    *,
    empty_distance: float = 0.0,
    one_empty: float = math.nan,
) -> float:
    """Mean contour distance: the average symmetric surface distance, both directions pooled.

    ``(sum d(pred->ref) + sum d(ref->pred)) / (n_pred_boundary + n_ref_boundary)``.

    Args:
        pred: Predicted mask (H, W); non-zero is foreground.
        ref: Reference mask (H, W).
        spacing: ``(row, column)`` mm per pixel, or None for a result in pixels.
        empty_distance: Value when both masks are empty.
        one_empty: Value when exactly one mask is empty (NaN: undefined, skipped by
            :func:`summarize`).

    Returns:
        Mean contour distance in pixels, or in mm when ``spacing`` is given.
    """
    p, r = _pair(pred, ref)
    return _distances(p, r, spacing, empty_distance, one_empty)[1]


def segmentation_metrics(
    pred_masks: Mapping[str, np.ndarray],
    ref_masks: Mapping[str, np.ndarray],
    spacing: float | Sequence[float] | None = None,
    *,
    empty: float = 1.0,
    empty_distance: float = 0.0,
    one_empty: float = math.nan,
) -> dict[str, dict[str, float]]:
    """All metrics of every reference structure of one image.

    Structures are those of ``ref_masks``; predicted structures without a reference are ignored
    (e.g. a heart predicted on a data set that only annotates lungs).

    Args:
        pred_masks: Predicted mask (H, W) per structure name.
        ref_masks: Reference mask (H, W) per structure name.
        spacing: ``(row, column)`` mm per pixel, or None when unknown.
        empty: Dice and Jaccard when both masks of a structure are empty.
        empty_distance: Distances when both masks of a structure are empty.
        one_empty: Distances when exactly one mask of a structure is empty.

    Returns:
        ``{structure: {"dice", "jaccard", "hd95", "mcd"}}`` with distances in pixels, plus
        ``"hd95_mm"`` and ``"mcd_mm"`` when ``spacing`` is given.

    Raises:
        ValueError: If a reference structure has no prediction or the shapes differ; the message
            names the structure.
    """
    sampling = _spacing(spacing)
    results: dict[str, dict[str, float]] = {}
    for name, ref in ref_masks.items():
        if name not in pred_masks:
            raise ValueError(
                f"structure {name!r} has a reference mask but no prediction "
                f"(predicted: {sorted(pred_masks)}); predict every structure of "
                "the reference or drop it from ref_masks."
            )
        pred = pred_masks[name]
        if np.shape(pred) != np.shape(ref):
            raise ValueError(
                f"structure {name!r}: prediction shape {np.shape(pred)} differs "
                f"from reference shape {np.shape(ref)}; restore the prediction to "
                "the image size first."
            )
        p, r = binary_mask(pred, f"pred_masks[{name!r}]"), binary_mask(ref, f"ref_masks[{name!r}]")
        tp, fp, fn, _ = confusion(p, r)
        dice_score, jaccard_score = _overlap(tp, fp, fn, empty)
        row = {"dice": dice_score, "jaccard": jaccard_score}
        hd, mcd = _distances(p, r, None, empty_distance, one_empty)
        row["hd95"], row["mcd"] = hd, mcd
        if sampling is not None:
            if sampling[0] == sampling[1] and p.any() and r.any():  # square pixels: scale
                row["hd95_mm"], row["mcd_mm"] = hd * sampling[0], mcd * sampling[0]
            else:
                hd_mm, mcd_mm = _distances(p, r, sampling, empty_distance, one_empty)
                row["hd95_mm"], row["mcd_mm"] = hd_mm, mcd_mm
        results[name] = row
    return results


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Summary statistics of one metric over cases, skipping NaN values.

    NaN marks an undefined value (a contour distance where one mask is empty); it is left out of
    the statistics and counted in ``n_nan``. Infinite values are kept.

    Args:
        values: One value per case.

    Returns:
        ``{"mean", "median", "std", "p05", "n", "n_nan"}``: ``std`` is the population standard
        deviation (ddof=0), ``p05`` the 5th percentile (the worst cases of a score), ``n`` the
        number of values used. Statistics are NaN when no value is left.
    """
    array = np.asarray(list(values), dtype=np.float64).ravel()
    nan = np.isnan(array)
    kept = array[~nan]
    if kept.size == 0:
        stats = dict.fromkeys(("mean", "median", "std", "p05"), math.nan)
    else:
        stats = {
            "mean": float(kept.mean()),
            "median": float(np.median(kept)),
            "std": float(kept.std()),
            "p05": float(np.percentile(kept, 5)),
        }
    return {**stats, "n": int(kept.size), "n_nan": int(nan.sum())}
