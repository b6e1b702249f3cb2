"""The `cxrseg demo` command: the whole pipeline on synthetic radiographs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cxrseg.cli._app import app, console, err_console, fail
from cxrseg.errors import CxrsegError


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
    # lazy: start-up time
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
        console.print(f"cxrseg demo: writing into {escape(str(out.resolve()))}")
        with _DemoProgress(enabled=not quiet) as report:
            result = run_demo(out, settings, overwrite=overwrite, device=device, on_event=report)
    except (CxrsegError, ValueError) as exc:
        raise fail(str(exc)) from exc
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
        # lazy: start-up time
        from rich.markup import escape

        kind = event["event"]
        if kind == "step" and self.enabled:
            # lazy: start-up time
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
        elif kind == "epoch" and not console.is_terminal:  # a file or a pipe: show life
            console.print(
                f"  epoch {event['epoch']}/{event['epochs']}: train loss "
                f"{event['train_loss']:.4f}, val Dice {event['val_dice_mean']:.4f} "
                f"({event['epoch_s']:.0f} s)"
            )
        elif kind == "done":
            self._stop()
            console.print(
                f"{event['step']:<9} {event['seconds']:6.1f} s  {escape(event['message'])}"
            )
