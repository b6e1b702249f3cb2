"""Commands for data: `cxrseg phantom` and `cxrseg inspect`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cxrseg.cli._app import app, console, err_console, fail, progress_bar


@app.command("phantom")
def phantom_command(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder for images/, masks/<structure>/, dataset.json."),
    ],
    n: Annotated[int, typer.Option("-n", "--count", help="Number of phantoms.")] = 20,
    size: Annotated[
        str, typer.Option("--size", "-s", help="Side in pixels, or HxW (e.g. 256, 320x256).")
    ] = "256",
    seed: Annotated[int, typer.Option("--seed", help="Base seed (non-negative).")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Write into a folder whose images/ is not empty.")
    ] = False,
) -> None:
    """Write synthetic chest radiographs with lung, heart and clavicle masks."""
    # lazy: start-up time
    import re

    from rich.markup import escape

    from cxrseg.phantom import write_phantom_dataset

    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", size)
    if match is None:
        raise fail(f"--size {size!r} is not a size; pass pixels like 256 or HxW like 320x256.")
    shape = (int(match[1]), int(match[2] or match[1]))
    try:
        with progress_bar("phantoms") as progress:
            ids = write_phantom_dataset(
                out, n, size=shape, seed=seed, progress=progress, overwrite=overwrite
            )
    except ValueError as exc:  # InputError included
        raise fail(str(exc)) from exc
    console.print(f"Wrote {len(ids)} phantoms of {shape[0]}x{shape[1]} px to {escape(str(out))}")
    console.print(f"Next: cxrseg inspect {escape(str(out))}")


def _parse_masks(values: list[str]) -> Path | dict[str, list[Path]]:
    """``--masks DIR`` or repeated ``--masks NAME=DIR`` -> what :func:`discover` takes."""
    if len(values) == 1 and "=" not in values[0]:
        return Path(values[0])
    named: dict[str, list[Path]] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise fail(
                f"--masks {value!r} needs the form NAME=DIR when several are given "
                "(e.g. --masks left_lung=ManualMask/leftMask)."
            )
        named.setdefault(name.strip(), []).append(Path(folder.strip()))
    return named


#: ``cxrseg inspect``'s longer options, named here so that its signature stays short.
MasksOption = Annotated[
    list[str] | None,
    typer.Option("--masks", metavar="[NAME=]DIR",
                 help="Masks folder with --images; repeat NAME=DIR for one folder per structure."),
]  # fmt: skip
JsonOption = Annotated[
    str | None,
    typer.Option("--json", metavar="FILE", help="Write a JSON summary to FILE ('-': stdout)."),
]
SuffixOption = Annotated[
    list[str] | None,
    typer.Option("--mask-suffix", metavar="SUFFIX",
                 help="Suffix removed from mask names to get the case id (repeatable; replaces "
                 "the defaults _mask, -mask, _label, _seg)."),
]  # fmt: skip


@app.command("inspect")
def inspect_command(
    data: Annotated[
        Path | None,
        typer.Argument(help="Dataset folder: images/ + masks/, JSRT+SCR, Montgomery, Shenzhen."),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option("--images", metavar="DIR", help="Images folder (instead of DATA)."),
    ] = None,
    masks: MasksOption = None,
    layout: Annotated[
        str, typer.Option(help="auto, standard, jsrt, montgomery or shenzhen.")
    ] = "auto",
    strict: Annotated[
        bool, typer.Option("--strict", help="Count every problem as an error.")
    ] = False,
    json_out: JsonOption = None,
    sheet: Annotated[
        Path | None,
        typer.Option(metavar="FILE.png", help="Write a contact sheet of mask overlays."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Case rows shown (first and last); 0 shows all.")] = 20,
    mask_suffix: SuffixOption = None,
    workers: Annotated[int, typer.Option(min=1, help="Threads reading files.")] = 2,
) -> None:
    """Check a dataset: pairs, sizes, bit depths, intensities, mask values and coverage.

    Prints one row per case, a summary per structure and every problem found. Nothing is
    written unless asked: --json FILE and --sheet FILE.png (never inside the dataset folder).

    Exit status: 0 when there is no error, 1 when there are errors, 2 when the input is unusable.
    """
    # lazy: start-up time
    from cxrseg.data import validate
    from cxrseg.report.inspection import inspection_renderables

    dataset = _discover(data, images, masks, layout, strict, mask_suffix)
    _check_outputs(dataset, json_out, sheet)
    with progress_bar("inspect", enabled=len(dataset.cases) >= 50) as progress:
        report = validate(dataset, progress=progress, workers=workers)
    out = err_console if json_out == "-" else console  # stdout carries the JSON then
    for part in inspection_renderables(report, limit):
        out.print(part)
    if json_out is not None:
        _write_json(report, json_out, out)
    if sheet is not None:
        _write_sheet(sheet, dataset, report, out)
    if report.errors:
        raise typer.Exit(1)


def _discover(
    data: Path | None,
    images: Path | None,
    masks: list[str] | None,
    layout: str,
    strict: bool,
    mask_suffix: list[str] | None,
) -> Any:
    """The dataset the options describe, or exit 2 with the reason."""
    # lazy: start-up time
    from cxrseg.data import DEFAULT_MASK_SUFFIXES, discover

    try:
        return discover(
            data,
            images=images,
            masks=_parse_masks(masks) if masks else None,
            layout=layout,
            strict=strict,
            mask_suffixes=tuple(mask_suffix) if mask_suffix else DEFAULT_MASK_SUFFIXES,
        )
    except ValueError as exc:  # InputError included
        raise fail(str(exc)) from exc


def _check_outputs(dataset: Any, json_out: str | None, sheet: Path | None) -> None:
    """Refuse outputs inside the dataset's folders, a contact sheet that is not a PNG and an
    unwritable target, before the checks, which may take minutes."""
    # lazy: start-up time
    from cxrseg.io import check_output_file

    outputs = [Path(json_out)] if json_out not in (None, "-") else []
    outputs += [sheet] if sheet is not None else []
    for target in outputs:
        if dataset.contains(target):
            raise fail(
                f"{target} is inside the dataset's folders; inspect never writes "
                "there. Choose a path outside it."
            )
    if sheet is not None and sheet.suffix.lower() != ".png":
        raise fail(f"--sheet {sheet} must end in .png.")
    for target in outputs:
        check_output_file(target)


def _write_json(report: Any, json_out: str, out: Any) -> None:
    """The report as JSON on stdout (``-``) or in a file, written atomically."""
    # lazy: start-up time
    import json

    from rich.markup import escape

    from cxrseg.io import atomic_write

    text = json.dumps(report.to_dict(), indent=1) + "\n"
    if json_out == "-":
        typer.echo(text, nl=False)
        return
    target = Path(json_out)
    with atomic_write(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    out.print(f"Wrote {escape(str(target))}")


def _write_sheet(sheet: Path, dataset: Any, report: Any, out: Any) -> None:
    """The contact sheet of mask overlays; cases with errors are marked."""
    # lazy: start-up time
    from rich.markup import escape

    from cxrseg.report.contact_sheet import write_contact_sheet

    flagged = {stats.case_id for stats in report.cases if not stats.valid}
    with progress_bar("contact sheet", enabled=len(dataset.cases) >= 50) as progress:
        write_contact_sheet(sheet, dataset, flagged=flagged, progress=progress)
    out.print(f"Wrote {escape(str(sheet))}")
