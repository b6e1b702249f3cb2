"""Is a prediction plausible? Ranges learned from training data, and flags with codes.

A numpy/OpenCV leaf (it imports nothing else from cxrseg), used by training to learn the ranges
(:func:`learn_ranges`, stored in every checkpoint under ``"quality"``) and by prediction to flag
each case (:func:`check_prediction`). Every :class:`Flag` has a stable machine-readable
``code`` and a sentence for people:

``not_chest_radiograph``
    The image's coarse layout (16 x 16, standardised) is further from the training images'
    principal components (:data:`APPEARANCE_COMPONENTS` of them) than any training image was,
    by :data:`APPEARANCE_MARGIN`: noise, an inverted or rotated film, a CT slice. Learned only
    from at least :data:`MIN_APPEARANCE_CASES` training images.
``blank_image``, ``image_too_small``, ``elongated_image``
    Nearly constant pixels; a side under :data:`MIN_SIDE` pixels; one side over
    :data:`MAX_ASPECT` times the other (a chest film is about square).
``area_out_of_range``, ``position_out_of_range``
    A structure's area (fraction of the image) or centroid outside the training range widened
    by :data:`MARGIN` of its width on each side; an empty mask is always out of range.
``components``
    A structure in more or fewer sizeable pieces (each at least 5 % of the structure) than any
    training mask had.
``lung_missing``, ``asymmetric``
    A structure that came in two sizeable pieces in training (both lungs in one mask) in one
    piece, or its two largest pieces (or ``left_x``/``right_x`` structures) far more unequal
    than in training.
``touches_border``
    More of the image's outer frame covered by the structure than in any training mask.
``low_confidence``
    Much of the predicted area has probabilities near 0.5 (:func:`uncertain_fraction`).
``dicom_not_chest``
    A DICOM header naming another modality than CR/DX or another body part than the chest
    (:func:`header_flags`).

Features are computed on masks resized (nearest) to :data:`FEATURE_SIDE` pixels square, so
they cost the same at any image size and agree between training and prediction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = [
    "Flag",
    "check_image",
    "check_prediction",
    "appearance_residual",
    "check_structures",
    "header_flags",
    "learn_ranges",
    "structure_features",
    "uncertain_fraction",
]

FEATURE_SIDE = 128
THUMB_SIDE = 16
MARGIN = 0.25
"""Fraction of a learned range's width added on each side before a value counts as outside."""
APPEARANCE_COMPONENTS = 8
APPEARANCE_MARGIN = 0.1
"""Relative margin over the largest training residual before an image counts as not a chest."""
MIN_APPEARANCE_CASES = 50
MIN_SIDE = 64
MAX_ASPECT = 1.8
BLANK_STD = 0.01
LOW_CONFIDENCE = 0.25
"""Flag when more than this fraction of the predicted area is uncertain (probability 0.2-0.8)."""
MIN_PIECE = 0.05
CHEST_MODALITIES = frozenset({"CR", "DX"})
RANGES_VERSION = 1


