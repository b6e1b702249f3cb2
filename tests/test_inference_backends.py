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
from cxrseg.metrics import dice_per_structure
from cxrseg.models import create_model
from cxrseg.models.fusion import fold_batch_norm
from cxrseg.phantom import make_phantom
from cxrseg.pretrained import model_path
from cxrseg.training import precision
from inference_builders import LABELS, SIZE, make_checkpoint, mock_cpu_bf16

pytest.importorskip("onnxruntime")
NATIVE_BF16, NATIVE_WHY = precision.cpu_bf16_support()


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


def test_auto_runtime_on_a_cpu_without_bf16_is_onnx_runtime(checkpoint: Path, monkeypatch) -> None:
    mock_cpu_bf16(monkeypatch, native=False)
    backend = Predictor.from_checkpoint(checkpoint, device="cpu").backend
    assert isinstance(backend, OnnxBackend)
    assert (backend.runtime, backend.precision) == ("onnxruntime", "float32")
    assert "no native bfloat16" in backend.reason


def test_auto_runtime_on_a_bf16_cpu_is_pytorch_bfloat16(checkpoint: Path, monkeypatch) -> None:
    mock_cpu_bf16(monkeypatch, native=True)
    backend = Predictor.from_checkpoint(checkpoint, device="cpu").backend
    assert isinstance(backend, TorchBackend) and backend.channels_last
    assert (backend.runtime, backend.precision) == ("torch", "bfloat16")
    assert "has native bfloat16" in backend.reason


def test_no_amp_on_a_bf16_cpu_keeps_onnx_runtime_float32(checkpoint: Path, monkeypatch) -> None:
    mock_cpu_bf16(monkeypatch, native=True)
    backend = Predictor.from_checkpoint(checkpoint, device="cpu", amp=False).backend
    assert (backend.runtime, backend.precision) == ("onnxruntime", "float32")
    assert "--no-amp" in backend.reason


@pytest.mark.parametrize("native", [True, False])
def test_forced_runtime_wins_over_the_capability(checkpoint: Path, monkeypatch, native) -> None:
    mock_cpu_bf16(monkeypatch, native=native)
    torch_backend = Predictor.from_checkpoint(checkpoint, device="cpu", runtime="torch").backend
    assert torch_backend.runtime == "torch" and "--runtime torch" in torch_backend.reason
    assert torch_backend.precision == ("bfloat16" if native else "float32")
    ort = Predictor.from_checkpoint(checkpoint, device="cpu", runtime="onnxruntime").backend
    assert ort.runtime == "onnxruntime" and ort.reason == "--runtime onnxruntime"


@pytest.mark.skipif(not NATIVE_BF16, reason=f"no native bfloat16 here: {NATIVE_WHY}")
def test_bf16_masks_of_the_shipped_model_match_float32_masks() -> None:
    images = [make_phantom(seed, 256).image for seed in range(4)]
    fp32 = Predictor.from_checkpoint(model_path("lungs"), "cpu", runtime="onnxruntime")
    bf16 = Predictor.from_checkpoint(model_path("lungs"), "cpu", runtime="auto")
    assert bf16.backend.precision == "bfloat16"
    for a, b in zip(fp32.predict_batch(images), bf16.predict_batch(images), strict=True):
        reference, candidate = a.masks["lungs"], b.masks["lungs"]
        assert reference.sum() > 0.1 * reference.size  # lungs were found, so Dice means something
        # phantoms are not chest films: more of the outline sits near 0.5 than on real films,
        # where the masks agree at Dice 0.9998 on average (docs/benchmarks.md, bfloat16)
        assert dice_per_structure(candidate[None, None], reference[None, None])[0, 0] >= 0.998


def test_onnx_runtime_gives_the_masks_of_pytorch_float32(checkpoint: Path) -> None:
    images = [make_phantom(seed, (40, 52)).image for seed in range(3)]
    fast = Predictor.from_checkpoint(checkpoint, device="cpu", runtime="onnxruntime")
    plain = Predictor.from_checkpoint(checkpoint, device="cpu", runtime="torch", amp=False)
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
    mock_cpu_bf16(monkeypatch, native=False)  # else PyTorch is picked for bfloat16 anyway
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    assert isinstance(predictor.backend, TorchBackend)
    assert predictor.backend.precision == "float32"
    assert "onnxruntime is not installed" in predictor.backend.reason


def test_an_export_that_disagrees_falls_back_to_pytorch_with_a_warning(
    checkpoint: Path, monkeypatch, caplog
) -> None:
    real_call = OnnxBackend.__call__
    monkeypatch.setattr(OnnxBackend, "__call__", lambda self, b: real_call(self, b) + 0.5)
    mock_cpu_bf16(monkeypatch, native=False)
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
