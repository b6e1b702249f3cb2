"""inference.export: ONNX and TorchScript exports agree with PyTorch; ONNX runs torch-free."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrseg.errors import InputError
from cxrseg.inference import Predictor, export
from cxrseg.inference.export import ExportCheckError, default_export_path, export_model
from cxrseg.training.checkpoint import load_checkpoint
from inference_builders import LABELS, SIZE, make_checkpoint, write_inputs

onnxruntime = pytest.importorskip("onnxruntime", reason="needs the onnx extra")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    make_checkpoint(folder / "best", resize="letterbox")
    return folder


@pytest.fixture(scope="module")
def onnx_file(run: Path) -> Path:
    return export_model(run, default_export_path(run, "onnx"), "onnx")


def test_onnx_export_reproduces_pytorch_logits(run: Path, onnx_file: Path) -> None:
    model, _ = load_checkpoint(run / "best")
    batch = torch.randn(3, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected = model(batch).numpy()
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {"image": batch.numpy()})
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-4)


def test_onnx_metadata_is_embedded_and_written_next_to_it(run: Path, onnx_file: Path) -> None:
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    embedded = json.loads(session.get_modelmeta().custom_metadata_map["cxrseg"])
    sidecar = json.loads(onnx_file.with_suffix(".json").read_text())
    assert embedded == sidecar
    assert embedded["labels"] == LABELS and embedded["input_size"] == SIZE
    assert embedded["export"]["format"] == "onnx" and embedded["export"]["max_abs_diff"] < 1e-4
    assert "weights" not in embedded


def test_onnx_predictor_matches_the_pytorch_predictor(run: Path, onnx_file: Path) -> None:
    image = np.random.default_rng(0).random((70, 90), dtype=np.float32)
    by_torch = Predictor.from_checkpoint(run, device="cpu", tta=True, runtime="torch", amp=False)
    by_torch = by_torch.predict(image, probabilities=True)
    by_onnx = Predictor.from_checkpoint(onnx_file, tta=True).predict(image, probabilities=True)
    assert by_torch.probabilities is not None and by_onnx.probabilities is not None
    for name in LABELS:
        np.testing.assert_allclose(by_onnx.probabilities[name], by_torch.probabilities[name],
                                   atol=1e-4)  # fmt: skip


def test_onnx_prediction_runs_without_importing_torch(tmp_path: Path, onnx_file: Path) -> None:
    write_inputs(tmp_path / "in")
    script = (
        "import sys\n"
        "from cxrseg.inference import Predictor, predict_paths\n"
        f"p = Predictor.from_checkpoint({str(onnx_file)!r}, tta=True)\n"
        f"s = predict_paths(p, [{str(tmp_path / 'in')!r}], {str(tmp_path / 'out')!r})\n"
        "assert s.written == ['a8', 'b16', 'c'], s\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert (tmp_path / "out" / "masks" / "heart" / "a8.png").is_file()


def test_torchscript_export_reproduces_pytorch_logits(run: Path, tmp_path: Path) -> None:
    path = export_model(run / "best", tmp_path / "model_torchscript.pt", "torchscript")
    model, _ = load_checkpoint(run / "best")
    extra = {"cxrseg.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(path), _extra_files=extra)
    batch = torch.randn(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        np.testing.assert_allclose(scripted(batch).numpy(), model(batch).numpy(), atol=1e-4)
    assert json.loads(extra["cxrseg.json"])["export"]["format"] == "torchscript"


def test_a_failed_check_writes_nothing(run: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(export, "_run_onnx", lambda payload, batch: np.zeros(1))
    target = tmp_path / "model.onnx"
    with pytest.raises(ExportCheckError, match="differs from PyTorch"):
        export_model(run, target, "onnx")
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_would_replace_the_checkpoint_json_is_refused(run: Path) -> None:
    with pytest.raises(InputError, match="checkpoint's JSON"):
        export_model(run, run / "best" / "model.onnx", "onnx", check=False)


@pytest.mark.parametrize(("kwargs", "match"), [({"format": "tflite"}, "tflite"),
                                               ({"opset": 11}, "opset")])  # fmt: skip
def test_bad_export_options_are_refused(run: Path, tmp_path: Path, kwargs, match: str) -> None:
    with pytest.raises(InputError, match=match):
        export_model(run, tmp_path / "m.onnx", **kwargs)