@dataclass(frozen=True)
class Flag:
    """One reason not to trust a prediction: a stable ``code`` and a ``message`` for people."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


# --- features -----------------------------------------------------------------------------


def thumbnail(image: np.ndarray) -> np.ndarray:
    """(16, 16) float32 standardised thumbnail (squashed, area-averaged); zeros when flat."""
    small = cv2.resize(np.asarray(image, np.float32), (THUMB_SIDE, THUMB_SIDE),
                       interpolation=cv2.INTER_AREA)  # fmt: skip
    std = float(small.std())
    return (small - small.mean()) / std if std > 1e-6 else np.zeros_like(small)


def structure_features(mask: np.ndarray) -> dict[str, float]:
    """Area fraction, sizeable pieces, balance of the two largest, border cover, centroid.

    Returns:
        ``area`` (fraction of the image), ``pieces`` (components of at least 5 % of the
        structure), ``balance`` (second largest / largest component; 0 with one), ``border``
        (fraction of the image's outer 2-pixel frame covered), ``cy``/``cx`` (centroid as a
        fraction of height/width; NaN when empty).
    """
    small = cv2.resize((np.asarray(mask) > 0).astype(np.uint8), (FEATURE_SIDE, FEATURE_SIDE),
                       interpolation=cv2.INTER_NEAREST)  # fmt: skip
    total = int(small.sum())
    if total == 0:
        return {"area": 0.0, "pieces": 0.0, "balance": 0.0, "border": 0.0,
                "cy": float("nan"), "cx": float("nan")}  # fmt: skip
    _, _, stats, _ = cv2.connectedComponentsWithStats(small, connectivity=8)
    areas = np.sort(stats[1:, cv2.CC_STAT_AREA])[::-1]
    pieces = areas[areas >= MIN_PIECE * total]
    frame = np.ones_like(small, dtype=bool)
    frame[2:-2, 2:-2] = False
    rows, cols = np.nonzero(small)
    return {
        "area": total / small.size,
        "pieces": float(len(pieces)),
        "balance": float(pieces[1] / pieces[0]) if len(pieces) > 1 else 0.0,
        "border": float(small[frame].mean()),
        "cy": float(rows.mean() / FEATURE_SIDE),
        "cx": float(cols.mean() / FEATURE_SIDE),
    }


def uncertain_fraction(probabilities: np.ndarray, mode: str = "softmax") -> float:
    """Pixels whose winning probability is under 0.8, over the predicted foreground plus them.

    Args:
        probabilities: (C, H, W) softmax (channel 0 background) or sigmoid maps.
        mode: ``"softmax"`` or ``"sigmoid"``.
    """
    prob = np.asarray(probabilities, np.float32)
    if mode == "softmax":
        top, winner = prob.max(axis=0), prob.argmax(axis=0)
        unsure, sure_fg = top < 0.8, (top >= 0.8) & (winner > 0)
    else:
        unsure = ((prob > 0.2) & (prob < 0.8)).any(axis=0)
        sure_fg = (prob >= 0.8).any(axis=0) & ~unsure
    n_unsure = int(unsure.sum())
    return n_unsure / max(1, n_unsure + int(sure_fg.sum()))


# --- learning -----------------------------------------------------------------------------


def learn_ranges(samples: Iterable[tuple[np.ndarray, Mapping[str, np.ndarray]]]) -> dict[str, Any]:
    """Plausible ranges from training ``(image, {structure: mask})`` pairs (JSON-ready).

    Returns:
        ``{"version", "n_cases", "appearance": {"mean", "components", "residual": [min, max]}
        (None under 50 cases), "structures": {name: {feature: [min, max]}},
        "pairs": {"left_x|right_x": [min, max]}}``.

    Raises:
        ValueError: No samples.
    """
    thumbs: list[np.ndarray] = []
    features: dict[str, list[dict[str, float]]] = {}
    for image, masks in samples:
        thumbs.append(thumbnail(image))
        for name, mask in masks.items():
            features.setdefault(name, []).append(structure_features(mask))
    if not thumbs:
        raise ValueError("learn_ranges needs at least one training case")
    ranges: dict[str, Any] = {
        "version": RANGES_VERSION,
        "n_cases": len(thumbs),
        "appearance": _appearance(thumbs) if len(thumbs) >= MIN_APPEARANCE_CASES else None,
        "structures": {
            name: {key: _span([row[key] for row in rows]) for key in rows[0]}
            for name, rows in features.items()
        },
        "pairs": {},
    }
    for left, right in _side_pairs(list(features)):
        ratios = [_ratio(a["area"], b["area"]) for a, b in
                  zip(features[left], features[right], strict=True)]  # fmt: skip
        ranges["pairs"][f"{left}|{right}"] = _span(ratios)
    return ranges


def _appearance(thumbs: Sequence[np.ndarray]) -> dict[str, Any]:
    """Mean and principal components of the thumbnails, and the range of their residuals."""
    flat = np.stack([t.ravel() for t in thumbs]).astype(np.float64)
    mean = flat.mean(axis=0)
    components = np.linalg.svd(flat - mean, full_matrices=False)[2][:APPEARANCE_COMPONENTS]
    model = {"mean": np.round(mean, 4).tolist(), "components": np.round(components, 4).tolist()}
    model["residual"] = _span([appearance_residual(t, model) for t in thumbs])
    return model


def appearance_residual(thumb: np.ndarray, model: Mapping[str, Any]) -> float:
    """Share of a thumbnail's energy that the training components do not explain (0 to ~1)."""
    x = np.asarray(thumb, np.float64).ravel()
    centred = x - np.asarray(model["mean"], np.float64)
    basis = np.asarray(model["components"], np.float64)
    rest = centred - basis.T @ (basis @ centred)
    return float((rest**2).sum() / max(1e-6, float((x**2).sum())))


