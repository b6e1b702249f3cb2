"""Tests of `cxrseg predict` and `cxrseg export` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrseg.cli import app
from inference_builders import LABELS, make_checkpoint, mock_cpu_bf16, rewrite_json, write_inputs

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    make_checkpoint(folder / "best")
    return folder


def predict(*args: object) -> object:
    return runner.invoke(app, ["predict", *map(str, args), "--quiet"])


def test_predict_writes_masks_for_every_input(run: Path, tmp_path: Path) -> None:
    write_inputs(tmp_path / "in")
    result = predict(run, tmp_path / "in", "--out", tmp_path / "out", "--tta", "--overlays")
    assert result.exit_code == 0, result.output
    assert "Predicted 3 image(s)" in result.output
    for name in LABELS:
        assert sorted(p.name for p in (tmp_path / "out" / "masks" / name).iterdir()) == [
            "a8.png", "b16.png", "c.png"]  # fmt: skip
    assert (tmp_path / "out" / "overlays" / "c.png").is_file()


def test_a_failed_input_is_listed_and_exits_1(run: Path, tmp_path: Path) -> None:
    write_inputs(tmp_path / "in")
    (tmp_path / "in" / "zz.dcm").write_bytes(b"not a dicom")
    result = predict(run, tmp_path / "in", "--out", tmp_path / "out", "--label-map")
    assert result.exit_code == 1
    assert "1 input(s) failed" in result.output and "zz.dcm" in result.output
    assert sorted(p.name for p in (tmp_path / "out" / "labels").iterdir()) == [
        "a8.png", "b16.png", "c.png"]  # fmt: skip


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_the_runtime_option_picks_the_runtime_and_is_recorded(
    run: Path, tmp_path: Path, runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mock_cpu_bf16(monkeypatch, native=True)
    if runtime == "onnxruntime":
        pytest.importorskip("onnxruntime", reason="needs the onnx extra")
    write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    result = predict(run, tmp_path / "in" / "a8.png", "--out", out, "--runtime", runtime,
                     "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"on cpu ({runtime}, " in result.output
    record = json.loads((out / "predictions.json").read_text())
    assert record["runtime"] == runtime and f"--runtime {runtime}" in record["runtime_reason"]
    assert record["precision"] == ("bfloat16" if runtime == "torch" else "float32")


@pytest.mark.parametrize("native", [True, False])
def test_verbose_says_which_runtime_and_why(
    run: Path, tmp_path: Path, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    mock_cpu_bf16(monkeypatch, native=native)
    write_inputs(tmp_path / "in")
    result = predict(run, tmp_path / "in" / "a8.png", "--out", tmp_path / "out", "--device",
                     "cpu", "--verbose")  # fmt: skip
    assert result.exit_code == 0, result.output
    if native:
        assert "runtime: torch, bfloat16 on cpu (auto: PyTorch in bfloat16" in result.output
    else:
        assert (
            "runtime: onnxruntime, float32 on cpu (auto: float32: Mock CPU has no" in result.output
        )


def test_no_amp_predicts_in_float32(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mock_cpu_bf16(monkeypatch, native=True)
    write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    result = predict(run, tmp_path / "in" / "a8.png", "--out", out, "--device", "cpu",
                     "--runtime", "torch", "--no-amp")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "predictions.json").read_text())["precision"] == "float32"


def test_an_output_inside_the_input_exits_2(run: Path, tmp_path: Path) -> None:
    write_inputs(tmp_path / "in")
    result = predict(run, tmp_path / "in", "--out", tmp_path / "in" / "pred")
    assert result.exit_code == 2
    assert "--out" in result.output and not (tmp_path / "in" / "pred").exists()


def test_a_model_from_a_newer_cxrseg_exits_2_asking_for_an_upgrade(tmp_path: Path) -> None:
    folder = make_checkpoint(tmp_path / "ckpt")
    rewrite_json(folder / "model.json", cxrseg_version="99.1.0")
    write_inputs(tmp_path / "in")
    result = predict(folder, tmp_path / "in", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "upgrade cxrseg" in result.output


def test_export_then_predict_with_the_onnx_model(run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="needs the onnx extra")
    exported = runner.invoke(app, ["export", str(run), "--format", "onnx"])
    assert exported.exit_code == 0, exported.output
    onnx_file = run / "export" / "model.onnx"
    assert onnx_file.is_file() and "max abs difference" in exported.output
    write_inputs(tmp_path / "in")
    result = predict(onnx_file, tmp_path / "in" / "a8.png", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "masks" / "heart" / "a8.png").is_file()


def test_export_with_an_unknown_format_exits_2(run: Path) -> None:
    result = runner.invoke(app, ["export", str(run), "--format", "tflite"])
    assert result.exit_code == 2 and "tflite" in result.output
