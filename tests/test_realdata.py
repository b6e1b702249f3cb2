"""Real radiographs (../shared/data): `cxrseg inspect` finds every pair with no error, and the
shipped lung model segments held-out cases.

Skipped, with the reason, where the folder is absent (it never ships with the project).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cxrseg.cli import app

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent"),
]


@pytest.mark.parametrize(("name", "pairs"), [("montgomery", 111), ("shenzhen", 453)])
def test_inspect_real_dataset(name, pairs):
    result = CliRunner().invoke(app, ["inspect", str(DATA / name), "--json", "-"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["valid_pairs"], summary["errors"], summary["warnings"]) == (pairs, 0, 0)
    assert f"{pairs} valid pairs, 0 errors, 0 warnings" in result.stderr


def test_shipped_lung_model_on_held_out_real_cases():
    """The shipped model on held-out cases it never saw (the split of its training script)."""
    from cxrseg.data import discover, load_case, make_splits
    from cxrseg.pretrained import load

    predictor = load("lungs", device="cpu")
    scores = {}
    for name in ("montgomery", "shenzhen"):
        dataset = discover(DATA / name)
        held_out = make_splits(dataset.case_ids, seed=0, val_fraction=0.15, test_fraction=0.2).test
        cases = [c for c in dataset.cases if c.case_id in set(held_out[:8])]
        dice = []
        for case in cases:
            image, masks = load_case(case, dataset)
            reference = masks["foreground"] > 0
            mask = predictor.predict(image).masks["lungs"] > 0
            dice.append(2 * (mask & reference).sum() / (mask.sum() + reference.sum()))
        scores[name] = float(np.mean(dice))
    assert min(scores.values()) > 0.93, scores
