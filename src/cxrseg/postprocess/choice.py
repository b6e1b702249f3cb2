"""The choice of each structure's post-processing on validation predictions.

:func:`choose_postprocessing` tries every step on the validation predictions and keeps one only
where it raises the structure's mean Dice (nnU-Net's ``determine_postprocessing``); the number
of components to keep is chosen per structure, among the count its reference masks usually
have and its neighbours.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from cxrseg.metrics import dice
from cxrseg.postprocess import steps as _steps
from cxrseg.postprocess.steps import PostprocessConfig, _binary, _components

__all__ = [
    "TWO_COMPONENT_NAMES",
    "choose_postprocessing",
    "default_config",
    "typical_component_count",
]

logger = logging.getLogger(__name__)

#: Structure names that hold both lungs when nothing else says how many components to keep.
TWO_COMPONENT_NAMES = frozenset({"lungs", "lung", "both_lungs", "foreground"})


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
        processed = _steps.postprocess_masks(pred, config)
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
    keep the ``k`` largest components, remove components under ``min_fraction`` of the largest,
    fill holes, smooth with ``smooth_radius``. Every structure is offered keep-largest, with
    ``k`` chosen per structure: the count its references usually have (from
    :func:`typical_component_count`, or from the name as in :func:`default_config`) and one
    more, the best of them on validation. A step is kept only if the structure's mean Dice
    rises by more than ``epsilon`` and no structure's mean Dice falls (every structure is
    re-scored, so the check holds even for steps that touch several structures). Dice is 1
    where both masks are empty.

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
        k = default_config(name, typical_component_count(ref[name] for ref in refs))
        candidates: list[tuple[str, list[Any]]] = [
            ("keep_components", [k.keep_components, int(k.keep_components or 1) + 1]),
            ("min_fraction", [min_fraction]),
            ("fill_holes", [True]),
            ("smooth_radius", [smooth_radius]),
        ]
        entry: dict[str, Any] = {"dice_before": scores[name], "steps": []}
        for step, values in candidates:
            trials = [_trial(preds, refs, config, scores, name, step, v) for v in values]
            best = max(trials, key=lambda t: t[2]["dice_after"])
            best[2]["kept"] = (
                best[2]["dice_after"] > scores[name] + epsilon and not best[2]["worse"]
            )
            entry["steps"] += [t[2] for t in trials]
            if best[2]["kept"]:
                config, scores = best[0], best[1]
        entry["dice_after"] = scores[name]
        entry["config"] = config[name].to_dict()
        report["structures"][name] = entry
    return config, report


def _trial(
    preds: Sequence[Mapping[str, np.ndarray]],
    refs: Sequence[Mapping[str, np.ndarray]],
    config: dict[str, PostprocessConfig],
    scores: dict[str, float],
    name: str,
    step: str,
    value: Any,
) -> tuple[dict[str, PostprocessConfig], dict[str, float], dict[str, Any]]:
    """Score one step added to a structure's config; ``kept`` is settled by the caller."""
    trial = {**config, name: replace(config[name], **{step: value})}
    trial_scores = _mean_dice(preds, refs, trial)
    worse = [s for s in trial_scores if s != name and trial_scores[s] < scores[s]]
    logger.debug("%s: %s=%s mean Dice %.4f -> %.4f", name, step, value, scores[name],
                 trial_scores[name])  # fmt: skip
    record = {"step": step, "value": value, "dice_before": scores[name],
              "dice_after": trial_scores[name], "kept": False, "worse": worse}  # fmt: skip
    return trial, trial_scores, record
