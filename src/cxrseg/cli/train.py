"""The `cxrseg train` command."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from cxrseg.cli._app import app, console, err_console, fail
from cxrseg.cli._threads import Threads, use_threads
from cxrseg.errors import CxrsegError


@app.command("train")
def train_command(
    data: Annotated[Path, typer.Argument(help="Dataset folder (standard, Montgomery, ...).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="DIR", help="Run folder (new, or with --resume).")
    ],
    config_file: Annotated[
        Path | None,
        typer.Option("--config", "-c", metavar="FILE", help="Training options as YAML."),
    ] = None,
    # Defaults below are TrainConfig's (a YAML --config changes them); tests keep them equal.
    size: Annotated[
        int | None,
        typer.Option(
            help="Square training size, a multiple of 32.",
            show_default="median image size of the data, <= 512",
        ),
    ] = None,  # fmt: skip
    epochs: Annotated[
        int | None, typer.Option(help="At most this many epochs.", show_default="300")
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            "--time-budget",
            metavar="DURATION",
            help="Fit the run to a wall-clock budget: 20m, 1h30m, 90s.",
        ),
    ] = None,  # fmt: skip
    patience: Annotated[
        int | None,
        typer.Option(
            help="Epochs without improvement before stopping.", show_default="from the data"
        ),
    ] = None,  # fmt: skip
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help="Images per step.", show_default="from free memory"),
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate.", show_default="0.002")
    ] = None,
    loss: Annotated[
        str | None, typer.Option(help="dice_ce, ce or dice.", show_default="dice_ce")
    ] = None,
    val_fraction: Annotated[
        float | None,
        typer.Option(
            "--val-fraction", help="Share of the cases kept for validation.", show_default="0.15"
        ),
    ] = None,  # fmt: skip
    test_fraction: Annotated[
        float | None,
        typer.Option(
            "--test-fraction",
            help="Share of the cases held out for testing; 0 trains on the rest whole.",
            show_default="0.15; 0 with --folds",
        ),
    ] = None,  # fmt: skip
    device: Annotated[
        str | None, typer.Option(help="auto, cpu or cuda.", show_default="auto")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Data-loader workers; results do not depend on it.",
            show_default="from the CPU count",
        ),
    ] = None,  # fmt: skip
    threads: Threads = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of splits, weights and augmentation.", show_default="0")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last epoch.")
    ] = False,
    init: Annotated[
        Path | None,
        typer.Option(
            "--init",
            metavar="RUN|NAME",
            help="Fine-tune from this checkpoint or shipped model (lungs).",
        ),
    ] = None,  # fmt: skip
    splits: Annotated[
        Path | None, typer.Option("--splits", metavar="FILE", help="Reuse this splits.json.")
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            metavar="K",
            help="Cross-validation: train K seeded folds into --out/fold_<k>; rerun to continue.",
        ),
    ] = None,
    folds_file: Annotated[
        Path | None,
        typer.Option(
            "--folds-file",
            metavar="FILE",
            help="Cross-validation folds from a file: 'CASE_ID FOLD' lines (FOLD 0.., or test).",
        ),
    ] = None,
    amp: Annotated[
        bool | None,
        typer.Option(
            "--amp/--no-amp",
            help="bfloat16 autocast on CUDA and bf16-capable CPUs.",
            show_default="on where the hardware supports it",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a U-Net until it stops improving; writes checkpoints and curves into --out.

    With --folds K (or --folds-file) it trains K folds, each a resumable run in --out/fold_<k>,
    and writes out-of-fold predictions, a summary with mean ± sd per structure, and the
    post-processing chosen on all of them; `cxrseg predict OUT IMAGES...` averages the folds.
    """
    # lazy: start-up time
    from rich.markup import escape

    from cxrseg.training.config import TrainConfig
    from cxrseg.training.run import train

    use_threads(threads)
    options = {"size": size, "epochs": epochs, "batch_size": batch_size, "lr": lr, "loss": loss,
               "val_fraction": val_fraction, "device": device, "workers": workers, "seed": seed,
               "amp": amp, "time_budget": time_budget, "patience": patience}  # fmt: skip
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
    console.print(f"Why it stopped: {escape(result.reason)}")
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
    table = Table(title=f"{record['k']}-fold cross-validation: {record['n_cases']} cases, each "
                  "predicted by the fold that did not train on it")  # fmt: skip
    for column in ("structure", "Dice mean ± sd", "Jaccard", "HD95 px", "fold Dice"):
        table.add_column(column)
    for name in record["structures"]:
        stats, per_fold = record["summary"][name], record["fold_dice"][name]
        table.add_row(name, f"{stats['dice']['mean']:.4f} ± {stats['dice']['std']:.4f}",
                      f"{stats['jaccard']['mean']:.4f}", f"{stats['hd95']['mean']:.2f}",
                      f"{min(per_fold):.3f}-{max(per_fold):.3f}")  # fmt: skip
    console.print(table)
    steps = {
        name: {k: v for k, v in cfg.items() if v} for name, cfg in record["postprocessing"].items()
    }
    console.print(f"Post-processing chosen on all out-of-fold predictions: {steps}")
    console.print(f"Out-of-fold predictions: {escape(str(out / 'oof'))}; report: "
                  f"{escape(str(out / 'evaluation' / 'report.html'))}")  # fmt: skip
    console.print(f"Predict with the ensemble: cxrseg predict {escape(str(out))} IMAGES... "
                  "--out DIR")  # fmt: skip


