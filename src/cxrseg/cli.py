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
from typing import Annotated

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
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version."),
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

# === augment ===

# === train ===

# === predict ===

# === evaluate ===

# === export ===

# === demo ===


def main() -> None:
    """Entry point of the ``cxrseg`` console script."""
    try:
        app()
    except CxrsegError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
