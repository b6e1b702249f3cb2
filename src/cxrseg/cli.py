"""The ``cxrseg`` command line: one subcommand per stage, a thin shell over library functions.

This is the only module that prints. Heavy modules (torch, OpenCV) are imported inside the
commands, so ``cxrseg --help`` stays fast. Every command is a plain function that tests call
through :class:`typer.testing.CliRunner`.

Library functions report progress through a ``progress(done, total)`` callback; the
:func:`progress_bar` context manager turns that into a rich progress bar on stderr.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cxrseg._version import __version__
from cxrseg.errors import CxrsegError

app = typer.Typer(
    name="cxrseg",
    help="Chest radiograph segmentation: inspect data, augment, train, predict, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console(stderr=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"cxrseg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error on stderr and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``progress(done, total)`` callback drawn as a rich progress bar on stderr."""
    if not enabled:
        yield lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


# --- commands: each block below belongs to one stage; keep them independent ---

# === phantom ===


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
        raise fail(escape(str(exc))) from exc
    console.print(f"Wrote {len(ids)} phantoms of {shape[0]}x{shape[1]} px to {escape(str(out))}")
    console.print(f"Next: cxrseg inspect {escape(str(out))}")


# === inspect ===


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


@app.command("inspect")
def inspect_command(
    data: Annotated[
        Path | None,
        typer.Argument(help="Dataset folder: images/ + masks/, JSRT+SCR, Montgomery, Shenzhen."),
    ] = None,
    images: Annotated[
        Path | None, typer.Option("--images", help="Images folder (instead of DATA).")
    ] = None,
    masks: Annotated[
        list[str] | None,
        typer.Option(
            "--masks",
            metavar="[NAME=]DIR",
            help="Masks folder with --images; repeat NAME=DIR for one folder per structure.",
        ),
    ] = None,
    layout: Annotated[
        str, typer.Option(help="auto, standard, jsrt, montgomery or shenzhen.")
    ] = "auto",
    strict: Annotated[
        bool, typer.Option("--strict", help="Count every problem as an error.")
    ] = False,
    json_out: Annotated[
        str | None,
        typer.Option("--json", metavar="FILE", help="Write a JSON summary to FILE ('-': stdout)."),
    ] = None,
    sheet: Annotated[
        Path | None,
        typer.Option(metavar="FILE.png", help="Write a contact sheet of mask overlays."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Case rows shown (first and last); 0 shows all.")] = 20,
    mask_suffix: Annotated[
        list[str] | None,
        typer.Option(
            "--mask-suffix",
            metavar="SUFFIX",
            help="Suffix removed from mask names to get the case id (repeatable; replaces "
            "the defaults _mask, -mask, _label, _seg).",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Threads reading files.")] = 2,
) -> None:
    """Check a dataset: pairs, sizes, bit depths, intensities, mask values and coverage.

    Prints one row per case, a summary per structure and every problem found. Nothing is
    written unless asked: --json FILE and --sheet FILE.png (never inside the dataset folder).
    Exit status: 0 when there is no error, 1 when there are errors, 2 when the input is unusable.
    """
    import json

    from rich.markup import escape

    from cxrseg.data import DEFAULT_MASK_SUFFIXES, discover, validate
    from cxrseg.report.inspection import inspection_renderables

    try:
        dataset = discover(
            data,
            images=images,
            masks=_parse_masks(masks) if masks else None,
            layout=layout,
            strict=strict,
            mask_suffixes=tuple(mask_suffix) if mask_suffix else DEFAULT_MASK_SUFFIXES,
        )
    except ValueError as exc:  # InputError included
        raise fail(escape(str(exc))) from exc
    outputs = [Path(json_out)] if json_out not in (None, "-") else []
    outputs += [sheet] if sheet is not None else []
    for target in outputs:
        if dataset.contains(target):
            raise fail(
                f"{escape(str(target))} is inside the dataset's folders; inspect never writes "
                "there. Choose a path outside it."
            )
    if sheet is not None and sheet.suffix.lower() != ".png":
        raise fail(f"--sheet {escape(str(sheet))} must end in .png.")

    with progress_bar("inspect", enabled=len(dataset.cases) >= 50) as progress:
        report = validate(dataset, progress=progress, workers=workers)
    out = err_console if json_out == "-" else console
    for part in inspection_renderables(report, limit):
        out.print(part)

    if json_out is not None:
        text = json.dumps(report.to_dict(), indent=1) + "\n"
        if json_out == "-":
            typer.echo(text, nl=False)
        else:
            from cxrseg.io import atomic_write

            target = Path(json_out)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(target) as tmp:
                tmp.write_text(text, encoding="utf-8")
            out.print(f"Wrote {escape(str(target))}")
    if sheet is not None:
        from cxrseg.report.contact_sheet import write_contact_sheet

        flagged = {stats.case_id for stats in report.cases if not stats.valid}
        with progress_bar("contact sheet", enabled=len(dataset.cases) >= 50) as progress:
            write_contact_sheet(sheet, dataset, flagged=flagged, progress=progress)
        out.print(f"Wrote {escape(str(sheet))}")
    if report.errors:
        raise typer.Exit(1)


# === augment ===


@app.command("augment")
def augment_command(
    data: Annotated[Path, typer.Argument(help="Dataset folder (standard, Montgomery, ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder, outside DATA.")],
    number: Annotated[int, typer.Option("-n", "--number", help="Number of samples to write.")],
    size: Annotated[int, typer.Option(help="Side of the square images written, in pixels.")] = 512,
    resize: Annotated[
        str, typer.Option(help="squash (ignore aspect ratio) or letterbox (keep it, pad with 0).")
    ] = "squash",
    pipeline_file: Annotated[
        Path | None, typer.Option("--pipeline", help="Pipeline YAML (as saved by a run).")
    ] = None,
    random_distortion: Annotated[
        tuple[int, int, int] | None,
        typer.Option(metavar="GW GH MAG", help="Augmentor's random_distortion, probability 1."),
    ] = None,
    gaussian_distortion: Annotated[
        tuple[int, int, float, str, str] | None,
        typer.Option(
            metavar="GW GH MAG CORNER METHOD",
            help="Augmentor's gaussian_distortion, probability 1 (CORNER: bell|ul|ur|dl|dr, "
            "METHOD: in|out).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: the pipeline's, or 0).")] = None,
    workers: Annotated[int, typer.Option(help="Threads; the output does not depend on it.")] = 1,
) -> None:
    """Write N augmented image/mask pairs, with a manifest; rerun to continue an interrupted run."""
    from cxrseg.augment.offline import augment_dataset
    from cxrseg.augment.pipeline import Pipeline

    flags = random_distortion is not None or gaussian_distortion is not None
    if pipeline_file is not None and flags:
        raise fail("give either --pipeline or --random-distortion/--gaussian-distortion, not both.")
    if pipeline_file is None and not flags:
        raise fail(
            "choose the augmentation: --pipeline FILE.yaml, --random-distortion GW GH MAG or "
            "--gaussian-distortion GW GH MAG CORNER METHOD."
        )
    try:
        if pipeline_file is not None:
            pipeline = Pipeline.from_yaml(pipeline_file)
        else:
            pipeline = Pipeline(seed=0 if seed is None else seed)
            if random_distortion is not None:
                pipeline.random_distortion(1.0, *random_distortion)
            if gaussian_distortion is not None:
                pipeline.gaussian_distortion(1.0, *gaussian_distortion)
        with progress_bar("augment") as progress:
            summary = augment_dataset(
                data,
                out,
                number,
                pipeline=pipeline,
                size=size,
                resize=resize,
                seed=seed,
                workers=workers,
                progress=progress,
            )
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"{summary.written} samples written, {summary.skipped} already there: {summary.out} "
        f"(manifest {summary.manifest.name})"
    )


# === train ===


@app.command("train")
def train_command(
    data: Annotated[Path, typer.Argument(help="Dataset folder (standard, Montgomery, ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (new, or with --resume).")],
    config_file: Annotated[
        Path | None, typer.Option("--config", "-c", help="Training options as YAML.")
    ] = None,
    size: Annotated[
        int | None, typer.Option(help="Square training size (default: from the data, <= 512).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Total epochs.")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Images per step (default: from memory).")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    loss: Annotated[str | None, typer.Option(help="dice_ce (default), ce or dice.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Data-loader workers; results do not depend on it.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of splits, weights and augmentation.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last epoch.")
    ] = False,
    init: Annotated[
        Path | None, typer.Option("--init", help="Start from this checkpoint (fine-tuning).")
    ] = None,
    splits: Annotated[Path | None, typer.Option("--splits", help="Reuse this splits.json.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a U-Net; writes checkpoints, metrics.csv and curves.png into --out."""
    from rich.markup import escape

    from cxrseg.training.config import TrainConfig
    from cxrseg.training.run import train

    options = {"size": size, "epochs": epochs, "batch_size": batch_size, "lr": lr,
               "loss": loss, "device": device, "workers": workers, "seed": seed}  # fmt: skip
    overrides = {k: v for k, v in options.items() if v is not None}
    try:
        config = TrainConfig.from_yaml(config_file) if config_file is not None else None
        with _TrainProgress(enabled=not quiet) as report:
            result = train(data, out, config, overrides=overrides, resume=resume, init=init,
                           splits=splits, on_event=report)  # fmt: skip
    except CxrsegError as exc:
        raise fail(escape(str(exc))) from exc
    dice = ", ".join(f"{k} {v:.4f}" for k, v in result.best_dice.items())
    console.print(
        f"Training {result.stopped} at epoch {result.epoch}; best epoch {result.best_epoch}: "
        f"validation Dice {dice}"
    )
    console.print(f"Best checkpoint: {escape(str(out / 'best'))}")
    console.print(f"Curves and metrics: {escape(str(out / 'curves.png'))}, metrics.csv")


class _TrainProgress:
    """Turns training events into a start banner and a rich bar with loss, Dice and ETA."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar: Any = None
        self.task: Any = None
        self.text = ""

    def __enter__(self) -> _TrainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "start":
            self._banner(event)
            self._start_bar(event)
        elif kind == "step" and self.bar is not None:
            text = f"epoch {event['epoch']} loss {event['loss']:.4f}{self.text}"
            self.bar.update(self.task, advance=1, description=text)
        elif kind == "epoch":
            best = " *" if event["best"] else ""
            self.text = f" | val Dice {event['val_dice_mean']:.4f}{best}"
            line = (
                f"epoch {event['epoch']}/{event['epochs']}: train loss {event['train_loss']:.4f}, "
                f"val loss {event['val_loss']:.4f}, val Dice {event['val_dice_mean']:.4f}{best} "
                f"({event['epoch_s']:.0f} s)"
            )
            (self.bar.console if self.bar is not None else err_console).print(line)
        elif kind == "postprocess":
            chosen = event["postprocessing"]
            steps = {name: {k: v for k, v in cfg.items() if v} for name, cfg in chosen.items()}
            err_console.print(f"post-processing chosen on validation: {steps}")

    def _banner(self, event: dict[str, Any]) -> None:
        config = event["config"]
        console.print(
            f"cxrseg train: {event['cases']['train']} train / {event['cases']['val']} val / "
            f"{event['cases']['test']} test cases, structures {event['structures']}, "
            f"{event['parameters']:,} parameters, on {event['device']}"
            + (f" x{event['world_size']}" if event["world_size"] > 1 else "")
        )
        for key in ("size", "mode", "batch_size", "workers", "epochs", "lr", "loss"):
            why = event["reasons"].get(key)
            console.print(f"  {key}: {config[key]}" + (f"  ({why})" if why else ""))
        console.print(f"  augmentation: on {event['augment_on']}")
        if event["start_epoch"]:
            console.print(f"  resuming after epoch {event['start_epoch']}")

    def _start_bar(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                            TimeRemainingColumn(), console=err_console)  # fmt: skip
        epochs_left = event["config"]["epochs"] - event["start_epoch"]
        self.task = self.bar.add_task("training", total=epochs_left * event["steps_per_epoch"])
        self.bar.start()


# === predict ===


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


# === evaluate ===


@app.command("evaluate")
def evaluate_command(
    pred: Annotated[
        Path, typer.Argument(help="Predictions folder: masks/<structure>/<id>.png (predict).")
    ],
    data: Annotated[Path, typer.Argument(help="Reference dataset folder (any layout).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder, outside PRED and DATA.")],
    allow_missing: Annotated[
        bool,
        typer.Option("--allow-missing", help="Evaluate the ids on both sides; list the others."),
    ] = False,
    structures: Annotated[
        str | None,
        typer.Option(metavar="A,B", help="Structures to evaluate, comma-separated (default all)."),
    ] = None,
    worst: Annotated[int, typer.Option(min=0, help="Worst cases shown with overlays.")] = 24,
    workers: Annotated[int, typer.Option(min=1, help="Threads reading and scoring.")] = 2,
) -> None:
    """Score predicted masks against references: cases.csv, summary.json and report.html.

    Exit status: 0 on success, 1 when ids (unless --allow-missing), structures or sizes differ
    (all listed), 2 when the input is unusable.
    """
    from rich.markup import escape
    from rich.table import Table

    from cxrseg.evaluation import MismatchError, evaluate

    names = None if structures is None else [s for s in structures.split(",") if s.strip()]
    try:
        with progress_bar("evaluate") as progress:
            result = evaluate(
                pred,
                data,
                out,
                structures=names,
                allow_missing=allow_missing,
                worst=worst,
                progress=progress,
                workers=workers,
            )
    except MismatchError as exc:
        raise fail(escape(str(exc)), code=1) from exc
    except (ValueError, TypeError) as exc:  # InputError included
        raise fail(escape(str(exc))) from exc
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
    console.print(f"Report: {escape(str(result.report_path))}")


# === export ===


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


# === demo ===


@app.command("demo")
def demo_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Demo folder (new or empty; see --overwrite).")
    ] = Path("cxrseg-demo"),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier demo in --out.")
    ] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="Seconds-long smoke run: tiny images, 2 epochs.")
    ] = False,
    structures: Annotated[
        str,
        typer.Option(
            metavar="A,B|all",
            help="Structures to segment: comma-separated names, or all (adds the clavicles).",
        ),
    ] = "left_lung,right_lung,heart",
    epochs: Annotated[int | None, typer.Option(min=1, help="Training epochs.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of phantoms, splits and training.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Run the whole pipeline on synthetic radiographs; print where the report is.

    Writes phantoms, distorts the training ones (Augmentor's mesh distortions),
    trains a small U-Net, predicts held-out phantoms with the post-processing
    chosen on validation and evaluates them. A few minutes on 2 CPU cores.
    """
    from rich.markup import escape
    from rich.table import Table

    from cxrseg.demo import DemoSettings, run_demo
    from cxrseg.phantom import STRUCTURES

    names = [s.strip() for s in structures.split(",") if s.strip()]
    if names == ["all"]:
        names = list(STRUCTURES)
    changes: dict[str, Any] = {"structures": tuple(names), "seed": seed}
    if epochs is not None:
        changes["epochs"] = epochs
    try:
        settings = (DemoSettings.quick if quick else DemoSettings.full)(**changes)
        with _DemoProgress(enabled=not quiet) as report:
            result = run_demo(out, settings, overwrite=overwrite, device=device, on_event=report)
    except (CxrsegError, ValueError) as exc:
        raise fail(escape(str(exc))) from exc
    table = Table(title="Held-out phantoms", title_justify="left")
    table.add_column("structure")
    table.add_column("mean Dice", justify="right")
    for name, value in result.dice.items():
        table.add_row(escape(name), f"{value:.3f}")
    table.add_row("[bold]mean[/]", f"[bold]{result.mean_dice:.3f}[/]")
    console.print(table)
    console.print(f"Done in {result.total_seconds:.0f} s. Report: {escape(str(result.report))}")
    console.print(
        f"Next: cxrseg predict {escape(str(out / 'run'))} YOUR_IMAGES --out DIR, or train on "
        "your data: cxrseg train DATA --out RUN"
    )


class _DemoProgress:
    """Prints one line per finished demo step; a transient bar shows the running one."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and err_console.is_terminal
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> _DemoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __call__(self, event: dict[str, Any]) -> None:
        from rich.markup import escape

        kind = event["event"]
        if kind == "step" and self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            label = f"[{event['index']}/{event['steps']}] {event['step']}"
            columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            description = TextColumn("{task.description}")
            self.bar = Progress(description, *columns, console=err_console, transient=True)
            self.task = self.bar.add_task(label, total=None)
            self.bar.start()
        elif kind == "progress" and self.bar is not None:
            self.bar.update(self.task, completed=event["done"], total=event["total"])
        elif kind == "done":
            self._stop()
            console.print(
                f"{event['step']:<9} {event['seconds']:6.1f} s  {escape(event['message'])}"
            )


def main() -> None:
    """Entry point of the ``cxrseg`` console script."""
    try:
        app()
    except CxrsegError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
