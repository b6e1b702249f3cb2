"""The human-readable inspection report: rich tables and lines, ready for a console to print.

:func:`inspection_renderables` turns a :class:`cxrseg.data.ValidationReport` into a header line,
a case table (collapsed to its first and last rows when long), a per-structure coverage
summary, every problem with its fix, the ignored files, and the final count
"N valid pairs, E errors, W warnings". Nothing here prints; ``cxrseg inspect`` does.
"""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table

from cxrseg.data import CaseStats, ValidationReport


def _percent(value: float | int | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def _number(value: float) -> str:
    if math.isnan(value):
        return "?"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def shown_path(path: Path | None, root: Path | None) -> str:
    """``path`` relative to ``root`` when inside it, else as given ("" for None)."""
    if path is None:
        return ""
    if root is not None and path.is_relative_to(root):
        return str(path.relative_to(root)) or "."
    return str(path)


def summary_line(report: ValidationReport) -> str:
    """``"N valid pairs, E errors, W warnings"``."""
    return (
        f"{len(report.valid_cases)} valid pairs, {len(report.errors)} errors, "
        f"{len(report.warnings)} warnings"
    )


def _status(stats: CaseStats) -> str:
    if stats.errors:
        return f"[red]{stats.errors} error(s)[/]"
    return f"[yellow]{stats.warnings} warning(s)[/]" if stats.warnings else "ok"


def case_table(report: ValidationReport, limit: int = 20) -> Table:
    """One row per case: size, bit depth, stored value range, coverage per structure, status.

    Args:
        report: The validation report.
        limit: Rows shown; beyond it the first and last ``limit / 2`` rows are kept and a row
            counts the hidden ones. 0 or less shows every row.
    """
    structures = report.dataset.structures
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in ("case", "size", "bits", "range"):
        table.add_column(column, no_wrap=True)
    for name in structures:  # long names wrap in the header, numbers never do
        table.add_column(name.replace("_", " "), justify="right", min_width=6, overflow="fold")
    table.add_column("status", no_wrap=True)
    rows = report.cases
    head, tail = rows, []
    if 0 < limit < len(rows):
        head, tail = rows[: (limit + 1) // 2], rows[len(rows) - limit // 2 :]
    for stats in head + tail:
        if tail and stats is tail[0]:
            hidden = len(rows) - len(head) - len(tail)
            table.add_row(f"... {hidden} more", *[""] * (len(table.columns) - 1))
        table.add_row(
            escape(stats.case_id),
            f"{stats.height}x{stats.width}" if stats.height else "?",
            str(stats.bit_depth) if stats.bit_depth else "?",
            f"{_number(stats.raw_min)}-{_number(stats.raw_max)}",
            *[_percent(stats.coverage.get(name)) for name in structures],
            _status(stats),
        )
    return table


def structure_table(report: ValidationReport) -> Table:
    """Per structure: cases with a readable mask, mean/min/max coverage, empty masks."""
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in ("structure", "cases", "mean coverage", "min", "max", "empty"):
        table.add_column(column, justify="left" if column == "structure" else "right")
    for name, row in report.structure_summary().items():
        table.add_row(
            escape(name),
            str(row["cases"]),
            _percent(row["mean"]),
            _percent(row["min"]),
            _percent(row["max"]),
            str(row["empty"]),
        )
    return table


def inspection_renderables(report: ValidationReport, limit: int = 20) -> list[RenderableType]:
    """Everything ``cxrseg inspect`` shows, in order, as rich renderables (markup strings).

    Args:
        report: The validation report.
        limit: Case rows shown (see :func:`case_table`).
    """
    dataset = report.dataset
    root = dataset.root
    where = escape(str(root if root is not None else dataset.input_dirs[0]))
    parts: list[RenderableType] = [
        f"[bold]{where}[/]: {dataset.layout} layout, {len(report.cases)} cases, "
        f"structures: {escape(', '.join(dataset.structures))}",
        case_table(report, limit),
        "",
        structure_table(report),
    ]
    if report.problems:
        parts += ["", f"[bold]Problems ({len(report.problems)}):[/]"]
    for problem in report.problems:
        style = "red" if problem.severity == "error" else "yellow"
        fix = f" Fix: {escape(problem.hint)}" if problem.hint else ""
        parts.append(
            f"  [{style}]{problem.severity}[/] {escape(shown_path(problem.path, root))}: "
            f"{escape(problem.message)}.{fix}"
        )
    if dataset.ignored:
        names = ", ".join(shown_path(p, root) for p in dataset.ignored[:10])
        more = f" and {len(dataset.ignored) - 10} more" if len(dataset.ignored) > 10 else ""
        parts.append(
            f"Ignored {len(dataset.ignored)} files that are not images: {escape(names)}{more}"
        )
    parts.append(f"[bold]{summary_line(report)}[/]")
    return parts
