"""Commands for trained models: `cxrseg predict` and `cxrseg export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cxrseg.cli._app import app, console, err_console, fail, progress_bar
from cxrseg.cli._threads import Threads, use_threads
from cxrseg.errors import CxrsegError, InputError


@app.command("predict")
def predict_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="MODEL (run folder, checkpoint, exported .onnx, cross-validation folder: its "
            "folds averaged, or a shipped model: lungs) then the inputs (image files, folders "
            "or glob patterns); with --model, inputs only.",
            metavar="[MODEL] INPUT...",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="DIR", help="Output folder: masks/<structure>/<id>.png, ..."
        ),  # fmt: skip
    ],
    shipped: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="A model shipped with cxrseg (see `cxrseg models`): lungs."
        ),
    ] = None,
    label_map: Annotated[
        bool, typer.Option("--label-map", help="Write labels/<id>.png (0..K) instead of masks/.")
    ] = False,
    probabilities: Annotated[
        bool, typer.Option("--probabilities", help="Also write 16-bit probability maps.")
    ] = False,
    overlays: Annotated[
        bool, typer.Option("--overlays", help="Also write overlays/<id>.png.")
    ] = False,
    output_format: Annotated[
        list[str] | None,
        typer.Option(
            "--output-format",
            metavar="png|dicom-seg",
            help="png: masks/<structure>/<id>.png; dicom-seg: dicom-seg/<id>.dcm, a DICOM "
            "Segmentation of each DICOM input (pip install 'cxrseg[dicom]'). Repeat or "
            "comma-separate for both.",
            show_default="png",
        ),
    ] = None,
    tta: Annotated[
        bool, typer.Option("--tta", help="Average with a horizontal flip (left/right swapped).")
    ] = False,
    tta_vflip: Annotated[
        bool, typer.Option("--tta-vflip", help="Also average with a vertical flip.")
    ] = False,
    postprocess: Annotated[
        bool,
        typer.Option("--postprocess/--no-postprocess", help="Apply the model's post-processing."),
    ] = True,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    runtime: Annotated[
        str,
        typer.Option(
            help="auto (on the CPU: PyTorch bfloat16 where the CPU has it natively, "
            "else ONNX Runtime), torch or onnxruntime."
        ),
    ] = "auto",
    amp: Annotated[
        bool, typer.Option("--amp/--no-amp", help="bfloat16 where the device has it natively.")
    ] = True,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Say which runtime and precision, and why.")
    ] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per network call.")] = 4,
    threads: Threads = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Segment radiographs; masks keep each image's original size. Exit 1 if any input failed.

    `cxrseg predict RUN xrays/ --out pred` uses a model you trained; `cxrseg predict --model
    lungs xrays/ --out pred` uses the lung model shipped with cxrseg (no training, no download).
    """
    # lazy: start-up time
    from rich.markup import escape

    from cxrseg.inference import Predictor, predict_paths
    from cxrseg.io.dicom_seg import require_highdicom

    use_threads(threads)  # after the imports: it sets the pools they loaded

    flips = [name for name, on in (("hflip", tta), ("vflip", tta_vflip)) if on]
    formats = [
        f.strip() for value in output_format or ["png"] for f in value.split(",") if f.strip()
    ]
    try:
        if "dicom-seg" in formats:
            require_highdicom()  # before the model loads: one line naming the extra
        model, inputs = _model_and_inputs(paths, shipped)
        predictor = Predictor.from_checkpoint(
            model, device=device, tta=flips, runtime=runtime, amp=amp, postprocess=postprocess,
            batch_size=batch_size, threads=threads,
        )  # fmt: skip
        backend = predictor.backend
        if verbose:
            err_console.print(f"runtime: {backend.runtime}, {backend.precision} on "
                              f"{backend.device} ({escape(backend.reason)})")  # fmt: skip
        with progress_bar("predicting", enabled=not quiet) as progress:
            summary = predict_paths(predictor, inputs, out, label_map=label_map,
                                    save_probabilities=probabilities, overlays=overlays,
                                    progress=progress, formats=formats)  # fmt: skip
    except (CxrsegError, ValueError) as exc:
        raise fail(str(exc)) from exc
    layout = "labels/<id>.png" if label_map else "masks/<structure>/<id>.png"
    layouts = [layout] if "png" in formats else []
    if "dicom-seg" in formats:
        layouts.append(f"{len(summary.dicom_seg)} DICOM SEG in dicom-seg/<id>.dcm")
    console.print(
        f"Predicted {len(summary.written)} image(s) on {backend.device} "
        f"({backend.runtime}, {backend.precision}) into "
        f"{escape(str(out))} ({'; '.join(layouts)})"
    )
    if summary.skipped:
        console.print(f"Skipped {len(summary.skipped)} non-image file(s) in the input folders.")
    _warn_flagged(summary.flagged, len(summary.written), predictor.info.quality is not None)
    if summary.failed:
        err_console.print(f"[bold red]{len(summary.failed)} input(s) failed:[/]", markup=True)
        for path, message in summary.failed:
            err_console.print(f"  {escape(str(path))}: {escape(message)}", markup=True)
        raise typer.Exit(1)