def _span(values: Sequence[float]) -> list[float]:
    """``[min, max]`` rounded outwards to 5 decimals (every value stays inside); [] if none."""
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return []
    return [math.floor(min(finite) * 1e5) / 1e5, math.ceil(max(finite) * 1e5) / 1e5]


def _ratio(a: float, b: float) -> float:
    return min(a, b) / max(a, b) if max(a, b) > 0 else 0.0


def _side_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    return [
        (n, "right" + n[4:]) for n in names if n.startswith("left") and "right" + n[4:] in names
    ]


# --- checking -----------------------------------------------------------------------------


def check_image(image: np.ndarray, ranges: Mapping[str, Any] | None = None) -> list[Flag]:
    """Flags of the input image alone: blank, too small, elongated, not a chest radiograph."""
    height, width = image.shape
    flags: list[Flag] = []
    if float(np.std(image)) < BLANK_STD:
        flags.append(Flag("blank_image", "the image is blank (nearly constant pixels)"))
    if min(height, width) < MIN_SIDE:
        flags.append(Flag("image_too_small", f"the image is {height}x{width} pixels, too small "
                          f"for a chest radiograph (under {MIN_SIDE} on a side)"))  # fmt: skip
    if max(height, width) > MAX_ASPECT * min(height, width):
        flags.append(Flag("elongated_image", f"the image is {height}x{width}: far from square, "
                          "unlike a chest radiograph"))  # fmt: skip
    model = (ranges or {}).get("appearance")
    if model and model.get("residual") and not flags:
        residual = appearance_residual(thumbnail(image), model)
        limit = model["residual"][1] * (1 + APPEARANCE_MARGIN)
        if residual > limit:
            flags.append(Flag("not_chest_radiograph", "the input does not look like a frontal "
                              f"chest radiograph (layout residual {residual:.2f}, training at "
                              f"most {model['residual'][1]:.2f})"))  # fmt: skip
    return flags


def check_structures(masks: Mapping[str, np.ndarray], ranges: Mapping[str, Any]) -> list[Flag]:
    """Flags of the predicted masks against the learned ranges (none for unknown structures)."""
    flags: list[Flag] = []
    learned = ranges.get("structures", {})
    features = {name: structure_features(mask) for name, mask in masks.items()}
    for name, feats in features.items():
        if name in learned:
            flags += _structure_flags(name, feats, learned[name])
    for key, span in ranges.get("pairs", {}).items():
        left, right = key.split("|")
        if left in features and right in features and span:
            ratio = _ratio(features[left]["area"], features[right]["area"])
            if 0 < ratio < _low(span):
                flags.append(Flag("asymmetric", f"{left} and {right} differ in size far more "
                                  f"than in training (ratio {ratio:.2f})"))  # fmt: skip
    return flags


def _low(span: Sequence[float]) -> float:
    return span[0] - MARGIN * (span[1] - span[0])


