"""Post-processing of predicted masks per structure, and its choice on validation data.

Steps, applied in this order by :func:`postprocess_mask`:

1. keep the ``k`` largest connected components (:func:`keep_largest_components`): ``k = 2`` for a
   structure that holds both lungs, 1 for one lung or the heart. Keeping only the largest
   component, as nnU-Net does, would delete a lung when both lungs share a label;
2. remove components smaller than a fraction of the **largest** component
   (:func:`remove_small_components`). Relative to the largest rather than to the total area, so
   the threshold does not move with the number of specks;
3. fill holes (:func:`fill_holes`): background not connected to the image border;
4. smooth (:func:`smooth`): morphological opening then closing with a disk.

Components use 8-connectivity by default (diagonal neighbours touch), the usual choice for 2-D
masks and the dual of the 4-connected background that :func:`fill_holes` uses.

:func:`choose_postprocessing` tries every step on validation predictions, in the order above,
and keeps one only where it raises the structure's mean Dice by more than ``epsilon`` without
lowering any other structure's mean Dice (nnU-Net's ``determine_postprocessing``). The chosen
:class:`PostprocessConfig` per structure is JSON-able (``to_dict`` / ``from_dict``) so it can be
stored in a checkpoint and overridden.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import cv2
import numpy as np

from cxrseg.metrics import binary_mask, dice

__all__ = [
    "TWO_COMPONENT_NAMES",
    "PostprocessConfig",
    "choose_postprocessing",
    "default_config",
    "fill_holes",
    "keep_largest_components",
    "postprocess_mask",
    "postprocess_masks",
    "remove_small_components",
    "smooth",
    "typical_component_count",
]

logger = logging.getLogger(__name__)

#: Structure names that hold both lungs when nothing else says how many components to keep.
TWO_COMPONENT_NAMES = frozenset({"lungs", "lung", "both_lungs", "foreground"})


def _binary(mask: np.ndarray) -> np.ndarray:
    """Return the mask as a contiguous uint8 0/1 (H, W) array."""
    return np.ascontiguousarray(binary_mask(mask), dtype=np.uint8)


def _check_int(value: Any, name: str, minimum: int, hint: str) -> int:
    """Return ``value`` if it is an integer (not a bool) >= ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}; {hint}")
    return int(value)


def _check_fraction(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a number in (0, 1], else raise."""
    ok = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    if not (ok and 0.0 < float(value) <= 1.0):
        raise ValueError(
            f"{name} must be in (0, 1], got {value!r}; 0.1 removes components under a tenth "
            "of the largest one."
        )
    return float(value)


def _components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Label the components of a 0/1 mask; return labels (H, W) and areas indexed by label - 1."""
    if connectivity not in (4, 8):
        raise ValueError(
            f"connectivity must be 4 or 8, got {connectivity!r}; "
            "use 8 (diagonal neighbours touch) unless you need 4."
        )
    _, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask, connectivity=connectivity, ltype=cv2.CV_32S
    )
    return labels, stats[1:, cv2.CC_STAT_AREA].astype(np.int64)


