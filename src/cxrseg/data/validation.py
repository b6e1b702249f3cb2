"""Check every file of a discovered dataset: readable, mask values, sizes, coverage.

:func:`validate` reads each image and mask once (in a few threads), never stops at a bad file,
and returns per-case statistics with every problem found:

* unreadable, truncated or zero-byte file: error naming the file;
* mask values outside the rules of :mod:`cxrseg.data.loading` (e.g. {0, 7, 255}): error naming
  the file and the values found;
* mask of another size than its image: error naming both sizes;
* empty mask (all background) or full mask (all foreground): warning.

Problems already found by :func:`cxrseg.data.discover` (orphans, duplicates) are included, so
the report is the complete list. A dataset discovered with ``strict=True`` makes every problem
an error.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrseg.data.dataset import Case, Dataset, Problem, ProblemList
from cxrseg.data.loading import (
    check_mask_values,
    foreground,
    mask_values,
    scale_factor,
    size_mismatch,
)
from cxrseg.errors import InputError
from cxrseg.io import read_image_info, read_mask

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

_READ_HINT = "the file may be truncated or not an image: copy or export it again, or remove it."


@dataclass
class CaseStats:
    """What one case holds.

    Attributes:
        case_id: The case.
        image: Path of the image.
        format: File format of the image (``"PNG"``, ``"DICOM"``, ``"JSRT"``...), or ``""``.
        height: Image rows (0 when unreadable).
        width: Image columns (0 when unreadable).
        channels: Channels stored in the image file.
        bit_depth: Bits per stored sample.
        raw_min: Smallest stored sample value (NaN when unreadable).
        raw_max: Largest stored sample value (NaN when unreadable).
        pixel_spacing: ``(row, col)`` in mm when the file records it.
        coverage: Fraction of the image covered by each structure (NaN when unknown).
        mask_values: Distinct values of each mask file, by file name.
        errors: Number of errors found in this case (0 means a valid pair).
        warnings: Number of warnings found in this case.
    """

    case_id: str
    image: Path
    format: str = ""
    height: int = 0
    width: int = 0
    channels: int = 0
    bit_depth: int = 0
    raw_min: float = math.nan
    raw_max: float = math.nan
    pixel_spacing: tuple[float, float] | None = None
    coverage: dict[str, float] = field(default_factory=dict)
    mask_values: dict[str, list[int]] = field(default_factory=dict)
    errors: int = 0
    warnings: int = 0

    @property
    def valid(self) -> bool:
        """Whether the case has no error."""
        return self.errors == 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (NaN becomes ``None``)."""

        def num(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {
            "case_id": self.case_id,
            "image": str(self.image),
            "format": self.format,
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "bit_depth": self.bit_depth,
            "raw_min": num(self.raw_min),
            "raw_max": num(self.raw_max),
            "pixel_spacing": list(self.pixel_spacing) if self.pixel_spacing else None,
            "coverage": {k: num(v) for k, v in self.coverage.items()},
            "mask_values": self.mask_values,
            "valid": self.valid,
        }


@dataclass
class ValidationReport(ProblemList):
    """Result of :func:`validate`: per-case statistics and every problem, in case order.

    Attributes:
        dataset: The dataset that was checked.
        cases: One :class:`CaseStats` per case of ``dataset.cases``, same order.
        problems: Problems from discovery, then from reading files, in case order.
    """

    dataset: Dataset
    cases: list[CaseStats]
    problems: list[Problem]

    @property
    def valid_cases(self) -> list[Case]:
        """Cases without errors, in natural order."""
        ok = {stats.case_id for stats in self.cases if stats.valid}
        return [case for case in self.dataset.cases if case.case_id in ok]

    @property
    def ok(self) -> bool:
        """Whether no error was found."""
        return not self.errors

    def structure_summary(self) -> dict[str, dict[str, float | int | None]]:
        """Coverage statistics per structure over the readable cases.

        Returns:
            ``{structure: {"cases", "empty", "mean", "min", "max"}}``; coverage is a fraction.
        """
        summary: dict[str, dict[str, float | int | None]] = {}
        for name in self.dataset.structures:
            values = [s.coverage[name] for s in self.cases if not math.isnan(s.coverage[name])]
            summary[name] = {
                "cases": len(values),
                "empty": sum(v == 0 for v in values),
                "mean": float(np.mean(values)) if values else None,
                "min": min(values) if values else None,
                "max": max(values) if values else None,
            }
        return summary

    def raise_for_errors(self) -> None:
        """Raise :class:`InputError` listing the errors, if there are any."""
        errors = self.errors
        if errors:
            listed = "\n  ".join(str(p) for p in errors[:10])
            more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
            raise InputError(
                f"{len(errors)} error{'s' if len(errors) > 1 else ''} in the dataset:\n"
                f"  {listed}{more}\n",
                hint="fix the files named above (run `cxrseg inspect` for the full report).",
            )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary: counts, structures, cases, problems, ignored files."""
        dataset = self.dataset
        return {
            "root": str(dataset.root) if dataset.root is not None else None,
            "layout": dataset.layout,
            "strict": dataset.strict,
            "structures": dataset.structures,
            "labels": dataset.labels,
            "cases": len(self.cases),
            "valid_pairs": sum(s.valid for s in self.cases),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "structure_summary": self.structure_summary(),
            "case_stats": [s.to_dict() for s in self.cases],
            "problems": [p.to_dict() for p in self.problems],
            "ignored": [str(p) for p in dataset.ignored],
        }


def _read_problem(exc: Exception, path: Path, case_id: str, what: str) -> Problem:
    if isinstance(exc, InputError):
        message = exc.reason
        hint = exc.hint or _READ_HINT
    else:  # any reader failure is reported, never raised: one bad file must not stop the rest
        message = f"cannot read the {what} ({type(exc).__name__}: {exc})"
        hint = _READ_HINT
    return Problem("error", path, message, hint, f"unreadable_{what}", case_id)


def _check_case(case: Case, dataset: Dataset) -> tuple[CaseStats, list[Problem]]:
    """Read one case's files and collect its statistics and problems."""
    stats = CaseStats(case.case_id, case.image)
    problems: list[Problem] = []

    def add(severity: str, path: Path, message: str, hint: str, kind: str) -> None:
        severity = "error" if dataset.strict else severity
        problems.append(Problem(severity, path, message, hint, kind, case.case_id))  # type: ignore[arg-type]

    shape: tuple[int, ...] | None = None
    try:
        info = read_image_info(case.image)  # decodes the pixels for their range
        shape = (info.height, info.width)
        stats.format, stats.channels, stats.bit_depth = info.format, info.channels, info.bit_depth
        stats.height, stats.width = info.height, info.width
        stats.raw_min, stats.raw_max = float(info.raw_min), float(info.raw_max)
        stats.pixel_spacing = info.pixel_spacing
    except Exception as exc:
        problems.append(_read_problem(exc, case.image, case.case_id, "image"))

    pixels: dict[Path, np.ndarray | None] = {}
    for path in case.mask_files:
        try:
            mask = read_mask(path)
        except Exception as exc:
            problems.append(_read_problem(exc, path, case.case_id, "mask"))
            pixels[path] = None
            continue
        values = mask_values(mask)
        stats.mask_values[path.name] = values
        bad = check_mask_values(values, dataset.labels)
        if bad is not None:
            add("error", path, bad[0], bad[1], "mask_values")
            pixels[path] = None
            continue
        if shape is not None and scale_factor(mask.shape, shape, dataset.layout) == 0:
            message, fix = size_mismatch(mask.shape, shape, case.image.name)
            add("error", path, message, fix, "size_mismatch")
            pixels[path] = None
            continue
        if dataset.labels is None and values == [0]:
            add("warning", path, "mask is empty (all background)", _EMPTY_HINT, "empty_mask")
        elif dataset.labels is None and 0 not in values:
            add("warning", path, "mask is full (no background pixel)", _FULL_HINT, "full_mask")
        pixels[path] = mask

    for name in dataset.structures:
        files = [pixels.get(p) for p in case.masks.get(name, [])]
        masks = [m for m in files if m is not None]
        if not masks or len(masks) < len(files) or len({m.shape for m in masks}) > 1:
            stats.coverage[name] = math.nan
            continue
        union = np.zeros(masks[0].shape, dtype=bool)
        for mask in masks:
            union |= foreground(mask, name, dataset.labels)
        stats.coverage[name] = float(union.mean())
        if dataset.labels is not None and stats.coverage[name] == 0.0:
            add(
                "warning",
                case.masks[name][0],
                f"label {name!r} (value {dataset.labels[name]}) does not appear in the mask",
                _EMPTY_HINT,
                "empty_mask",
            )
    stats.errors = sum(p.severity == "error" for p in problems)
    stats.warnings = len(problems) - stats.errors
    return stats, problems


_EMPTY_HINT = "check the annotation; remove the case if the structure really is absent."
_FULL_HINT = "check the annotation: foreground and background may be swapped."


def validate(
    dataset: Dataset, progress: Progress | None = None, workers: int = 2
) -> ValidationReport:
    """Read every file of ``dataset`` and report per-case statistics and problems.

    Args:
        dataset: From :func:`cxrseg.data.discover`.
        progress: Called with ``(done, total)`` after each case.
        workers: Threads reading files (image decoding releases the GIL); 1 reads in order.

    Returns:
        Statistics for every case (also the broken ones) and all problems, discovery's first.

    Raises:
        ValueError: ``workers`` is below 1.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}; use 1 to read serially.")
    cases = dataset.cases
    results: list[tuple[CaseStats, list[Problem]] | None] = [None] * len(cases)
    if workers == 1 or len(cases) < 2:
        for index, case in enumerate(cases):
            results[index] = _check_case(case, dataset)
            if progress is not None:
                progress(index + 1, len(cases))
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cxrseg-validate") as pool:
            futures = {pool.submit(_check_case, case, dataset): i for i, case in enumerate(cases)}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if progress is not None:
                    progress(done, len(cases))
    stats = [r[0] for r in results if r is not None]
    problems = list(dataset.problems)
    for result in results:
        if result is not None:
            problems.extend(result[1])
    report = ValidationReport(dataset, stats, problems)
    logger.info(
        "validated %d cases: %d valid, %d errors, %d warnings",
        len(stats),
        len(report.valid_cases),
        len(report.errors),
        len(report.warnings),
    )
    return report