class _TrainProgress:
    """Turns training events into a start banner, one line per epoch on stdout (also when it
    is a file or a pipe) and a rich bar on stderr with the current epoch's figures and ETA."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar: Any = None
        self.task: Any = None
        self.last_val = ""
        self.epochs = 0
        self.running = (0, 0.0, 0)  # epoch, sum of its step losses so far, steps
        self.start = self.steps = 0

    def __enter__(self) -> _TrainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, event: Mapping[str, Any]) -> None:
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
            self.epochs = event["config"]["epochs"]
        elif kind == "step":
            epoch, total, steps = self.running
            if epoch != event["epoch"]:
                total, steps = 0.0, 0
            self.running = (event["epoch"], total + event["loss"], steps + 1)
            if self.bar is not None:
                self.bar.update(self.task, advance=1, description=self.describe(event))
        elif kind == "epoch":
            best = " *" if event["best"] else ""
            self.last_val = f" | val Dice {event['val_dice_mean']:.4f} (epoch {event['epoch']})"
            console.print(
                f"epoch {event['epoch']}/{event['epochs']}: train loss {event['train_loss']:.4f}, "
                f"val loss {event['val_loss']:.4f}, val Dice {event['val_dice_mean']:.4f}{best} "
                f"({event['epoch_s']:.0f} s)"
            )
            self.epochs = event["epochs"]  # the stop rule may have moved the last epoch
            if self.bar is not None:
                self.bar.update(self.task, total=(event["epochs"] - self.start) * self.steps)
        elif kind == "postprocess":
            chosen = event["postprocessing"]
            active = {name: {k: v for k, v in cfg.items() if v} for name, cfg in chosen.items()}
            console.print(f"post-processing chosen on validation: {active}")

    def describe(self, event: Mapping[str, Any]) -> str:
        """``epoch 3/30 step 12/40 loss 0.2345`` (this epoch's mean so far) + the last val."""
        _, total, steps = self.running
        mean = total / max(steps, 1)
        return (
            f"epoch {event['epoch']}/{self.epochs} step {event['step']}/{event['steps']} "
            f"loss {mean:.4f}{self.last_val}"
        )

    def _banner(self, event: Mapping[str, Any]) -> None:
        from cxrseg.training.duration import format_seconds  # lazy: start-up time

        config = event["config"]
        console.print(
            f"cxrseg train: {event['cases']['train']} train / {event['cases']['val']} val / "
            f"{event['cases']['test']} test cases, structures {event['structures']}, "
            f"{event['parameters']:,} parameters, on {event['device']}"
            + (f" x{event['world_size']}" if event["world_size"] > 1 else "")
        )
        for key in ("size", "mode", "batch_size", "workers", "epochs", "patience",
                    "time_budget", "schedule", "lr", "loss"):  # fmt: skip
            why = event["reasons"].get(key)
            value = config[key]
            if key == "time_budget":
                if value is None:
                    continue
                value = format_seconds(value)
            console.print(f"  {key}: {value}" + (f"  ({why})" if why else ""))
        console.print(f"  precision: {event['precision']}  ({event['reasons']['precision']})")
        console.print(f"  augmentation: on {event['augment_on']}")
        if event["start_epoch"]:
            console.print(f"  resuming after epoch {event['start_epoch']}")

    def _start_bar(self, event: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        # lazy: start-up time
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                            TimeRemainingColumn(), console=err_console)  # fmt: skip
        self.start, self.steps = event["start_epoch"], event["steps_per_epoch"]
        epochs_left = event["config"]["epochs"] - self.start
        self.task = self.bar.add_task("training", total=epochs_left * self.steps)
        self.bar.start()
