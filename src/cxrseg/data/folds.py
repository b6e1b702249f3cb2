"""Cross-validation folds: seeded from the case ids, or read from a fold file.

Seeded folds come from :func:`cxrseg.data.splits.make_splits` (``folds=K``): the ids are sorted,
shuffled with the seed and cut into K nearly equal parts, after an optional held-out test part.

A fold file lists the folds itself (for example the standard JSRT two-fold protocol). Two forms
are read:

- **Text** (any name but ``.json``): one case per line, ``CASE_ID FOLD``, separated by spaces,
  a tab or a comma. ``FOLD`` is a fold number counted from 0, or ``test`` to hold the case out
  of every fold. ``#`` starts a comment; blank lines are skipped::

      # JSRT, standard two folds
      JPCLN001 0
      JPCLN002 1
      JPCNN010 test

- **JSON**: ``{"folds": [[ids of fold 0], [ids of fold 1], ...], "test": [ids]}`` (``test``
  optional), or a ``splits.json`` written by an earlier ``cxrseg train --folds`` run.

A listed id may be a file name: ``JPCLN001.IMG`` stands for the case ``JPCLN001``. Every case of
the dataset must be in exactly one fold or in ``test``; fold numbers run from 0 to K-1 with
K >= 2, and each fold holds at least one case.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cxrseg.data.dataset import natural_key
from cxrseg.data.splits import Splits
from cxrseg.errors import InputError
from cxrseg.io import parse_json

__all__ = ["FOLD_FILE_HINT", "folds_from_groups", "read_fold_file"]

FOLD_FILE_HINT = (
    "write one 'CASE_ID FOLD' line per case (FOLD = 0, 1, ... or 'test'), or JSON "
    '{"folds": [[ids], [ids]], "test": [ids]}; see `cxrseg train --help`.'
)
_LINE = re.compile(r"[\s,]+")


def read_fold_file(path: str | Path, case_ids: Sequence[str], seed: int = 0) -> Splits:
    """Read the folds of ``case_ids`` from a fold file (formats in the module doc).

    Args:
        path: The fold file.
        case_ids: Ids of the dataset's cases; the file must place each exactly once.
        seed: Recorded in the returned splits (the file, not the seed, decides the folds).

    Returns:
        K-fold splits: fold ``i`` validates on the file's fold ``i`` and trains on the others.

    Raises:
        InputError: The file is missing or unreadable, or its folds do not fit the dataset
            (unknown, repeated or missing ids, a fold with no case, fewer than two folds).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("fold file not found.", path=path, hint="check --folds-file.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the fold file ({exc}).", path=path) from exc
    if path.suffix.lower() == ".json":
        groups, test = _parse_json(text, path)
    else:
        groups, test = _parse_text(text, path)
    return folds_from_groups(groups, test, case_ids, seed, path)


def _parse_json(text: str, path: Path) -> tuple[list[list[str]], list[str]]:
    try:
        data: Any = parse_json(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc}).", path=path, hint=FOLD_FILE_HINT) from exc
    if not isinstance(data, dict) or not isinstance(data.get("folds"), list):
        raise InputError('the JSON has no "folds" list.', path=path, hint=FOLD_FILE_HINT)
    groups: list[list[str]] = []
    for i, fold in enumerate(data["folds"]):
        if data.get("format") == "cxrseg-splits" and isinstance(fold, dict):
            fold = fold.get("val")  # a splits.json: each fold's validation part
        if not isinstance(fold, list) or not all(isinstance(x, str) for x in fold):
            raise InputError(f"fold {i} is not a list of case ids.", path=path,
                             hint=FOLD_FILE_HINT)  # fmt: skip
        groups.append(list(fold))
    test = data.get("test", [])
    if not isinstance(test, list) or not all(isinstance(x, str) for x in test):
        raise InputError('"test" is not a list of case ids.', path=path, hint=FOLD_FILE_HINT)
    return groups, list(test)


def _parse_text(text: str, path: Path) -> tuple[list[list[str]], list[str]]:
    by_fold: dict[int, list[str]] = {}
    test: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p for p in _LINE.split(line) if p]
        fold = parts[1] if len(parts) == 2 else ""
        if fold.lower() == "test":
            test.append(parts[0])
        elif fold.isdigit():
            by_fold.setdefault(int(fold), []).append(parts[0])
        else:
            raise InputError(
                f"line {number}: expected 'CASE_ID FOLD' with FOLD a number from 0 or "
                f"'test', got {raw.strip()!r}.",
                path=path,
                hint=FOLD_FILE_HINT,
            )
    if not by_fold:
        raise InputError("the fold file lists no fold.", path=path, hint=FOLD_FILE_HINT)
    gaps = [str(i) for i in range(max(by_fold) + 1) if i not in by_fold]
    if gaps:
        raise InputError(
            f"folds are numbered from 0 without gaps; fold(s) {', '.join(gaps)} list no case.",
            path=path,
            hint="renumber the folds 0, 1, ..., K-1.",
        )
    return [by_fold[i] for i in range(len(by_fold))], test


def _shown(ids: Sequence[str]) -> str:
    more = f" ... ({len(ids)} in all)" if len(ids) > 10 else ""
    return ", ".join(ids[:10]) + more


def folds_from_groups(
    groups: Sequence[Sequence[str]],
    test: Sequence[str],
    case_ids: Sequence[str],
    seed: int = 0,
    source: str | Path | None = None,
) -> Splits:
    """K-fold splits from each fold's validation ids and the held-out test ids, checked.

    Raises:
        InputError: Fewer than two folds, an empty fold, ids repeated, unknown to the dataset
            or placed nowhere (the message lists them).
    """
    known = set(case_ids)
    by_stem = {Path(i).stem: i for i in case_ids}

    def resolve(name: str) -> str:
        return name if name in known else by_stem.get(name, by_stem.get(Path(name).stem, name))

    folds = [[resolve(i) for i in group] for group in groups]
    held = [resolve(i) for i in test]
    if len(folds) < 2:
        raise InputError(f"{len(folds)} fold(s) listed; cross-validation needs at least 2.",
                         path=source, hint=FOLD_FILE_HINT)  # fmt: skip
    empty = [str(i) for i, fold in enumerate(folds) if not fold]
    if empty:
        raise InputError(f"fold(s) {', '.join(empty)} list no case.", path=source,
                         hint=FOLD_FILE_HINT)  # fmt: skip
    listed = [i for fold in folds for i in fold] + held
    repeated = sorted((i for i, n in Counter(listed).items() if n > 1), key=natural_key)
    unknown = sorted({i for i in listed if i not in known}, key=natural_key)
    missing = sorted(known - set(listed), key=natural_key)
    for ids, what, hint in (
        (repeated, "listed more than once", "list each case in one fold only."),
        (unknown, "not cases of the dataset", "fix the ids, or pass the dataset they name."),
        (missing, "cases of the dataset in no fold", "add them to a fold, or as 'test'."),
    ):
        if ids:
            raise InputError(f"{len(ids)} id(s) {what}: {_shown(ids)}.", path=source, hint=hint)
    ordered = sorted(known, key=natural_key)
    test_set = set(held)
    fold_list = []
    for fold in folds:
        val = set(fold)
        train = [i for i in ordered if i not in val and i not in test_set]
        fold_list.append((train, sorted(val, key=natural_key)))
    test_fraction = len(held) / len(known)
    base = Splits([], [], sorted(held, key=natural_key), int(seed), 1.0 / len(folds),
                  test_fraction, len(folds), 0, fold_list)  # fmt: skip
    return base.select(0)
