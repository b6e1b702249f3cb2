"""Commands for trained models: `cxrseg predict` and `cxrseg export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrseg.cli._app import app, console, err_console, fail, progress_bar
from cxrseg.errors import CxrsegError


@app.command("predict")
def predict_command(
    model: Annotated[
        Path, typer.Argument(help="Run folder, checkpoint (folder or .json) or exported .onnx.")
    ],
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder: masks/<structure>/<id>.png, ...")
    ],
    label_map: Annotated[
        bool, typer.Option("--label-map", help="Write labels/<id>.png (0..K) instead of masks/.")
    ] = False,
    probabilities: Annotated[
        bool, typer.Option("--probabilities", help="Also write 16-bit probability maps.")
    ] = False,
    overlays: Annotated[
        bool, typer.Option("--overlays", help="Also write overlays/<id>.png.")
    ] = False,
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
        typer.Option(help="auto (ONNX Runtime on the CPU when installed), torch or onnxruntime."),
    ] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per network call.")] = 4,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Segment radiographs; masks keep each image's original size. Exit 1 if any input failed."""
    from rich.markup import escape

    from cxrseg.inference import Predictor, predict_paths

    flips = [name for name, on in (("hflip", tta), ("vflip", tta_vflip)) if on]
    try:
        predictor = Predictor.from_checkpoint(
            model, device=device, tta=flips, runtime=runtime, postprocess=postprocess,
            batch_size=batch_size,
        )  # fmt: skip
        with progress_bar("predicting", enabled=not quiet) as progress:
            summary = predict_paths(predictor, inputs, out, label_map=label_map,
                                    save_probabilities=probabilities, overlays=overlays,
                                    progress=progress)  # fmt: skip
    except (CxrsegError, ValueError) as exc:
        raise fail(escape(str(exc))) from exc
    layout = "labels/" if label_map else "masks/<structure>/"
    console.print(
        f"Predicted {len(summary.written)} image(s) on {predictor.backend.device} "
        f"({getattr(predictor.backend, 'runtime', '?')}) into "
        f"{escape(str(out))} ({layout}<id>.png)"
    )
    if summary.skipped:
        console.print(f"Skipped {len(summary.skipped)} non-image file(s) in the input folders.")
    if summary.failed:
        err_console.print(f"[bold red]{len(summary.failed)} input(s) failed:[/]", markup=True)
        for path, message in summary.failed:
            err_console.print(f"  {escape(str(path))}: {escape(message)}", markup=True)
        raise typer.Exit(1)


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
    import json

    from rich.markup import escape

    from cxrseg.export import ExportCheckError, default_export_path, export_model

    try:
        target = out if out is not None else default_export_path(run, format)
        written = export_model(run, target, format, check=check, opset=opset)
    except ExportCheckError as exc:
        raise fail(escape(str(exc)), code=1) from exc
    except CxrsegError as exc:
        raise fail(escape(str(exc))) from exc
    sidecar = written.with_suffix(".json")
    diff = json.loads(sidecar.read_text(encoding="utf-8"))["export"].get("max_abs_diff")
    checked = "not checked" if diff is None else f"max abs difference to PyTorch {diff:.2g}"
    console.print(f"Exported {format} to {escape(str(written))} ({checked})")
    console.print(f"Metadata: {escape(str(sidecar))}")
    if format == "onnx":
        console.print(f"Next: cxrseg predict {escape(str(written))} IMAGES... --out DIR")
