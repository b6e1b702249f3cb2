"""The typer application, the consoles and the helpers every command uses."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from cxrseg._version import __version__
from cxrseg.cli._boundary import BoundaryGroup, print_error
from cxrseg.cli._console import console, err_console
from cxrseg.cli._help import App

app = App(
    name="cxrseg",
    help="Chest radiograph segmentation: inspect data, augment, train, predict, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: see cxrseg.cli._help
    cls=BoundaryGroup,  # every command's exceptions end in one message (see _boundary)
)


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
    """Print ``message`` (plain text, markup is escaped) as an error; return the exit to raise."""
    print_error(message)
    return typer.Exit(code)


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``progress(done, total)`` callback drawn as a rich progress bar on stderr."""
    if not enabled:
        yield lambda done, total: None
        return
    if not err_console.is_terminal:  # a file or a pipe: plain lines, so a log shows life
        yield _plain_progress(description)
        return
    # lazy: start-up time
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


def _plain_progress(description: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that prints a line at each tenth of the work."""
    printed = {"tenth": -1}

    def update(done: int, total: int) -> None:
        if total <= 0:
            return
        tenth = min(10, done * 10 // total)
        if tenth > printed["tenth"]:
            printed["tenth"] = tenth
            err_console.print(f"{description}: {done}/{total}", markup=False, highlight=False)

    return update


def main() -> None:
    """Entry point of the ``cxrseg`` console script (errors: :mod:`cxrseg.cli._boundary`)."""
    app()