def _warn_flagged(flagged: dict[str, Any], written: int, learned: bool) -> None:
    """One warning line per flagged case, then the count (exit status unchanged)."""
    from rich.markup import escape

    for case_id, flags in flagged.items():
        reasons = "; ".join(f"{flag.code}: {flag.message}" for flag in flags)
        err_console.print(f"[yellow]warning[/] {escape(case_id)}: {escape(reasons)}")
    if flagged:
        err_console.print(
            f"[yellow]{len(flagged)} of {written} prediction(s) flagged[/]: check them before "
            "use (flags in predictions.json)"
        )
    if not learned:
        err_console.print("This model has no learned ranges (older checkpoint): only the "
                          "image and confidence checks ran.")  # fmt: skip


def _model_and_inputs(paths: list[str], shipped: str | None) -> tuple[Path, list[str]]:
    """Split the positional arguments into the model and the inputs."""
    if shipped is not None:
        # lazy: start-up time
        from cxrseg.catalogue import model_path

        return model_path(shipped), paths
    if len(paths) < 2:
        raise InputError(
            "give a model and at least one input",
            hint="cxrseg predict MODEL INPUT... --out DIR, or cxrseg predict --model lungs "
            "INPUT... --out DIR for the lung model shipped with cxrseg",
        )
    # lazy: start-up time
    from cxrseg.catalogue import resolve

    return resolve(paths[0]), paths[1:]  # a shipped model's name works as MODEL too


@app.command("export")
def export_command(
    run: Annotated[Path, typer.Argument(help="Run folder or checkpoint to export.")],
    format: Annotated[str, typer.Option("--format", "-f", help="onnx or torchscript.")] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="File to write (default: RUN/export/model.onnx)."),
    ] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset version (>= 17).")] = 17,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Compare with PyTorch before writing.")
    ] = True,
) -> None:
    """Export a trained model to ONNX or TorchScript, checked against PyTorch's output."""
    # lazy: start-up time
    import json

    from rich.markup import escape

    from cxrseg.inference.export import ExportCheckError, default_export_path, export_model

    try:
        target = out if out is not None else default_export_path(run, format)
        written = export_model(run, target, format, check=check, opset=opset)
    except ExportCheckError as exc:
        raise fail(str(exc), code=1) from exc
    except CxrsegError as exc:
        raise fail(str(exc)) from exc
    sidecar = written.with_suffix(".json")
    diff = json.loads(sidecar.read_text(encoding="utf-8"))["export"].get("max_abs_diff")
    checked = "not checked" if diff is None else f"max abs difference to PyTorch {diff:.2g}"
    console.print(f"Exported {format} to {escape(str(written))} ({checked})")
    console.print(f"Metadata: {escape(str(sidecar))}")
    if format == "onnx":
        console.print(f"Next: cxrseg predict {escape(str(written))} IMAGES... --out DIR")


@app.command("models")
def models_command(
    name: Annotated[
        str | None, typer.Argument(help="Show this model's card (default: list them all).")
    ] = None,
) -> None:
    """List the models shipped with cxrseg, or print one model's card."""
    # lazy: start-up time
    from rich.markdown import Markdown
    from rich.markup import escape
    from rich.table import Table

    from cxrseg.catalogue import available, describe

    try:
        if name is not None:
            info = describe(name)
            console.print(Markdown(Path(info["card"]).read_text(encoding="utf-8")))
            return
        table = Table(title="Models shipped with cxrseg (cxrseg predict --model NAME ...)")
        for column in ("name", "structures", "input", "parameters", "MB", "held-out Dice"):
            table.add_column(column)
        licences = []
        for model in available():
            info = describe(model)
            scores = ", ".join(f"{row['test']} {row['dice_mean']:.3f}" for row in info["results"])
            table.add_row(
                model, ", ".join(info["structures"]), f"{info['input_size']} px",
                f"{info['parameters'] / 1e6:.2f} M", f"{info['weights_mb']:.1f}",
                scores or "-",
            )  # fmt: skip
            licences.append(f"{model}: {info['summary']}; weights licensed {info['license']} "
                            f"({info['license_file']})")  # fmt: skip
    except CxrsegError as exc:
        raise fail(str(exc)) from exc
    console.print(table)
    for line in licences:
        console.print(escape(line))
    console.print("The card of a model (data, figures, intended use): cxrseg models NAME")
