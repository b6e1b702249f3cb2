"""The one error boundary of the command line.

Every command runs inside :class:`BoundaryGroup`. An exception that reaches it is either

- **expected**: a :class:`~cxrseg.errors.CxrsegError` (bad input, with the file and the fix), an
  ``OSError`` (a disk that is full, a folder that is read-only, a file that vanished) or a
  ``MemoryError``. It is printed as one line, ``error: <what is wrong>. Fix: <what to do>``,
  with rich markup escaped (a path may contain ``[/b]``), and the command exits with the
  exception's ``exit_code`` (2 unless the class says otherwise); or
- **unexpected**: anything else is a bug. The full traceback goes to a crash report (in the
  temporary folder, or ``$CXRSEG_CRASH_DIR``), never into the user's output folders; the user
  sees one line saying it is a bug and where the report is, and the command exits with 3.
  ``--verbose`` also prints the traceback.

This follows pip (``ERROR: Exception:`` plus the log file) and typer/rich apps that keep the
traceback out of the way of an ordinary user.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import Abort, TyperException

from cxrseg._version import __version__
from cxrseg.cli._console import err_console
from cxrseg.errors import CxrsegError

__all__ = ["BUG_EXIT_CODE", "BoundaryGroup", "describe_expected", "print_error"]

#: Exit status of an internal error (a bug); 2 is bad input, 1 "some inputs failed".
BUG_EXIT_CODE = 3

_OS_FIXES = {
    errno.ENOSPC: ("no space left on device", "free disk space or choose another output folder"),
    errno.EDQUOT: ("disk quota exceeded", "free disk space or choose another output folder"),
    errno.EACCES: ("permission denied", "check the permissions, or choose another path"),
    errno.EPERM: ("operation not permitted", "check the permissions, or choose another path"),
    errno.EROFS: ("read-only file system", "choose an output folder on a writable disk"),
    errno.EISDIR: ("is a folder, not a file", "name a file, not a folder"),
    errno.ENOTDIR: (
        "a file is in the way (a part of this path is a file, not a folder)",
        "choose another path or move that file",
    ),
    errno.EEXIST: ("a file is in the way", "choose another path or move that file"),
    errno.ENOENT: ("not found", "check the path"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter path"),
}


def describe_expected(exc: BaseException) -> tuple[str, int] | None:
    """``(message, exit code)`` for an expected failure, ``None`` for a bug."""
    if isinstance(exc, CxrsegError):
        return str(exc), int(getattr(exc, "exit_code", 2))
    if isinstance(exc, OSError) and exc.errno is not None:
        where = exc.filename if exc.filename is not None else "cxrseg"
        what, fix = _OS_FIXES.get(exc.errno, (exc.strerror or str(exc), "check the path and disk"))
        return f"{where}: {what}. Fix: {fix}.", 2
    if isinstance(exc, MemoryError):
        return (
            "not enough memory for this input. Fix: use smaller images or batches "
            "(--size, --batch-size), or close other programs.",
            2,
        )
    return None


def print_error(message: str) -> None:
    """Print one ``error:`` line on stderr; ``message`` is plain text (markup is escaped)."""
    from rich.markup import escape  # lazy: start-up time

    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)


def _crash_report(exc: BaseException) -> Path | None:
    """Write the traceback of ``exc`` to a new file outside every output folder."""
    folder = Path(os.environ.get("CXRSEG_CRASH_DIR") or tempfile.gettempdir())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    lines = [
        f"cxrseg {__version__}, Python {sys.version.split()[0]}, {sys.platform}\n",
        f"command: {' '.join(sys.argv)}\n\n",
        *traceback.format_exception(type(exc), exc, exc.__traceback__),
    ]
    try:
        fd, name = tempfile.mkstemp(prefix=f"cxrseg-crash-{stamp}-", suffix=".txt", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.writelines(lines)
    except OSError:
        return None
    return Path(name)


def report_bug(exc: BaseException, verbose: bool = False) -> None:
    """Tell the user an unexpected exception is a bug and where its traceback went."""
    report = _crash_report(exc)
    where = f"The full traceback is in {report}" if report else "No crash report could be written"
    print_error(
        f"internal error, this is a bug in cxrseg: {type(exc).__name__}: {exc}. {where}; "
        "please report it with the command you ran."
    )
    if verbose or report is None:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


class BoundaryGroup(TyperGroup):
    """A typer group whose commands' exceptions end as one message and an exit status."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, Abort, TyperException):
            raise  # typer's own exits and usage errors
        except Exception as exc:
            expected = describe_expected(exc)
            if expected is not None:
                print_error(expected[0])
                raise typer.Exit(expected[1]) from exc
            report_bug(exc, verbose=bool((ctx.params or {}).get("verbose")))
            raise typer.Exit(BUG_EXIT_CODE) from exc
