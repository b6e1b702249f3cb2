"""``cxrseg train``: a thin shell over cxrseg.training.train, tested end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cxrseg.cli import app
from training_builders import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.yaml"
    tiny_config(batch_size=None).to_yaml(path)
    return path


@pytest.mark.slow
def test_train_prints_the_resolved_defaults_and_the_best_dice(
    phantoms: Path, config_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["train", str(phantoms), "--out", str(out), "--config", str(config_file),
            "--epochs", "1", "--seed", "3", "--quiet"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "batch_size: 4  (" in result.output  # picked from memory, with the reason
    assert "mode: sigmoid  (structures overlap" in result.output
    assert "Training completed at epoch 1" in result.output
    assert (out / "best" / "model.safetensors").is_file()
    assert "seed: 3" in (out / "config.yaml").read_text()


def test_no_amp_trains_in_float32_and_saves_amp_off(
    phantoms: Path, config_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["train", str(phantoms), "--out", str(out), "-c", str(config_file), "--epochs", "1",
            "--no-amp", "--quiet"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "precision: float32  (float32: amp is off" in result.output
    assert "amp: false" in (out / "config.yaml").read_text()


def test_existing_run_folder_exits_2_and_says_how_to_continue(
    phantoms: Path, config_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.json").write_text("{}")
    result = runner.invoke(app, ["train", str(phantoms), "--out", str(out), "-c", str(config_file)])
    assert result.exit_code == 2
    assert "already exists" in result.output and "--resume" in result.output
    assert (out / "model.json").read_text() == "{}"


def test_bad_option_value_exits_2_naming_it(phantoms: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(phantoms), "--out", str(tmp_path / "r"),
                                 "--size", "100"])  # fmt: skip
    assert result.exit_code == 2
    assert "size=100" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_exits_2(phantoms: Path, config_file: Path, tmp_path: Path) -> None:
    args = ["train", str(phantoms), "--out", str(tmp_path / "r"), "-c", str(config_file),
            "--device", "cuda"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--device cpu" in result.output
