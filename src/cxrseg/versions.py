"""One rule for reading files made by another cxrseg version: checkpoints and exported models.

Both :func:`cxrseg.training.checkpoint.load_checkpoint` and
:func:`cxrseg.inference.model_file.locate_model` call :func:`check_made_by`:

- a newer ``format_version`` (the file layout) is refused: this cxrseg cannot read it;
- a newer *major* cxrseg version is refused: the meaning of the stored settings may have
  changed;
- a newer *minor* version is accepted with a warning (same layout and meaning, new features
  this version may ignore);
- older versions and unparseable version strings are accepted silently.

This module is a leaf (no torch, no NumPy), so the ONNX path uses it without torch.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrseg._version import __version__
from cxrseg.errors import InputError

__all__ = ["check_made_by", "version_tuple"]

logger = logging.getLogger(__name__)


def version_tuple(text: str) -> tuple[int, int] | None:
    """``"1.4.2"`` -> ``(1, 4)``; ``None`` when ``text`` does not start with major.minor."""
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


def check_made_by(
    metadata: Mapping[str, Any],
    path: str | Path,
    supported_format: int,
    *,
    current: str = __version__,
    what: str = "the file",
) -> None:
    """Refuse a newer format or major version; warn about a newer minor version.

    Args:
        metadata: Holds ``format_version`` (int) and ``cxrseg_version`` (str).
        path: The file, named in messages.
        supported_format: Newest ``format_version`` this cxrseg reads.
        current: This cxrseg's version (a parameter so that tests can vary it).
        what: How messages name the file (``"the checkpoint"``, ``"the model"``).

    Raises:
        InputError: ``format_version`` is missing, not an integer or newer than
            ``supported_format``, or the major version of ``cxrseg_version`` is newer.
    """
    made_by = str(metadata.get("cxrseg_version", "unknown"))
    fmt = metadata.get("format_version")
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise InputError(
            f"format_version is missing or not an integer ({fmt!r})",
            path=path,
            hint="this is not a file saved by cxrseg; give a checkpoint or `cxrseg export` model",
        )
    theirs, ours = version_tuple(made_by), version_tuple(current)
    newer_major = theirs is not None and ours is not None and theirs[0] > ours[0]
    if fmt > supported_format or newer_major:
        raise InputError(
            f"{what} was made by cxrseg {made_by} (format {fmt}); this is cxrseg {current} "
            f"(reads format {supported_format} and older)",
            path=path,
            hint=f"upgrade cxrseg to {made_by} or newer (pip install -U cxrseg)",
        )
    if theirs is not None and ours is not None and theirs > ours:
        logger.warning(
            "%s: %s was made by cxrseg %s, newer than this cxrseg %s; reading it anyway "
            "(same major version and format %d), but settings added since may be ignored",
            path,
            what,
            made_by,
            current,
            fmt,
        )
