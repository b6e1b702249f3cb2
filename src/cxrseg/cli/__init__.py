"""The ``cxrseg`` command line: one subcommand per stage, a thin shell over library functions.

This is the only module that prints. Heavy modules (torch, OpenCV) are imported inside the
commands, so ``cxrseg --help`` stays fast. Every command is a plain function that tests call
through :class:`typer.testing.CliRunner`.

Library functions report progress through a ``progress(done, total)`` callback; the
:func:`progress_bar` context manager turns that into a rich progress bar on stderr.
"""

from __future__ import annotations

import importlib

from cxrseg.cli._app import app, console, err_console, fail, main, progress_bar

# Importing a command module registers its commands; this order is the order of --help.
for _name in ("data", "augment", "train", "predict", "evaluate", "demo"):
    importlib.import_module(f"cxrseg.cli.{_name}")

__all__ = ["app", "console", "err_console", "fail", "main", "progress_bar"]
