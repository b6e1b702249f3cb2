"""A cross-validation folder as one model: its folds' checkpoints and the chosen post-processing.

``cxrseg train DATA --out RUN --folds K`` ends by writing ``RUN/crossval.json``::

    {"format": "cxrseg-crossval", "version": 1, "k": 5,
     "folds": ["fold_0", ..., "fold_4"],
     "postprocessing": {"lungs": {...}},   # chosen once on all out-of-fold predictions
     ...}                                  # plus the summary, see cxrseg.crossval

:func:`read_crossval` finds the folds' best checkpoints; :class:`~cxrseg.inference.Predictor`
averages their probabilities (see ``Predictor.from_checkpoint``). Reading needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrseg.errors import InputError
from cxrseg.io import parse_json

__all__ = ["CROSSVAL_FILE", "CROSSVAL_FORMAT", "CrossvalModel", "is_crossval", "read_crossval"]

CROSSVAL_FILE = "crossval.json"
CROSSVAL_FORMAT = "cxrseg-crossval"
#: A file only a cross-validation folder has before it is finished (its folds' splits).
_STARTED = "splits.json"


@dataclass(frozen=True)
class CrossvalModel:
    """A finished cross-validation folder.

    Attributes:
        path: Its ``crossval.json``.
        folds: The fold run folders, in fold order.
        postprocessing: Post-processing per structure chosen on the out-of-fold predictions.
        record: The whole ``crossval.json``.
        quality: The quality-flag ranges learned from all the folds' cases, or ``None`` for a
            folder written before cxrseg stored them (the first fold's are used then).
    """

    path: Path
    folds: list[Path]
    postprocessing: dict[str, dict[str, Any]]
    record: dict[str, Any] = field(repr=False)
    quality: dict[str, Any] | None = field(default=None, repr=False)


def is_crossval(path: str | Path) -> bool:
    """Whether ``path`` is a cross-validation folder (finished or not)."""
    path = Path(path)
    return path.is_dir() and (
        (path / CROSSVAL_FILE).is_file()
        or ((path / _STARTED).is_file() and (path / "fold_0").is_dir())
    )


def read_crossval(folder: str | Path) -> CrossvalModel:
    """Read a finished cross-validation folder.

    Raises:
        InputError: The folder is unfinished, its ``crossval.json`` is unreadable, or a fold's
            best checkpoint is missing.
    """
    folder = Path(folder)
    path = folder / CROSSVAL_FILE
    rerun = "rerun the same `cxrseg train DATA --out RUN --folds K` command to finish it"
    if not path.is_file():
        done = len(list(folder.glob("fold_*/fold.json")))
        raise InputError(f"the cross-validation is unfinished ({done} fold(s) done).",
                         path=folder, hint=rerun)  # fmt: skip
    try:
        record = parse_json(path.read_text(encoding="utf-8"))
        if record.get("format") != CROSSVAL_FORMAT:
            raise ValueError(f"format {record.get('format')!r} is not {CROSSVAL_FORMAT!r}")
        folds = [folder / str(name) for name in record["folds"]]
        post = dict(record.get("postprocessing") or {})
        quality = record.get("quality")
        if quality is not None and not isinstance(quality, dict):
            raise ValueError("'quality' is not the ranges cxrseg.quality.learn_ranges returns")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"not a readable cross-validation record ({exc}).", path=path,
                         hint=rerun) from exc  # fmt: skip
    if not folds:
        raise InputError("the cross-validation record lists no fold.", path=path, hint=rerun)
    for fold in folds:
        if not (fold / "best" / "model.json").is_file():
            raise InputError("this fold has no best/model.json.", path=fold, hint=rerun)
    return CrossvalModel(path, folds, post, record, quality)
