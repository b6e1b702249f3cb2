"""Output folders: one command at a time, names that stay inside, paths checked before writing.

- :func:`folder_lock` takes an exclusive lock on an output folder (a run folder, an
  augmentation folder) for the life of a command, so a second ``train --resume`` or ``augment``
  on the same folder is refused instead of writing into it at the same time. It uses
  ``fcntl.flock`` (``msvcrt.locking`` on Windows): the lock goes away with the process, so a
  ``kill -9`` leaves nothing to clean up.
- :func:`check_name` refuses a name read from a file (a label in ``model.json`` or
  ``dataset.json``) that is not a plain identifier before it becomes a folder or file name.
- :func:`inside` checks that a path about to be written resolves inside the output folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from cxrseg.errors import InputError
from cxrseg.io.writing import ensure_folder, write_error

__all__ = ["LOCK_NAME", "MAX_NAME_LENGTH", "check_name", "folder_lock", "inside"]

#: Lock file made in a locked folder; removed when the command ends.
LOCK_NAME = ".cxrseg.lock"
#: Longest structure name accepted (a file name must stay well under 255 bytes).
MAX_NAME_LENGTH = 64
_NAME = re.compile(r"[A-Za-z0-9_-]+")


def check_name(name: Any, what: str, source: str | Path | None = None) -> str:
    """Return ``name`` if it is a plain identifier (letters, digits, ``_``, ``-``).

    Args:
        name: A value read from a file that will become part of a path.
        what: What the name is (``"label"``), for the message.
        source: The file it was read from, named in the message.

    Raises:
        InputError: ``name`` is not a string, is empty or too long, or holds any other
            character (``/``, ``..``, spaces, a drive letter ...).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise InputError(
            f"{what} {name!r} is not a plain name: it becomes a file or folder name, so only "
            f"letters, digits, '_' and '-' are allowed (at most {MAX_NAME_LENGTH})",
            path=source,
            hint=f"rename the {what} in that file (e.g. left_lung), or use a file you trust.",
        )
    return name


def inside(root: str | Path, path: str | Path) -> Path:
    """Return ``path`` after checking that it resolves inside ``root`` (links followed).

    Raises:
        InputError: ``path`` would be written outside ``root``.
    """
    root_resolved = Path(root).resolve()
    resolved = Path(path).resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise InputError(
            f"refusing to write outside the output folder {root} (to {resolved})",
            path=path,
            hint="the name comes from a file that was edited: use a file you trust.",
        )
    return Path(path)


@contextmanager
def folder_lock(folder: str | Path, command: str = "cxrseg") -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if missing) until the block ends.

    Raises:
        InputError: Another process holds the lock; the message names it by pid.
    """
    folder = ensure_folder(folder)
    path = folder / LOCK_NAME
    fd = _open_locked(path)
    if fd < 0:
        raise InputError(
            f"another cxrseg command{_holder(path)} is writing into this folder",
            path=folder,
            hint=f"wait for it to finish, or choose another folder for this {command}.",
        )
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {command}\n".encode())
        yield folder
    finally:
        with suppress(OSError):
            path.unlink()
        os.close(fd)  # closing releases the lock


def _open_locked(path: Path) -> int:
    """A descriptor of ``path`` holding its lock, or -1 when another process holds it.

    The lock file is removed when a command ends, so after locking, the descriptor must
    still be the file at ``path`` (not one a finishing command just unlinked).
    """
    for _ in range(5):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(exc, path.parent) from exc
        if not _try_lock(fd):
            os.close(fd)
            return -1
        with suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        os.close(fd)
    return -1


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _holder(path: Path) -> str:
    with suppress(OSError, ValueError, IndexError):
        pid, _, command = path.read_text(encoding="utf-8").partition(" ")
        return f" (process {int(pid)}, {command.strip() or 'cxrseg'})"
    return ""
