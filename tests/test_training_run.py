"""Whole training runs on tiny phantoms: run folder, resume, and every refusal of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cxrseg.errors import InputError
from cxrseg.training import TrainingStopped, load_checkpoint, train
from cxrseg.training.curves import read_metrics_csv
from training_builders import lungs_folder, phantom_folder, tiny_config

PHANTOMS = {"n": 8}  # the conftest fixture's dataset

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def finished_run(phantoms: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    train(phantoms, out, tiny_config())
    return out


def test_run_folder_holds_config_splits_metrics_curves_and_checkpoints(finished_run: Path) -> None:
    names = {p.name for p in finished_run.iterdir()}
    assert {"config.yaml", "splits.json", "metrics.csv", "curves.png", "train.log"} <= names
    assert {"best", "last"} <= names
    assert (finished_run / "last" / "resume.json").is_file()
    rows = read_metrics_csv(finished_run / "metrics.csv")
    assert [row["epoch"] for row in rows] == [1.0, 2.0]
    assert {"train_loss", "val_loss", "val_dice_heart", "val_dice_mean", "lr"} <= set(rows[0])


def test_best_checkpoint_describes_everything_predict_needs(finished_run: Path) -> None:
    model, meta = load_checkpoint(finished_run / "best")
    assert meta["labels"] == ["left_lung", "right_lung", "heart", "left_clavicle", "right_clavicle"]
    assert meta["mode"] == "sigmoid"  # the clavicles overlap the lungs
    assert (meta["input_size"], meta["resize"], meta["normalization"]) == (32, "squash", "zscore")
    assert meta["config"]["model_kwargs"]["base_channels"] == 4
    assert set(meta["postprocessing"]) == set(meta["labels"])
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 5, 32, 32)


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(
    phantoms: Path, tmp_path: Path
) -> None:
    config = tiny_config(epochs=3)
    train(phantoms, tmp_path / "whole", config)
    paused = train(phantoms, tmp_path / "cut", config, stop_after_epoch=1)
    assert paused.stopped == "paused" and paused.epoch == 1
    resumed = train(phantoms, tmp_path / "cut", resume=True)
    assert resumed.epoch == 3
    whole = load_file(tmp_path / "whole" / "last" / "model.safetensors")
    cut = load_file(tmp_path / "cut" / "last" / "model.safetensors")
    assert whole.keys() == cut.keys()
    assert all(torch.equal(whole[k], cut[k]) for k in whole)
    losses = [r["train_loss"] for r in read_metrics_csv(tmp_path / "whole" / "metrics.csv")]
    assert [r["train_loss"] for r in read_metrics_csv(tmp_path / "cut" / "metrics.csv")] == losses


def test_existing_run_folder_is_refused_without_resume(phantoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="--resume"):
        train(phantoms, out, tiny_config())
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_resume_with_another_config_is_refused_naming_the_option(
    phantoms: Path, tmp_path: Path
) -> None:
    train(phantoms, tmp_path / "run", tiny_config(), stop_after_epoch=1)
    with pytest.raises(InputError, match=rf"lr: {tiny_config().lr!r} -> 0\.1"):
        train(phantoms, tmp_path / "run", resume=True, overrides={"lr": 0.1})


def test_resume_on_another_dataset_is_refused_naming_the_new_cases(
    phantoms: Path, tmp_path: Path
) -> None:
    train(phantoms, tmp_path / "run", tiny_config(), stop_after_epoch=1)
    bigger = phantom_folder(tmp_path / "bigger", n=9)
    with pytest.raises(InputError, match="new cases: phantom_0009"):
        train(bigger, tmp_path / "run", resume=True)


def test_resume_without_a_run_is_refused(phantoms: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="last/ checkpoint"):
        train(phantoms, tmp_path / "nothing", resume=True)


def test_too_few_cases_are_refused_with_the_counts(tmp_path: Path) -> None:
    data = lungs_folder(tmp_path / "data", n=2)
    with pytest.raises(InputError, match="1 for training and 1 for validation"):
        train(data, tmp_path / "run", tiny_config(val_fraction=0.5))
    assert not (tmp_path / "run").exists()  # nothing left that would block a second try


def test_augmentation_on_the_device_path_trains(phantoms: Path, tmp_path: Path) -> None:
    result = train(phantoms, tmp_path / "run", tiny_config(epochs=1, augment_on="device"))
    assert result.stopped == "completed" and len(result.history) == 1


def test_fine_tuning_on_other_structures_lists_both_label_sets(
    finished_run: Path, tmp_path: Path
) -> None:
    lungs = lungs_folder(tmp_path / "lungs")
    with pytest.raises(InputError, match=r"\['left_lung'.*but the data has \['foreground'\]"):
        train(lungs, tmp_path / "run", tiny_config(), init=finished_run / "best")


def test_fine_tuning_starts_from_the_checkpoint_weights(
    finished_run: Path, phantoms: Path, tmp_path: Path
) -> None:
    train(phantoms, tmp_path / "tuned", tiny_config(epochs=1, lr=1e-12),
          init=finished_run / "best")  # fmt: skip
    start = load_file(finished_run / "best" / "model.safetensors")
    tuned = load_file(tmp_path / "tuned" / "last" / "model.safetensors")
    kernels = [k for k, v in start.items() if v.ndim == 4]
    assert kernels
    assert all(torch.allclose(start[k], tuned[k], atol=1e-6) for k in kernels)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    phantoms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cxrseg.training import loop

    broken = {"on": False}
    real_loss = loop._loss_of

    def loss_of(
        loss_fn: torch.nn.Module, output: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        loss = real_loss(loss_fn, output, target)
        return loss * float("nan") if broken["on"] else loss

    def after_epoch(event: dict) -> None:
        if event["event"] == "epoch":
            broken["on"] = True

    monkeypatch.setattr(loop, "_loss_of", loss_of)
    with pytest.raises(TrainingStopped, match=r"epoch 2, step 1.*--lr"):
        train(phantoms, tmp_path / "run", tiny_config(epochs=3), on_event=after_epoch)
    last = json.loads((tmp_path / "run" / "last" / "model.json").read_text())
    assert last["epoch"] == 1
    assert len(read_metrics_csv(tmp_path / "run" / "metrics.csv")) == 1


def test_out_of_memory_suggests_half_the_batch_size(
    phantoms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cxrseg.training import run

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(run, "train_one_epoch", out_of_memory)
    with pytest.raises(TrainingStopped, match="--batch-size 2"):
        train(phantoms, tmp_path / "run", tiny_config(batch_size=4))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_a_gpu_is_refused(phantoms: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--device cpu"):
        train(phantoms, tmp_path / "run", tiny_config(device="cuda"))
    assert not (tmp_path / "run").exists()


def test_given_splits_file_is_reused_without_a_warning(
    finished_run: Path, phantoms: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train(phantoms, tmp_path / "again", tiny_config(epochs=1, seed=5),
          splits=finished_run / "splits.json")  # fmt: skip
    first = json.loads((finished_run / "splits.json").read_text())
    again = json.loads((tmp_path / "again" / "splits.json").read_text())
    assert again["folds"] == first["folds"] and again["seed"] != 5
    assert "reusing saved splits" not in caplog.text  # the given file is the record, not a clash


def test_a_flat_validation_curve_cools_down_and_train_log_says_why(
    phantoms: Path, tmp_path: Path
) -> None:
    # lr 1e-12: the weights barely move, the validation Dice is flat from the first epoch
    result = train(phantoms, tmp_path / "run", tiny_config(epochs=50, patience=2, lr=1e-12))
    assert result.stopped == "converged" and result.epoch == 4  # plateau at 3, cool-down of 1
    last_line = (tmp_path / "run" / "train.log").read_text().strip().splitlines()[-1]
    assert "end: converged at epoch 4" in last_line
    assert "has not improved" in last_line and "annealed over epochs 4-4" in last_line


def test_a_time_budget_too_short_for_a_second_epoch_stops_after_the_first(
    phantoms: Path, tmp_path: Path
) -> None:
    result = train(phantoms, tmp_path / "run", tiny_config(epochs=50, time_budget=0.01))
    assert (result.stopped, result.epoch) == ("time_budget", 1)
    assert "time budget of 0s" in (tmp_path / "run" / "train.log").read_text()
    assert (tmp_path / "run" / "best" / "model.json").is_file()


def test_patience_left_open_is_fitted_to_the_data_and_saved(phantoms: Path, tmp_path: Path) -> None:
    result = train(phantoms, tmp_path / "run", tiny_config(epochs=1, patience=None))
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert result.config.patience == 30 and "patience: 30" in saved  # 2 steps per epoch
