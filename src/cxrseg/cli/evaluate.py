"""The `cxrseg evaluate` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrseg.cli._app import app, console, err_console, fail, progress_bar
from cxrseg.cli._threads import Threads, use_threads


@app.command("evaluate")
def evaluate_command(
    pred: Annotated[
        Path, typer.Argument(help="Predictions folder: masks/<structure>/<id>.png (predict).")
    ],
    data: Annotated[Path, typer.Argument(help="Reference dataset folder (any layout).")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", metavar="DIR", help="Report folder, outside PRED and DATA."),
    ],
    allow_missing: Annotated[
        bool,
        typer.Option("--allow-missing", help="Evaluate the ids on both sides; list the others."),
    ] = False,
    structures: Annotated[
        str | None,
        typer.Option(metavar="A,B", help="Structures to evaluate, comma-separated (default all)."),
    ] = None,
    structure_map: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="PRED=REF[+REF]",
            help="Compare a predicted structure with the union of reference ones "
            "(repeatable), e.g. lungs=left_lung+right_lung.",
        ),
    ] = None,
    worst: Annotated[int, typer.Option(min=0, help="Worst cases shown with overlays.")] = 24,
    workers: Annotated[int, typer.Option(min=1, help="Threads reading and scoring.")] = 2,
    threads: Threads = None,
) -> None:
    """Score predicted masks against references: cases.csv, summary.json and report.html.

    Structures pair by name; a predicted "lungs" matches left_lung + right_lung, and a
    one-structure reference matches a one-structure prediction; --map says the rest.

    Exit status: 0 on success, 1 when ids (unless --allow-missing) or sizes differ or no
    structure pairs (all listed), 2 when the input is unusable.
    """
    # lazy: start-up time
    from rich.markup import escape
    from rich.table import Table

    from cxrseg.evaluation import MismatchError, evaluate
    from cxrseg.structure_map import parse_map

    use_threads(threads)  # after the imports: it sets the pools they loaded

    names = None if structures is None else [s for s in structures.split(",") if s.strip()]
    try:
        pairs = parse_map(structure_map)
        with progress_bar("evaluate") as progress:
            result = evaluate(
                pred,
                data,
                out,
                structures=names,
                structure_map=pairs,
                allow_missing=allow_missing,
                worst=worst,
                progress=progress,
                workers=workers,
            )
    except MismatchError as exc:
        raise fail(str(exc), code=1) from exc
    except (ValueError, TypeError) as exc:  # InputError included
        raise fail(str(exc)) from exc
    unit = "mm" if "hd95_mm" in result.metrics else "px"
    table = Table(title=f"{len(result.cases)} cases", title_justify="left")
    for column in ("structure", "Dice mean ± std", "median", "p05", f"HD95 median ({unit})", "n"):
        table.add_column(column, justify="left" if column == "structure" else "right")
    for name in result.structures:
        dice = result.summary[name]["dice"]
        distance = result.summary[name]["hd95_mm" if unit == "mm" else "hd95"]
        table.add_row(
            escape(name),
            f"{dice['mean']:.3f} ± {dice['std']:.3f}",
            f"{dice['median']:.3f}",
            f"{dice['p05']:.3f}",
            f"{distance['median']:.2f}",
            str(int(dice["n"])),
        )
    console.print(table)
    for label, ids in (
        ("reference cases without a prediction", result.missing_predictions),
        ("predictions without a reference case", result.missing_references),
    ):
        if ids:
            shown = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
            err_console.print(f"[yellow]left out[/] {len(ids)} {label}: {escape(shown)}")
    left_out = result.structure_map.get("not_evaluated", {})
    for side in ("predictions", "references"):
        if left_out.get(side):
            err_console.print(
                f"[yellow]not evaluated[/] ({side}): {escape(', '.join(left_out[side]))}"
            )
    _print_flags(result.flags)
    console.print(f"Report: {escape(str(result.report_path))}")


def _print_flags(flags: dict[str, list[dict[str, str]]]) -> None:
    from rich.markup import escape

    flagged = sorted(case_id for case_id, found in flags.items() if found)
    if flagged:
        shown = ", ".join(flagged[:20]) + (
            f" and {len(flagged) - 20} more" if len(flagged) > 20 else ""
        )
        err_console.print(f"[yellow]flagged by predict[/] {len(flagged)} cases: {escape(shown)}")
