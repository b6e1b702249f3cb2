"""Cross-validation (``cxrseg train --folds``) and fold ensembles, on tiny phantoms (1 epoch)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from cxrseg.cli import app
from cxrseg.crossval import train_folds
from cxrseg.errors import InputError
from cxrseg.inference import Predictor
from training_builders import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()


def _folds(data: Path, out: Path, **options: Any) -> tuple[Any, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    result = train_folds(data, out, tiny_config(epochs=1), on_event=events.append, **options)
    return result, [e for e in events if e["event"] == "fold"]


@pytest.fixture(scope="module")
def crossval(phantoms: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-fold cross-validation folder (not to be changed by the tests)."""
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cv") / "run"
    _folds(phantoms, out, folds=2)
    return out


def _copy(crossval: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(crossval, target)
    return target


def test_the_folds_validate_every_case_exactly_once(crossval: Path, phantoms: Path) -> None:
    from cxrseg.data import discover

    ids = discover(phantoms).case_ids
    vals = [json.loads((crossval / f"fold_{k}" / "fold.json").read_text())["val"] for k in (0, 1)]
    assert sorted(vals[0] + vals[1]) == sorted(ids) and not set(vals[0]) & set(vals[1])
    for k in (0, 1):  # each fold trained on exactly the cases it did not validate
        split = json.loads((crossval / f"fold_{k}" / "splits.json").read_text())
        assert sorted(split["folds"][0]["train"]) == sorted(vals[1 - k])


def test_out_of_fold_predictions_hold_every_case_once(crossval: Path, phantoms: Path) -> None:
    from cxrseg.data import discover

    ids = sorted(discover(phantoms).case_ids)
    record = json.loads((crossval / "crossval.json").read_text())
    for name in record["structures"]:
        assert sorted(p.stem for p in (crossval / "oof" / "masks" / name).glob("*.png")) == ids
    assert record["n_cases"] == len(ids) and record["summary"]["heart"]["dice"]["n"] == len(ids)
    assert len(record["fold_dice"]["heart"]) == 2


def test_a_rerun_skips_finished_folds(crossval: Path, tmp_path: Path, phantoms: Path) -> None:
    run = _copy(crossval, tmp_path)
    weights = run / "fold_0" / "best" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    _, events = _folds(phantoms, run, folds=2)
    assert [e["status"] for e in events] == ["done", "done"]
    assert weights.stat().st_mtime_ns == before


def test_an_interrupted_fold_resumes_and_the_others_are_kept(
    crossval: Path, tmp_path: Path, phantoms: Path
) -> None:
    run = _copy(crossval, tmp_path)
    (run / "fold_1" / "fold.json").unlink()
    (run / "crossval.json").unlink()
    _, events = _folds(phantoms, run, folds=2)
    assert [e["status"] for e in events] == ["done", "resume"]
    assert (run / "fold_1" / "fold.json").is_file() and (run / "crossval.json").is_file()


def test_the_ensemble_is_the_mean_of_its_folds(crossval: Path, phantoms: Path) -> None:
    from cxrseg.io import read_image

    images = [read_image(p)[0] for p in sorted((phantoms / "images").glob("*.png"))[:3]]
    ensemble = Predictor.from_checkpoint(crossval, runtime="torch", tta=True)
    members = [Predictor.from_checkpoint(crossval / f"fold_{k}", runtime="torch", tta=True)
               for k in (0, 1)]  # fmt: skip
    mean = np.mean([m.network_probabilities(images) for m in members], axis=0)
    np.testing.assert_allclose(ensemble.network_probabilities(images), mean, atol=1e-6)
    assert len(ensemble.backends) == 2


def test_the_ensemble_applies_the_post_processing_chosen_on_all_folds(crossval: Path) -> None:
    record = json.loads((crossval / "crossval.json").read_text())
    ensemble = Predictor.from_checkpoint(crossval, runtime="torch")
    chosen = {k: v.to_dict() for k, v in ensemble.postprocessing.items()}
    assert chosen == record["postprocessing"]
    assert ensemble.source == crossval / "crossval.json"


def test_the_ensemble_flags_with_ranges_learned_from_every_fold_case(
    crossval: Path, phantoms: Path
) -> None:
    from cxrseg.data import discover

    record = json.loads((crossval / "crossval.json").read_text())
    fold_0 = json.loads((crossval / "fold_0" / "best" / "model.json").read_text())["quality"]
    assert record["quality"]["n_cases"] == len(discover(phantoms).case_ids)
    assert fold_0["n_cases"] < record["quality"]["n_cases"]  # one fold saw only its train part
    assert Predictor.from_checkpoint(crossval, runtime="torch").info.quality == record["quality"]


def test_predict_and_evaluate_a_crossval_folder_end_to_end(
    crossval: Path, phantoms: Path, tmp_path: Path
) -> None:
    pred, report = tmp_path / "pred", tmp_path / "report"
    done = runner.invoke(app, ["predict", str(crossval), str(phantoms / "images"), "--out",
                               str(pred), "--tta", "--runtime", "torch", "--quiet"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert len(list((pred / "masks" / "heart").glob("*.png"))) == 6
    done = runner.invoke(app, ["evaluate", str(pred), str(phantoms), "--out", str(report)])
    assert done.exit_code == 0, done.output
    assert (report / "report.html").is_file()


def test_an_unfinished_crossval_folder_says_how_to_finish(crossval: Path, tmp_path: Path) -> None:
    run = _copy(crossval, tmp_path)
    (run / "crossval.json").unlink()
    with pytest.raises(InputError, match="unfinished.*rerun the same"):
        Predictor.from_checkpoint(run, runtime="torch")


def test_exporting_a_crossval_folder_asks_for_one_fold(crossval: Path) -> None:
    from cxrseg.inference import locate_model

    with pytest.raises(InputError, match="cross-validation folder.*fold_0"):
        locate_model(crossval)


def test_a_rerun_with_another_number_of_folds_is_refused(
    crossval: Path, tmp_path: Path, phantoms: Path
) -> None:
    run = _copy(crossval, tmp_path)
    with pytest.raises(InputError, match="2-fold cross-validation, not 3"):
        _folds(phantoms, run, folds=3)


def test_a_rerun_with_other_options_is_refused(
    crossval: Path, tmp_path: Path, phantoms: Path
) -> None:
    run = _copy(crossval, tmp_path)
    with pytest.raises(InputError, match="other options.*lr"):
        train_folds(phantoms, run, tiny_config(epochs=1, lr=0.5), folds=2)


def test_a_folder_that_is_not_a_crossval_is_refused(tmp_path: Path, phantoms: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a cross-validation folder"):
        _folds(phantoms, tmp_path / "run", folds=2)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["notes.txt"]


def test_too_many_folds_for_the_cases_is_a_clear_error(tmp_path: Path, phantoms: Path) -> None:
    with pytest.raises(InputError, match="cannot make 7 folds"):
        _folds(phantoms, tmp_path / "run", folds=7)


def test_the_cli_refuses_a_bad_fold_file_with_exit_2(tmp_path: Path, phantoms: Path) -> None:
    bad = tmp_path / "folds.txt"
    bad.write_text("case0 0\nnot-a-case 1\n")
    args = ["train", str(phantoms), "--out", str(tmp_path / "run"), "--folds-file", str(bad)]
    done = runner.invoke(app, args)
    assert done.exit_code == 2
    assert "not-a-case" in done.output and "Traceback" not in done.output