def _high(span: Sequence[float]) -> float:
    return span[1] + MARGIN * (span[1] - span[0])


def _structure_flags(
    name: str, feats: dict[str, float], spans: Mapping[str, list[float]]
) -> list[Flag]:
    flags: list[Flag] = []
    area = feats["area"]
    if spans.get("area") and not _low(spans["area"]) <= area <= _high(spans["area"]):
        lo, hi = spans["area"]
        flags.append(Flag("area_out_of_range", f"{name} covers {area:.1%} of the image; "
                          f"training masks covered {lo:.1%} to {hi:.1%}"))  # fmt: skip
    if area == 0:
        return flags
    pieces, span = int(feats["pieces"]), spans.get("pieces") or []
    if span and span[0] >= 2 and pieces == 1:
        flags.append(Flag("lung_missing", f"{name} is in one piece where training masks had "
                          f"{int(span[0])}: one lung missing or both merged"))  # fmt: skip
    elif span and not span[0] <= pieces <= span[1]:
        flags.append(Flag("components", f"{name} is in {pieces} pieces; training masks had "
                          f"{int(span[0])} to {int(span[1])}"))  # fmt: skip
    balance = spans.get("balance") or []
    if balance and balance[0] > 0 and pieces >= 2 and feats["balance"] < _low(balance):
        flags.append(Flag("asymmetric", f"the two parts of {name} differ in size far more than "
                          f"in training (ratio {feats['balance']:.2f})"))  # fmt: skip
    border = spans.get("border") or []
    if border and feats["border"] > _high(border) + 0.01:
        flags.append(Flag("touches_border", f"{name} runs along the image border "
                          f"({feats['border']:.0%} of the edge)"))  # fmt: skip
    outside = [k for k in ("cy", "cx") if spans.get(k) and not
               _low(spans[k]) <= feats[k] <= _high(spans[k])]  # fmt: skip
    if outside:
        flags.append(Flag("position_out_of_range", f"{name} lies where training masks never "
                          f"did (centre at {feats['cy']:.0%} of the height, {feats['cx']:.0%} "
                          "of the width)"))  # fmt: skip
    return flags


def check_prediction(
    image: np.ndarray,
    masks: Mapping[str, np.ndarray],
    ranges: Mapping[str, Any] | None,
    probabilities: np.ndarray | None = None,
    mode: str = "softmax",
) -> list[Flag]:
    """Every flag of one prediction: image, structures (when ranges are known), confidence.

    Args:
        image: (H, W) image in [0, 1].
        masks: The predicted uint8 masks per structure.
        ranges: What :func:`learn_ranges` returned for the model, or None (then only the
            checks that need no training data run).
        probabilities: (C, S, S) network probabilities, for the confidence check.
        mode: ``"softmax"`` or ``"sigmoid"``.
    """
    flags = check_image(image, ranges)
    if ranges:
        flags += check_structures(masks, ranges)
    if probabilities is not None:
        unsure = uncertain_fraction(probabilities, mode)
        if unsure > LOW_CONFIDENCE:
            flags.append(Flag("low_confidence", f"the model is unsure of {unsure:.0%} of the "
                              "predicted area (probabilities near 0.5)"))  # fmt: skip
    return flags


def header_flags(modality: str | None, body_part: str | None) -> list[Flag]:
    """Flags of a DICOM header: a modality other than CR/DX, a body part other than the chest."""
    flags: list[Flag] = []
    if modality and modality.strip().upper() not in CHEST_MODALITIES:
        flags.append(Flag("dicom_not_chest", f"DICOM modality {modality.strip()} is not a "
                          "radiograph (CR or DX)"))  # fmt: skip
    if body_part and "CHEST" not in body_part.upper() and "THORAX" not in body_part.upper():
        flags.append(Flag("dicom_not_chest", f"DICOM body part {body_part.strip()} is not the "
                          "chest"))  # fmt: skip
    return flags
