"""Exceptions that carry the offending file and the fix.

Every problem with user input is raised as an :class:`InputError` (a ``ValueError``) whose
message names the file or value and says what to do. The command line prints the message and
exits with status 2; Python callers can catch ``ValueError`` as usual.
"""

from __future__ import annotations

from pathlib import Path


class CxrsegError(Exception):
    """Base class of the errors cxrseg raises on purpose.

    The command line prints the message as one line and exits with :attr:`exit_code`.
    """

    exit_code: int = 2


class InputError(CxrsegError, ValueError):
    """A file, folder or argument given by the user cannot be used.

    Args:
        message: What is wrong.
        path: The file or folder concerned, if any; it is put in front of the message.
        hint: What the user can do about it; appended to the message.
    """

    def __init__(self, message: str, path: str | Path | None = None, hint: str | None = None):
        self.path = Path(path) if path is not None else None
        self.reason = message
        self.hint = hint
        text = f"{self.path}: {message}" if self.path is not None else message
        if hint:
            stop = "" if text.rstrip().endswith((".", "!", "?", ":")) else "."
            text = f"{text}{stop} Fix: {hint}"
        super().__init__(text)