def _keep_labels(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Mask of the pixels whose label (1-based) is selected by the boolean ``keep`` per label."""
    lookup = np.concatenate(([0], keep.astype(np.uint8)))
    return lookup[labels]


def keep_largest_components(mask: np.ndarray, k: int = 1, *, connectivity: int = 8) -> np.ndarray:
    """Keep the ``k`` largest connected components of a mask.

    Components of equal area are ranked by their first pixel in row-major order.

    Args:
        mask: Mask (H, W); non-zero is foreground.
        k: Number of components to keep (2 for a structure holding both lungs).
        connectivity: 8 (default) or 4.

    Returns:
        uint8 0/1 mask (H, W); the input is not modified.
    """
    k = _check_int(k, "k", 1, "use k=2 for a structure holding both lungs.")
    binary = _binary(mask)
    labels, areas = _components(binary, connectivity)
    if areas.size <= k:
        return binary
    order = np.argsort(-areas, kind="stable")
    keep = np.zeros(areas.size, dtype=bool)
    keep[order[:k]] = True
    return _keep_labels(labels, keep)


def remove_small_components(
    mask: np.ndarray, min_fraction: float = 0.1, *, connectivity: int = 8
) -> np.ndarray:
    """Remove components smaller than ``min_fraction`` times the area of the largest one.

    The largest component is always kept; so is every component of at least
    ``min_fraction * largest_area`` pixels.

    Args:
        mask: Mask (H, W); non-zero is foreground.
        min_fraction: Threshold in (0, 1], relative to the largest component's area.
        connectivity: 8 (default) or 4.

    Returns:
        uint8 0/1 mask (H, W); the input is not modified.
    """
    min_fraction = _check_fraction(min_fraction, "min_fraction")
    binary = _binary(mask)
    labels, areas = _components(binary, connectivity)
    if areas.size <= 1:
        return binary
    return _keep_labels(labels, areas >= min_fraction * areas.max())


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill holes: background regions that do not reach the image border.

    Background connectivity is 4 (the dual of 8-connected foreground), as in
    ``scipy.ndimage.binary_fill_holes``; a notch open to the outside is not a hole.

    Args:
        mask: Mask (H, W); non-zero is foreground.

    Returns:
        uint8 0/1 mask (H, W); the input is not modified.
    """
    binary = _binary(mask)
    # Pad with background so that all outside background is one region, then flood it from a
    # corner; what the flood does not reach is foreground or a hole.
    padded = np.pad(binary, 1)
    flood_mask = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), dtype=np.uint8)
    cv2.floodFill(padded, flood_mask, (0, 0), 2, flags=4)
    return (padded[1:-1, 1:-1] != 2).astype(np.uint8)


