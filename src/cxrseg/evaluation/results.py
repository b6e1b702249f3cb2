"""What an evaluation computed: per-case metrics, the summary, the empty-mask rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EMPTY_MASK_RULE", "METRICS", "MM_METRICS", "UNITS", "CaseResult", "EvaluationResult"]

METRICS = ("dice", "jaccard", "hd95", "mcd")
"""Metrics of every case; ``hd95_mm`` and ``mcd_mm`` follow when pixel spacing is known."""
MM_METRICS = ("hd95_mm", "mcd_mm")
UNITS = {"dice": "", "jaccard": "", "hd95": "px", "mcd": "px", "hd95_mm": "mm", "mcd_mm": "mm"}
EMPTY_MASK_RULE = (
    "Both masks empty: Dice = Jaccard = 1 and HD95 = MCD = 0. Exactly one mask empty: "
    "Dice = Jaccard = 0 and HD95 = MCD undefined (NaN: an empty CSV cell, left out of the "
    "statistics and counted in n_nan)."
)


@dataclass(frozen=True)
class CaseResult:
    """Metrics of one case.

    Attributes:
        case_id: The case id shared by prediction and reference.
        metrics: ``{structure: {metric: value}}``; mm metrics are NaN when ``spacing`` is None.
        spacing: ``(row, col)`` pixel spacing in mm of the reference image, or None.
    """

    case_id: str
    metrics: dict[str, dict[str, float]]
    spacing: tuple[float, float] | None

    @property
    def mean_dice(self) -> float:
        """Mean Dice over the evaluated structures (the order of the worst-case table)."""
        return float(np.mean([row["dice"] for row in self.metrics.values()]))


@dataclass
class EvaluationResult:
    """What :func:`evaluate` computed and wrote.

    Attributes:
        cases: One result per evaluated case, in natural id order.
        structures: Evaluated structures, in column order.
        metrics: Metric names in the CSV and summary (``METRICS`` plus mm metrics when known).
        summary: ``{structure: {metric: {"mean", "median", "std", "p05", "n", "n_nan"}}}``.
        predictions: The prediction folder.
        references: The reference dataset folder (its images folder for explicit datasets).
        out: The output folder; ``cases.csv``, ``summary.json`` and ``report.html`` inside.
        missing_predictions: Reference ids without a usable prediction (``allow_missing``).
        missing_references: Predicted ids without a reference case (``allow_missing``).
        structure_map: Which reference structures each evaluated one was compared with, and
            the structures not evaluated (:meth:`cxrseg.structure_map.StructureMap.to_dict`).
        flags: ``{id: [{"code", "message"}, ...]}``: the quality flags ``cxrseg predict``
            recorded in ``PRED/predictions.json`` (empty when it holds none).
    """

    cases: list[CaseResult]
    structures: list[str]
    metrics: list[str]
    summary: dict[str, dict[str, dict[str, float]]]
    predictions: Path
    references: Path
    out: Path
    missing_predictions: list[str] = field(default_factory=list)
    missing_references: list[str] = field(default_factory=list)
    structure_map: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    @property
    def report_path(self) -> Path:
        """The HTML report."""
        return self.out / "report.html"

    def worst(self, n: int | None = None) -> list[CaseResult]:
        """Cases by ascending mean Dice over structures (ties: id order); the first ``n``."""
        ranked = sorted(self.cases, key=lambda case: case.mean_dice)
        return ranked if n is None else ranked[:n]
