"""Evaluate predicted masks against reference masks: per-case CSV, summary JSON, HTML report.

:func:`evaluate` pairs the prediction cases with the reference cases by case id, checks that ids,
structures and sizes agree (every mismatch is listed by name), computes
:func:`cxrseg.metrics.segmentation_metrics` per case and structure, and writes three files:

``out/cases.csv``
    One row per case and structure: ``id, structure, dice, jaccard, hd95, mcd`` and, when the
    pixel spacing of some reference image is known, ``hd95_mm, mcd_mm``. Distances without a
    value (one mask empty; mm for an image of unknown spacing) are empty cells. The last
    column, ``flags``, holds the quality flag codes ``cxrseg predict`` recorded for the case in
    ``PRED/predictions.json`` (``;``-separated; empty when none).
``out/summary.json``
    Per structure and metric: mean, median, std (ddof=0), p05 (5th percentile), n and n_nan
    (:func:`cxrseg.metrics.summarize`), with the empty-mask rule, the paths and the version.
``out/report.html``
    One self-contained page (:mod:`cxrseg.evaluation.html`): summary table, box plots, the worst
    cases first with overlays, and the full per-case table.

Predictions are read from ``PRED/masks/<structure>/<id>.png`` (what ``cxrseg predict`` writes)
or the other folders :mod:`cxrseg.pairing` lists; predicted structures are paired with reference
ones by :mod:`cxrseg.structure_map` (``lungs`` is ``left_lung`` + ``right_lung``). Pixel
spacing comes from each reference image's header (:func:`cxrseg.io.read_image_info`).
"""

from __future__ import annotations

from cxrseg.evaluation.results import (
    EMPTY_MASK_RULE,
    METRICS,
    MM_METRICS,
    UNITS,
    CaseResult,
    EvaluationResult,
)
from cxrseg.evaluation.scoring import evaluate, read_flags
from cxrseg.pairing import MismatchError

__all__ = [
    "EMPTY_MASK_RULE",
    "METRICS",
    "MM_METRICS",
    "UNITS",
    "CaseResult",
    "EvaluationResult",
    "MismatchError",
    "evaluate",
    "read_flags",
]
