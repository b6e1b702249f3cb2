"""The `cxrseg train` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cxrseg.cli._app import app, console, err_console, fail
from cxrseg.errors import CxrsegError


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
        Path | None,
        typer.Option("--init", help="Fine-tune from this checkpoint or shipped model (lungs)."),
    ] = None,
    splits: Annotated[Path | None, typer.Option("--splits", help="Reuse this splits.json.")] = None,
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            help="Cross-validation: train K seeded folds into --out/fold_<k>; rerun to continue.",
        ),
    ] = None,
    folds_file: Annotated[
        Path | None,
        typer.Option(
            "--folds-file",
            help="Cross-validation folds from a file: 'CASE_ID FOLD' lines (FOLD 0.., or test).",
        ),
    ] = None,
    test_fraction: Annotated[
        float | None,
        typer.Option(
            "--test-fraction", help="Share of cases held out for testing (--folds: default 0)."
        ),
    ] = None,
    amp: Annotated[
        bool | None,
        typer.Option("--amp/--no-amp", help="bfloat16 autocast on CUDA and bf16-capable CPUs."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a U-Net; writes checkpoints, metrics.csv and curves.png into --out.

    With --folds K (or --folds-file) it trains K folds, each a resumable run in --out/fold_<k>,
    and writes out-of-fold predictions, a summary with mean ± sd per structure, and the
    post-processing chosen on all of them; `cxrseg predict OUT IMAGES...` averages the folds.
    """
    # lazy: start-up time
    from rich.markup import escape

    from cxrseg.training.config import TrainConfig
    from cxrseg.training.run import train

    options = {"size": size, "epochs": epochs, "batch_size": batch_size, "lr": lr, "loss": loss,
               "device": device, "workers": workers, "seed": seed, "amp": amp}  # fmt: skip
    overrides = {k: v for k, v in options.items() if v is not None}
    try:
        config = TrainConfig.from_yaml(config_file) if config_file is not None else None
        if folds is not None or folds_file is not None:
            if splits is not None or init is not None:
                raise fail("--folds/--folds-file make their own splits and train from scratch; "
                           "drop --splits and --init.")  # fmt: skip
            _train_folds(data, out, config, overrides, folds, folds_file, test_fraction, quiet)
            return
        if test_fraction is not None:
            overrides["test_fraction"] = test_fraction
        with _TrainProgress(enabled=not quiet) as report:
            result = train(data, out, config, overrides=overrides, resume=resume, init=init,
                           splits=splits, on_event=report)  # fmt: skip
    except CxrsegError as exc:
        raise fail(str(exc)) from exc
    dice = ", ".join(f"{k} {v:.4f}" for k, v in result.best_dice.items())
    console.print(
        f"Training {result.stopped} at epoch {result.epoch}; best epoch {result.best_epoch}: "
        f"validation Dice {dice}"
    )
    console.print(f"Best checkpoint: {escape(str(out / 'best'))}")
    console.print(f"Curves and metrics: {escape(str(out / 'curves.png'))}, metrics.csv")


def _train_folds(
    data: Path,
    out: Path,
    config: Any,
    overrides: dict[str, Any],
    folds: int | None,
    folds_file: Path | None,
    test_fraction: float | None,
    quiet: bool,
) -> None:
    """Cross-validation: train the folds, then print the summary table."""
    # lazy: start-up time
    from rich.markup import escape
    from rich.table import Table

    from cxrseg.crossval import train_folds

    with _TrainProgress(enabled=not quiet) as report:
        result = train_folds(data, out, config, folds=folds, folds_file=folds_file,
                             test_fraction=test_fraction or 0.0, overrides=overrides,
                             on_event=report)  # fmt: skip
    record = result.record
    if not record:
        return  # not the main process of a torchrun job
    table = Table(title=f"{record['k']}-fold cross-validation, {record['n_cases']} out-of-fold "
                  "cases (mean ± sd over cases)")  # fmt: skip
    for column in ("structure", "Dice", "Jaccard", "HD95 px", "Dice per fold"):
        table.add_column(column)
    for name in record["structures"]:
        stats = record["summary"][name]
        cells = [f"{stats[m]['mean']:.4f} ± {stats[m]['std']:.4f}" for m in ("dice", "jaccard")]
        per_fold = ", ".join(f"{d:.4f}" for d in record["fold_dice"][name])
        table.add_row(name, *cells, f"{stats['hd95']['mean']:.2f}", per_fold)
    console.print(table)
    console.print(f"Out-of-fold predictions: {escape(str(out / 'oof'))}; report: "
                  f"{escape(str(out / 'evaluation' / 'report.html'))}")  # fmt: skip
    console.print(f"Predict with the ensemble: cxrseg predict {escape(str(out))} IMAGES... "
                  "--out DIR")  # fmt: skip


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
        if kind == "fold":
            if self.bar is not None:
                self.bar.stop()
                self.bar = None
            what = {"start": "training", "resume": "resuming", "done": "finished earlier"}
            console.print(f"fold {event['fold'] + 1}/{event['k']}: {what[event['status']]}")
        elif kind == "start":
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
        console.print(f"  precision: {event['precision']}  ({event['reasons']['precision']})")
        console.print(f"  augmentation: on {event['augment_on']}")
        if event["start_epoch"]:
            console.print(f"  resuming after epoch {event['start_epoch']}")

    def _start_bar(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        # lazy: start-up time
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                            TimeRemainingColumn(), console=err_console)  # fmt: skip
        epochs_left = event["config"]["epochs"] - event["start_epoch"]
        self.task = self.bar.add_task("training", total=epochs_left * event["steps_per_epoch"])
        self.bar.start()
