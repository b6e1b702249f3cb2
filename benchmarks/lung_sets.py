"""The two shared lung sets and their held-out parts, as the lung benchmarks read them.

``../shared/data/{montgomery,shenzhen}``, each split on its own with the seed (15 %
validation, 20 % test), exactly as ``benchmarks/real_data.py`` and
``scripts/train_lung_model.py`` split them, so every benchmark scores the cases the shipped
model never saw.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
SETS = ("montgomery", "shenzhen")
VAL_FRACTION, TEST_FRACTION = 0.15, 0.2


def sets_missing(data: Path) -> bool:
    """Say which set folders ``data`` lacks (on stderr); whether any is missing."""
    missing = [s for s in SETS if not (data / s / "images").is_dir()]
    if missing:
        print(f"{data}: no {', '.join(missing)} folder; point --data at them", file=sys.stderr)
    return bool(missing)


def split_sets(data: Path, seed: int) -> dict[str, tuple[Any, Any]]:
    """``{set: (Dataset, Splits)}``: each set's cases and its seeded split."""
    from cxrseg.data import discover, make_splits

    out = {}
    for name in SETS:
        dataset = discover(data / name)
        split = make_splits(dataset.case_ids, seed=seed, val_fraction=VAL_FRACTION,
                            test_fraction=TEST_FRACTION)  # fmt: skip
        out[name] = (dataset, split)
    return out
