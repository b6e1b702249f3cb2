"""Atomic PNG writing of images and masks, and the atomic_write context manager."""

from __future__ import annotations

import errno
import functools
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

from cxrseg.errors import InputError


def write_image(path: str | Path, image: np.ndarray, bit_depth: int = 8) -> None:
    """Write a grayscale image as an 8- or 16-bit PNG, atomically.

    Args:
        path: Target ``.png`` file; missing parent folders are created.
        image: ``(H, W)`` float in ``[0, 1]`` (scaled to the full range of ``bit_depth`` and
            rounded), or uint8 / uint16 written as is (the dtype must match ``bit_depth``).
        bit_depth: 8 or 16.

    Raises:
        InputError: ``path`` is not a ``.png`` or cannot be written.
        ValueError: Bad ``bit_depth``, shape, or float values outside ``[0, 1]``.
        TypeError: Unsupported dtype.
    """
    path = _check_png_target(path)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    image = _check_2d(image, "image")
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    if np.issubdtype(image.dtype, np.floating):
        if image.size and not (np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1):
            raise ValueError(
                f"float image values must lie in [0, 1], got {np.nanmin(image):g}.."
                f"{np.nanmax(image):g} (or NaN/inf); normalise or clip the image before writing"
            )
        pixels = np.rint(image * float(np.iinfo(dtype).max)).astype(dtype)
    elif image.dtype in (np.uint8, np.uint16):
        if image.dtype != dtype:
            raise ValueError(
                f"a {image.dtype} image cannot be written with bit_depth={bit_depth}; pass "
                f"bit_depth={8 * image.dtype.itemsize} or convert the array"
            )
        pixels = image
    else:
        raise TypeError(
            f"image dtype must be float (values in [0, 1]), uint8 or uint16, got {image.dtype}"
        )
    _write_png(path, pixels)


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a label mask as an 8-bit PNG, atomically, values unchanged.

    Args:
        path: Target ``.png`` file; missing parent folders are created.
        mask: ``(H, W)`` uint8 labels; bool (written 0/1) and other integer arrays whose values
            fit 0..255 are accepted.

    Raises:
        InputError: ``path`` is not a ``.png`` or cannot be written.
        ValueError: Bad shape or values outside 0..255.
        TypeError: Float or other non-integer dtype.
    """
    path = _check_png_target(path)
    mask = _check_2d(mask, "mask")
    if mask.dtype != np.bool_ and not np.issubdtype(mask.dtype, np.integer):
        raise TypeError(
            f"mask dtype must be uint8, bool or integer labels, got {mask.dtype}; "
            "threshold it first, e.g. (mask > 0.5).astype(np.uint8)"
        )
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError(
            f"mask values must fit 0..255, got {mask.min()}..{mask.max()}; relabel the structures"
        )
    _write_png(path, mask.astype(np.uint8, copy=False))


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto it.

    The temporary file is ``.<name>.tmp-<random><suffix>`` in the target folder (so encoders that
    look at the suffix work, and the rename stays on one file system). On any exception it is
    removed and an existing ``path`` is left untouched. The parent folder is created if missing.
    The file gets the permissions of a file made with ``open()`` (0666 less the umask), whatever
    the writer used for the temporary file.

    Raises:
        InputError: The folder cannot be created or written (no permission, read-only file system,
            disk full, a file in the way).
    """
    path = check_output_file(path)
    parent = path.parent
    ensure_folder(parent)
    tmp = parent / _temporary_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"atomic_write: nothing was written to the temporary file {tmp}")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # writers that use mkstemp leave 0600
        os.replace(tmp, path)
    except BaseException as exc:
        with suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
            raise write_error(exc, parent) from exc
        raise
    _fsync_dir(parent)


#: Longest file name (bytes) of the usual file systems (ext4, XFS, btrfs, tmpfs, APFS, NTFS).
_NAME_MAX = 255


def _temporary_name(path: Path) -> str:
    """``.<name>.tmp-<random><suffix>``, the name cut short so it is no longer than a file
    name may be: a target named at the limit (an input ``<251 characters>.dcm`` gives
    ``<251 characters>.png``) must not fail for its temporary's sake."""
    tail = f".tmp-{secrets.token_hex(4)}{path.suffix}"
    name = path.name
    while name and len(os.fsencode(f".{name}{tail}")) > _NAME_MAX:
        name = name[:-1]
    return f".{name}{tail}"


def check_output_file(path: str | Path) -> Path:
    """Refuse, before any work, a file target that is a folder or lies under a file.

    Raises:
        InputError: Naming the folder or the file in the way.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(
            "is a folder, but a file is to be written here",
            path=path,
            hint=f"name a file, e.g. {path / ('output' + (path.suffix or '.json'))}",
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(
                    "cannot create the output folder: a file with that name is in the way",
                    path=parent,
                    hint="choose another output folder (--out) or move that file",
                )
            break
    return path


def ensure_folder(folder: str | Path) -> Path:
    """Create ``folder`` (and its parents) if missing, with the messages every writer gives.

    Raises:
        InputError: A file is in the way, or the folder cannot be made (permissions,
            read-only or full disk).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise InputError(
            "cannot create the output folder: a file with that name is in the way",
            path=folder,
            hint="choose another output folder (--out) or move that file",
        ) from exc
    except OSError as exc:
        raise write_error(exc, folder) from exc
    return folder


@functools.cache
def _umask() -> int:
    """The process umask (read once: setting it to read it is not thread-safe)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                 errno.EISDIR, errno.ENOTDIR, errno.EFBIG, errno.ENAMETOOLONG}  # fmt: skip


def write_error(exc: OSError, folder: Path) -> InputError:
    """The "cannot write here / no space left" message every writer gives for ``exc``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = "free disk space or choose another output folder (--out)"
        return InputError("no space left to write here", path=folder, hint=hint)
    return InputError(
        f"cannot write here ({exc.strerror or exc})",
        path=folder,
        hint="choose a writable output folder (--out)",
    )


def _fsync_dir(folder: Path) -> None:
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    with atomic_write(path) as tmp:
        Image.fromarray(np.ascontiguousarray(pixels)).save(tmp, format="PNG")


def _check_png_target(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(
            f"cxrseg writes PNG files only, got the suffix {path.suffix or '(none)'!r}",
            path=path,
            hint=f"name the file {path.stem}.png",
        )
    return path


def _check_2d(array: Any, what: str) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(array).__name__}")
    if array.ndim != 2:
        raise ValueError(f"{what} must be 2-D (H, W), got shape {array.shape}; pass one channel")
    return array
