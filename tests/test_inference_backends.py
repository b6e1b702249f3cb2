"""Tests of cxrseg.inference.backends: the runtime picked for a checkpoint, the in-memory ONNX
Runtime path and batch-norm folding."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cxrseg.errors import InputError
from cxrseg.inference import OnnxBackend, Predictor, TorchBackend
from cxrseg.inference import backends as backends_module
from cxrseg.inference.backends import onnx_from_torch
from cxrseg.models import create_model
from cxrseg.models.fusion import fold_batch_norm
from cxrseg.phantom import make_phantom
from inference_builders import LABELS, SIZE, make_checkpoint

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best", seed=3)


def files_under(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def trained_like_unet(seed: int = 0) -> nn.Module:
    """A tiny U-Net whose batch norms hold non-trivial running statistics."""
    torch.manual_seed(seed)
    model = create_model("unet", in_channels=1, num_classes=3, depth=3, base_channels=4)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_auto_runtime_on_the_cpu_is_onnx_runtime(checkpoint: Path) -> None:
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    assert isinstance(predictor.backend, OnnxBackend)
    assert predictor.backend.runtime == "onnxruntime"


def test_auto_onnx_runtime_gives_the_masks_of_pytorch(checkpoint: Path) -> None:
    images = [make_phantom(seed, (40, 52)).image for seed in range(3)]
    fast = Predictor.from_checkpoint(checkpoint, device="cpu", runtime="auto")
    plain = Predictor.from_checkpoint(checkpoint, device="cpu", runtime="torch")
    assert isinstance(plain.backend, TorchBackend)
    for a, b in zip(fast.predict_batch(images, probabilities=True),
                    plain.predict_batch(images, probabilities=True), strict=True):  # fmt: skip
        assert a.probabilities is not None and b.probabilities is not None
        stack = np.stack([b.probabilities[name] for name in LABELS])
        top2 = np.sort(np.concatenate([stack, 1 - stack.sum(0, keepdims=True)]), axis=0)[-2:]
        clear = top2[1] - top2[0] > 1e-3  # pixels not on a near-tie between two classes
        for name in LABELS:
            np.testing.assert_allclose(a.probabilities[name], b.probabilities[name], atol=1e-4)
            assert np.array_equal(a.masks[name][clear], b.masks[name][clear])


def test_auto_runtime_writes_nothing_into_the_model_folder(tmp_path: Path) -> None:
    make_checkpoint(tmp_path / "run" / "best")
    before = files_under(tmp_path)
    Predictor.from_checkpoint(tmp_path / "run", device="cpu")
    assert files_under(tmp_path) == before


def test_without_onnxruntime_auto_keeps_pytorch(checkpoint: Path, monkeypatch) -> None:
    monkeypatch.setattr(backends_module, "_has_onnxruntime", lambda: False)
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    assert isinstance(predictor.backend, TorchBackend)


def test_an_export_that_disagrees_falls_back_to_pytorch_with_a_warning(
    checkpoint: Path, monkeypatch, caplog
) -> None:
    real_call = OnnxBackend.__call__
    monkeypatch.setattr(OnnxBackend, "__call__", lambda self, b: real_call(self, b) + 0.5)
    with caplog.at_level(logging.WARNING, logger="cxrseg.inference.backends"):
        predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    assert isinstance(predictor.backend, TorchBackend)
    assert "differ from PyTorch's by up to 0.5" in caplog.text


def test_forced_onnx_runtime_refuses_an_export_that_disagrees(checkpoint: Path, monkeypatch):
    real_call = OnnxBackend.__call__
    monkeypatch.setattr(OnnxBackend, "__call__", lambda self, b: real_call(self, b) + 0.5)
    with pytest.raises(InputError, match="differ.*--runtime torch"):
        Predictor.from_checkpoint(checkpoint, device="cpu", runtime="onnxruntime")


def test_forced_onnx_runtime_on_cuda_is_refused(checkpoint: Path) -> None:
    with pytest.raises(InputError, match="runtime onnxruntime runs checkpoints on the CPU"):
        Predictor.from_checkpoint(checkpoint, device="cuda", runtime="onnxruntime")


def test_an_unknown_runtime_names_the_choices(checkpoint: Path) -> None:
    with pytest.raises(InputError, match="'tensorrt' is not one of"):
        Predictor.from_checkpoint(checkpoint, device="cpu", runtime="tensorrt")


def test_onnx_from_torch_matches_the_network_on_a_batch() -> None:
    model = trained_like_unet()
    backend = onnx_from_torch(model, SIZE, threads=1)
    assert backend is not None
    batch = np.random.default_rng(0).standard_normal((3, 1, SIZE, SIZE), dtype=np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(backend(batch), expected, atol=1e-4, rtol=1e-4)


def test_folding_batch_norm_keeps_the_eval_output() -> None:
    model = trained_like_unet()
    folded = fold_batch_norm(model)
    x = torch.randn(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), model(x), atol=1e-4, rtol=1e-4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())


def test_folding_leaves_the_callers_model_untouched() -> None:
    model = trained_like_unet()
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    TorchBackend(model, "cpu")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == norms > 0
