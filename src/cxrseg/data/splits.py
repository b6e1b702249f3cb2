"""Seeded train/val/test and k-fold splits of case ids, saved to ``splits.json`` and reused.

The split depends only on the set of ids and the seed, never on the order ids are given in:
ids are sorted (natural order) and shuffled with ``np.random.default_rng(seed)``. The test
cases are drawn first; the rest is split into train/val (``val_fraction``) or into ``folds``
disjoint validation folds that together cover every non-test id (k-fold cross-validation).

``splits.json`` (written atomically) records the seed, the fractions, the ids and one
``{"train": [...], "val": [...]}`` entry per fold (a single one without k-fold), like nnU-Net's
``splits_final.json``::

    {"format": "cxrseg-splits", "version": 1, "seed": 0, "val_fraction": 0.2,
     "test_fraction": 0.0, "k": null, "ids": [...], "test": [...],
     "folds": [{"train": [...], "val": [...]}]}

Once written, the file is the truth: :func:`load_or_create_splits` reuses it, so every later
run trains and validates on the same cases.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrseg.checks import check_fraction
from cxrseg.data.dataset import natural_key
from cxrseg.errors import InputError
from cxrseg.io import atomic_write, parse_json, write_json

logger = logging.getLogger(__name__)

SPLITS_FILE = "splits.json"
_FORMAT = "cxrseg-splits"
_VERSION = 1


@dataclass(frozen=True)
class Splits:
    """Case ids per split.

    Attributes:
        train: Training ids of the selected fold, natural order.
        val: Validation ids of the selected fold, natural order.
        test: Held-out test ids (the same for every fold), natural order.
        seed: Seed the split was drawn with.
        val_fraction: Share of all ids used for validation (``1/k`` in k-fold).
        test_fraction: Share of all ids held out for testing.
        k: Number of folds, or ``None`` for a single train/val split.
        fold: Index of the selected fold (0 without k-fold).
        folds: ``(train, val)`` ids of every fold.
    """

    train: list[str]
    val: list[str]
    test: list[str]
    seed: int
    val_fraction: float
    test_fraction: float
    k: int | None
    fold: int
    folds: list[tuple[list[str], list[str]]]

    @property
    def ids(self) -> list[str]:
        """Every id of the split, natural order."""
        return sorted([*self.train, *self.val, *self.test], key=natural_key)

    def select(self, fold: int) -> Splits:
        """Return the same splits with fold ``fold`` as ``train``/``val``.

        Raises:
            ValueError: ``fold`` is not in ``range(len(folds))``.
        """
        if not 0 <= fold < len(self.folds):
            raise ValueError(
                f"fold {fold} does not exist; choose 0..{len(self.folds) - 1} "
                f"({len(self.folds)} folds)."
            )
        train, val = self.folds[fold]
        return Splits(
            list(train),
            list(val),
            list(self.test),
            self.seed,
            self.val_fraction,
            self.test_fraction,
            self.k,
            fold,
            self.folds,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form written to ``splits.json``."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "k": self.k,
            "ids": self.ids,
            "test": self.test,
            "folds": [{"train": train, "val": val} for train, val in self.folds],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], fold: int = 0) -> Splits:
        """Build splits from the JSON form (see :meth:`to_dict`), selecting ``fold``.

        Raises:
            KeyError, TypeError, ValueError: The data is not a splits record.
        """
        if data.get("format") != _FORMAT:
            raise ValueError(f"not a cxrseg splits file (format {data.get('format')!r})")
        folds = [(list(map(str, f["train"])), list(map(str, f["val"]))) for f in data["folds"]]
        if not folds:
            raise ValueError("the splits file lists no fold")
        base = cls(
            [],
            [],
            list(map(str, data["test"])),
            int(data["seed"]),
            float(data["val_fraction"]),
            float(data["test_fraction"]),
            None if data.get("k") is None else int(data["k"]),
            0,
            folds,
        )
        return base.select(fold)


def _count(total: int, fraction: float) -> int:
    """Cases for a fraction: rounded, and at least one when the fraction is above 0."""
    if fraction <= 0:
        return 0
    return max(1, math.floor(total * fraction + 0.5))


def make_splits(
    case_ids: Sequence[str],
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    folds: int | None = None,
    fold: int = 0,
) -> Splits:
    """Split case ids into train/val/test, or into k folds, reproducibly from ``seed``.

    Args:
        case_ids: Distinct case ids, in any order (the result does not depend on it).
        seed: Seed of the shuffle.
        val_fraction: Share of all ids for validation (ignored with ``folds``).
        test_fraction: Share of all ids held out for testing, drawn first.
        folds: Number of cross-validation folds (>= 2), or ``None`` for one train/val split.
        fold: Which fold becomes ``train``/``val``.

    Returns:
        The splits; ``train``, ``val`` and ``test`` are disjoint and cover every id.

    Raises:
        ValueError: Duplicate ids, fractions outside [0, 1), too few ids for the request.
    """
    ids = sorted(map(str, case_ids), key=natural_key)
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1}, key=natural_key)
        raise ValueError(f"case ids must be distinct; repeated: {repeated[:10]}.")
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction)
    if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2):
        raise ValueError(f"folds must be an integer >= 2 (or None), got {folds!r}.")
    n_test = _count(len(ids), test_fraction)
    rest = len(ids) - n_test
    n_val = _count(len(ids), val_fraction) if folds is None else 0
    needed = folds if folds is not None else n_val + 1
    if rest < needed:
        what = f"{folds} folds" if folds is not None else f"{n_val} val + at least 1 train"
        raise ValueError(
            f"{len(ids)} cases cannot give {n_test} test + {what}; "
            "lower test_fraction/val_fraction/folds or add cases."
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    test = sorted(shuffled[:n_test], key=natural_key)
    held_out = set(test)
    remaining = shuffled[n_test:]
    if folds is None:
        groups = [remaining[:n_val]]
        k_val_fraction = float(val_fraction)
    else:
        groups = [list(g) for g in np.array_split(np.array(remaining, dtype=object), folds)]
        k_val_fraction = 1.0 / folds
    fold_list = []
    for group in groups:
        chosen = set(group)
        val = sorted(chosen, key=natural_key)
        train = [i for i in ids if i not in chosen and i not in held_out]
        fold_list.append((train, val))
    base = Splits(
        [], [], test, int(seed), k_val_fraction, float(test_fraction), folds, 0, fold_list
    )
    return base.select(fold)


def _splits_path(path: str | Path) -> Path:
    path = Path(path)
    return path / SPLITS_FILE if path.is_dir() or path.suffix != ".json" else path


def load_or_create_splits(
    path: str | Path,
    case_ids: Sequence[str],
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    folds: int | None = None,
    fold: int = 0,
) -> Splits:
    """Reuse the splits saved at ``path``, or make them and save them there.

    Args:
        path: The ``splits.json`` file, or a folder to hold one.
        case_ids: Ids of the dataset's cases.
        seed, val_fraction, test_fraction, folds: Used only when no file exists yet
            (see :func:`make_splits`); a saved file keeps its own values.
        fold: Which fold becomes ``train``/``val``.

    Returns:
        The splits, with fold ``fold`` selected.

    Raises:
        InputError: The saved file is unreadable, or lists ids that are not in ``case_ids``.
        ValueError: As :func:`make_splits`, or ``fold`` out of range.
    """
    file = _splits_path(path)
    if not file.exists():
        splits = make_splits(case_ids, seed, val_fraction, test_fraction, folds, fold)
        file.parent.mkdir(parents=True, exist_ok=True)
        write_json(file, splits.to_dict(), indent=1)
        logger.info(
            "wrote %s: %d train, %d val, %d test (seed %d)",
            file,
            len(splits.train),
            len(splits.val),
            len(splits.test),
            seed,
        )
        return splits
    hint = "delete the file to make new splits, or pass the data it was made for."
    try:
        saved = Splits.from_dict(parse_json(file.read_text(encoding="utf-8")), 0)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise InputError(f"cannot read the saved splits ({exc})", path=file, hint=hint) from exc
    known = set(map(str, case_ids))
    unknown = [i for i in saved.ids if i not in known]
    if unknown:
        shown = ", ".join(unknown[:10]) + (
            f" ... ({len(unknown)} in all)" if len(unknown) > 10 else ""
        )
        raise InputError(
            f"the saved splits list cases that are not in the dataset: {shown}",
            path=file,
            hint=hint,
        )
    new = sorted(known - set(saved.ids), key=natural_key)
    if new:
        logger.warning(
            "%s: %d cases are in no split (e.g. %s); delete the file to re-split with them",
            file,
            len(new),
            ", ".join(new[:5]),
        )
    wanted_val = float(val_fraction) if folds is None else 1.0 / folds
    requested = (int(seed), folds, float(test_fraction), wanted_val)
    if requested != (saved.seed, saved.k, saved.test_fraction, saved.val_fraction):
        logger.warning(
            "%s: reusing saved splits (seed %d, k %s, test %.2f, val %.2f) instead of the "
            "requested (seed %d, k %s, test %.2f, val %.2f); delete the file to re-split",
            file,
            saved.seed,
            saved.k,
            saved.test_fraction,
            saved.val_fraction,
            *requested,
        )
    return saved.select(fold)


def adopt_splits(given: str | Path, target: Path, case_ids: Sequence[str]) -> None:
    """Check a user's ``splits.json`` against the data, then copy it to ``target`` atomically.

    Errors name the user's file (``given``), not the copy.

    Raises:
        InputError: ``given`` is missing, unreadable, or lists cases the data do not have.
    """
    given = Path(given)
    if not given.is_file():
        raise InputError("splits file not found.", path=given, hint="check --splits.")
    try:
        saved = Splits.from_dict(parse_json(given.read_text(encoding="utf-8")), 0)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"not a readable splits file ({exc})",
            path=given,
            hint="give the splits.json of an earlier run (every run folder holds one).",
        ) from exc
    unknown = sorted(set(saved.ids) - set(map(str, case_ids)), key=natural_key)
    if unknown:
        raise InputError(
            f"lists {len(unknown)} case(s) that are not in the dataset, e.g. "
            f"{', '.join(unknown[:5])}",
            path=given,
            hint="give the splits.json made for this dataset, or leave --splits out.",
        )
    with atomic_write(target) as tmp:
        tmp.write_bytes(given.read_bytes())
