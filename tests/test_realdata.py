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


def held_out_films(name: str, n: int) -> list[Path]:
    from cxrseg.data import discover, make_splits

    dataset = discover(DATA / name)
    held_out = make_splits(dataset.case_ids, seed=0, val_fraction=0.15, test_fraction=0.2).test
    return [dataset.case(case_id).image for case_id in held_out[:n]]


def test_shipped_model_flags_broken_inputs_not_held_out_films():
    """Flags of the shipped model: real held-out films pass, the same films inverted or
    rotated by 90 degrees are flagged (benchmarks/quality_flags.py measures it on all)."""
    from cxrseg.io import read_image
    from cxrseg.pretrained import load

    predictor = load("lungs", device="cpu")
    assert predictor.info.quality is not None, "the shipped model has no quality ranges"
    films = [
        read_image(p)[0] for name in ("montgomery", "shenzhen") for p in held_out_films(name, 6)
    ]
    real = predictor.predict_batch(films)
    broken = predictor.predict_batch([1.0 - f for f in films] + [np.rot90(f).copy() for f in films])
    assert sum(bool(p.flags) for p in real) <= 1, [p.flags for p in real if p.flags]
    assert all(p.flags for p in broken)


def test_predict_lungs_then_evaluate_on_a_real_one_mask_folder(tmp_path):
    """`predict --model lungs` then `evaluate` against Montgomery's `foreground` masks."""
    films = held_out_films("montgomery", 3)
    for film in films:
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / film.name).symlink_to(film)
    runner = CliRunner()
    predicted = runner.invoke(app, ["predict", "--model", "lungs", str(tmp_path / "in"), "--out",
                                    str(tmp_path / "P"), "--device", "cpu", "--quiet"])  # fmt: skip
    assert predicted.exit_code == 0, predicted.output
    evaluated = runner.invoke(app, ["evaluate", str(tmp_path / "P"), str(DATA / "montgomery"),
                                    "--out", str(tmp_path / "E"), "--allow-missing"])  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    summary = json.loads((tmp_path / "E" / "summary.json").read_text())
    assert summary["structure_map"]["pairs"] == {"lungs": ["foreground"]}
    assert summary["summary"]["lungs"]["dice"]["mean"] > 0.93