def _disk(radius: int) -> np.ndarray:
    """Disk structuring element: pixels with ``x**2 + y**2 <= radius**2``."""
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def smooth(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """Smooth a mask: morphological opening, then closing, with a disk of ``radius`` pixels.

    Opening removes spurs and specks thinner than the disk; closing fills gaps and notches
    narrower than it. Outside the image neither erodes nor dilates (OpenCV's default border),
    so a mask touching the edge is not eaten from the edge. ``radius=0`` returns a copy.

    Args:
        mask: Mask (H, W); non-zero is foreground.
        radius: Disk radius in pixels, >= 0.

    Returns:
        uint8 0/1 mask (H, W); the input is not modified.
    """
    radius = _check_int(radius, "radius", 0, "2 is a mild smoothing, 0 none.")
    binary = _binary(mask)
    if radius == 0:
        return binary
    disk = _disk(radius)
    opened = cv2.morphologyEx(binary, cv2.MORPH_OPEN, disk)
    return cv2.morphologyEx(opened, cv2.MORPH_CLOSE, disk)


@dataclass
class PostprocessConfig:
    """Post-processing of one structure; every step is off by default.

    Attributes:
        keep_components: Keep this many largest components, or None to skip the step.
        min_fraction: Remove components under this fraction of the largest, or None to skip.
        fill_holes: Fill holes.
        smooth_radius: Disk radius of the opening+closing, 0 to skip.
    """

    keep_components: int | None = None
    min_fraction: float | None = None
    fill_holes: bool = False
    smooth_radius: int = 0

    def __post_init__(self) -> None:
        if self.keep_components is not None:
            _check_int(self.keep_components, "keep_components", 1, "use 2 for both lungs.")
        if self.min_fraction is not None:
            _check_fraction(self.min_fraction, "min_fraction")
        if not isinstance(self.fill_holes, bool):
            raise TypeError(f"fill_holes must be True or False, got {self.fill_holes!r}.")
        _check_int(self.smooth_radius, "smooth_radius", 0, "0 disables smoothing.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PostprocessConfig:
        """Build from :meth:`to_dict` output; missing fields take their defaults.

        Raises:
            ValueError: If a key is not a field (the message lists the valid ones).
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown post-processing option(s) {unknown}; valid options are {sorted(names)}."
            )
        return cls(**dict(data))


def postprocess_mask(mask: np.ndarray, config: PostprocessConfig) -> np.ndarray:
    """Apply the enabled steps of ``config`` to one mask, in the module's order.

    Args:
        mask: Mask (H, W); non-zero is foreground.
        config: Steps to apply.

    Returns:
        uint8 0/1 mask (H, W); the input is not modified.
    """
    out = _binary(mask)
    if config.keep_components is not None:
        out = keep_largest_components(out, config.keep_components)
    if config.min_fraction is not None:
        out = remove_small_components(out, config.min_fraction)
    if config.fill_holes:
        out = fill_holes(out)
    if config.smooth_radius > 0:
        out = smooth(out, config.smooth_radius)
    return out


def postprocess_masks(
    masks: Mapping[str, np.ndarray], config: Mapping[str, PostprocessConfig]
) -> dict[str, np.ndarray]:
    """Post-process every structure of one image.

    Structures without an entry in ``config`` are returned unchanged (as uint8 0/1).

    Args:
        masks: Mask (H, W) per structure name.
        config: Post-processing per structure name.

    Returns:
        uint8 0/1 mask (H, W) per structure, in the order of ``masks``.

    Raises:
        ValueError: If ``config`` names a structure that ``masks`` lacks.
    """
    missing = sorted(set(config) - set(masks))
    if missing:
        raise ValueError(
            f"post-processing configured for structure(s) {missing} that the masks lack "
            f"(structures: {list(masks)}); fix the structure names in the configuration."
        )
    return {
        name: postprocess_mask(mask, config.get(name, PostprocessConfig()))
        for name, mask in masks.items()
    }


def typical_component_count(
    masks: Iterable[np.ndarray], *, min_fraction: float = 0.1, connectivity: int = 8
) -> int | None:
    """Most common number of components among non-empty masks (2 for both lungs).

    Components under ``min_fraction`` of a mask's largest component are not counted, so specks
    in reference masks do not change the answer. Ties go to the smaller count.

    Args:
        masks: Masks (H, W) of one structure, typically the validation references.
        min_fraction: Components smaller than this fraction of the largest are ignored.
        connectivity: 8 (default) or 4.

    Returns:
        The count, or None when every mask is empty.
    """
    counts: Counter[int] = Counter()
    for mask in masks:
        _, areas = _components(_binary(mask), connectivity)
        if areas.size:
            counts[int(np.count_nonzero(areas >= min_fraction * areas.max()))] += 1
    if not counts:
        return None
    top = max(counts.values())
    return min(n for n, c in counts.items() if c == top)


def default_config(structure_name: str, typical_components: int | None = None) -> PostprocessConfig:
    """Anatomical default for a structure, used when no validation set chooses for it.

    Keeps ``typical_components`` largest components (from :func:`typical_component_count` of the
    reference masks) and fills holes. Without a count, a structure named like both lungs
    (``"lungs"``, ``"lung"``, ``"both_lungs"``, ``"foreground"``) keeps 2 and any other keeps 1.

    Args:
        structure_name: Name of the structure.
        typical_components: Usual number of components of its reference masks, if known.

    Returns:
        The configuration.
    """
    if typical_components is None:
        k = 2 if structure_name.lower() in TWO_COMPONENT_NAMES else 1
    else:
        k = int(typical_components)
    return PostprocessConfig(keep_components=max(k, 1), fill_holes=True)


def _mean_dice(
    preds: Sequence[Mapping[str, np.ndarray]],
    refs: Sequence[Mapping[str, np.ndarray]],
    config: Mapping[str, PostprocessConfig],
) -> dict[str, float]:
    """Mean Dice per structure of the post-processed predictions (1 where both are empty)."""
    totals: dict[str, float] = dict.fromkeys(preds[0], 0.0)
    for pred, ref in zip(preds, refs, strict=True):
        processed = postprocess_masks(pred, config)
        for name in totals:
            totals[name] += dice(processed[name], ref[name])
    return {name: total / len(preds) for name, total in totals.items()}


def _check_cases(
    preds: Sequence[Mapping[str, np.ndarray]], refs: Sequence[Mapping[str, np.ndarray]]
) -> list[str]:
    if len(preds) == 0 or len(preds) != len(refs):
        raise ValueError(
            f"need the same non-zero number of predictions and references, got {len(preds)} "
            f"and {len(refs)}; pass one dict of masks per validation case to each."
        )
    structures = list(preds[0])
    for i, (pred, ref) in enumerate(zip(preds, refs, strict=True)):
        for name in structures:
            if name not in pred or name not in ref:
                side = "prediction" if name not in pred else "reference"
                raise ValueError(
                    f"case {i}: structure {name!r} is missing from the {side}; every case "
                    "needs a prediction and a reference for every structure."
                )
            if np.shape(pred[name]) != np.shape(ref[name]):
                raise ValueError(
                    f"case {i}, structure {name!r}: prediction shape {np.shape(pred[name])} "
                    f"differs from reference shape {np.shape(ref[name])}."
                )
    return structures


def choose_postprocessing(
    preds: Sequence[Mapping[str, np.ndarray]],
    refs: Sequence[Mapping[str, np.ndarray]],
    *,
    epsilon: float = 1e-4,
    min_fraction: float = 0.1,
    smooth_radius: int = 2,
) -> tuple[dict[str, PostprocessConfig], dict[str, Any]]:
    """Choose each structure's post-processing on validation predictions.

    For every structure, in order, each candidate step is added to what was already kept:
    keep the ``k`` largest components (``k`` from :func:`typical_component_count` of the
    references, or from the name as in :func:`default_config`), remove components under
    ``min_fraction`` of the largest, fill holes, smooth with ``smooth_radius``. A step is kept
    only if the structure's mean Dice rises by more than ``epsilon`` and no structure's mean
    Dice falls (every structure is re-scored, so the check holds even for steps that touch
    several structures). Dice is 1 where both masks are empty.

    Args:
        preds: Per validation case, predicted mask (H, W) per structure (the structures of the
            first case are the ones chosen for).
        refs: Per validation case, reference mask (H, W) per structure.
        epsilon: Smallest mean-Dice gain that keeps a step.
        min_fraction: Threshold of the small-component candidate.
        smooth_radius: Disk radius of the smoothing candidate.

    Returns:
        ``(config, report)``: the chosen :class:`PostprocessConfig` per structure, and a
        JSON-able report ``{"n_cases", "epsilon", "structures": {name: {"dice_before",
        "dice_after", "config", "steps": [{"step", "value", "dice_before", "dice_after",
        "kept", "worse"}]}}}`` where ``worse`` lists other structures whose Dice would fall.
    """
    structures = _check_cases(preds, refs)
    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon >= 0):
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}.")
    config = {name: PostprocessConfig() for name in structures}
    scores = _mean_dice(preds, refs, config)
    report: dict[str, Any] = {"n_cases": len(preds), "epsilon": float(epsilon), "structures": {}}
    for name in structures:
        k = typical_component_count(ref[name] for ref in refs)
        candidates: list[tuple[str, Any]] = [
            ("keep_components", default_config(name, k).keep_components),
            ("min_fraction", min_fraction),
            ("fill_holes", True),
            ("smooth_radius", smooth_radius),
        ]
        entry: dict[str, Any] = {"dice_before": scores[name], "steps": []}
        for step, value in candidates:
            trial = {**config, name: replace(config[name], **{step: value})}
            trial_scores = _mean_dice(preds, refs, trial)
            worse = [s for s in structures if s != name and trial_scores[s] < scores[s]]
            kept = trial_scores[name] > scores[name] + epsilon and not worse
            entry["steps"].append(
                {"step": step, "value": value, "dice_before": scores[name],
                 "dice_after": trial_scores[name], "kept": kept, "worse": worse}
            )  # fmt: skip
            logger.debug(
                "%s: %s=%s mean Dice %.4f -> %.4f (%s)",
                name, step, value, scores[name], trial_scores[name], "kept" if kept else "dropped",
            )  # fmt: skip
            if kept:
                config, scores = trial, trial_scores
        entry["dice_after"] = scores[name]
        entry["config"] = config[name].to_dict()
        report["structures"][name] = entry
    return config, report
