"""Precision by capability: bfloat16 autocast on CPUs with native bf16, float32 elsewhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cxrseg.losses import SegmentationLoss
from cxrseg.models import create_model
from cxrseg.phantom import make_phantom
from cxrseg.training import precision, train
from cxrseg.training.config import TrainConfig
from cxrseg.training.dataset import CachedCases, SegmentationDataset
from cxrseg.training.distributed import DistInfo
from cxrseg.training.loop import (
    EpochOptions,
    StepSettings,
    build_optimizer,
    build_scheduler,
    evaluate,
    train_one_epoch,
)
from training_builders import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = torch.device("cpu")
NATIVE, WHY = precision.cpu_bf16_support()
needs_bf16 = pytest.mark.skipif(not NATIVE, reason=f"no native bfloat16 here: {WHY}")


def _mock_cpu(monkeypatch: pytest.MonkeyPatch, caps: dict[str, object], onednn: bool) -> None:
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps, raising=False)
    monkeypatch.setattr(precision, "_onednn_bf16", lambda: onednn)


# --- detection ----------------------------------------------------------------------------


@pytest.mark.parametrize("flag", precision.NATIVE_BF16_FLAGS)
def test_either_native_flag_with_onednn_gives_bfloat16(
    monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    _mock_cpu(monkeypatch, {flag: True, "cpu_name": "Test CPU"}, onednn=True)
    dtype, why = precision.autocast_dtype(CPU)
    assert dtype == torch.bfloat16 and flag in why and "Test CPU" in why


def test_cpu_without_native_bf16_keeps_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    _mock_cpu(monkeypatch, {"avx512_bw": True, "amx_bf16": False}, onednn=True)
    dtype, why = precision.autocast_dtype(CPU)
    assert dtype is None and "no native bfloat16" in why


def test_flags_without_onednn_bf16_keep_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    _mock_cpu(monkeypatch, {"amx_bf16": True}, onednn=False)
    dtype, why = precision.autocast_dtype(CPU)
    assert dtype is None and "oneDNN" in why


def test_a_failing_capability_query_keeps_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("cpuinfo failed")

    monkeypatch.setattr(torch.cpu, "get_capabilities", broken, raising=False)
    monkeypatch.setattr(precision, "_onednn_bf16", lambda: True)
    assert precision.autocast_dtype(CPU)[0] is None


def test_amp_off_is_float32_even_with_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    _mock_cpu(monkeypatch, {"amx_bf16": True}, onednn=True)
    dtype, why = precision.autocast_dtype(CPU, amp=False)
    assert dtype is None and "--no-amp" in why


def test_precision_names() -> None:
    assert precision.precision_name(None) == "float32"
    assert precision.precision_name(torch.bfloat16) == "bfloat16"


# --- the training step ----------------------------------------------------------------------


def test_bf16_step_computes_the_loss_and_keeps_the_weights_in_float32() -> None:
    torch.manual_seed(0)
    model = create_model("unet", in_channels=1, num_classes=3, depth=3, base_channels=4)
    model.to(memory_format=torch.channels_last)
    settings = StepSettings(CPU, "softmax", channels_last=True, amp_dtype=torch.bfloat16)
    inputs = torch.rand(2, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    with settings.autocast():
        logits = model(inputs)
    loss = SegmentationLoss("softmax", "dice_ce")(logits, torch.zeros(2, 32, 32, dtype=torch.long))
    loss.backward()
    assert logits.dtype == torch.bfloat16  # the network ran in bfloat16 ...
    assert loss.dtype == torch.float32  # ... the loss did not
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def _phantoms(seeds: range, size: int = 32) -> CachedCases:
    names = ["left_lung", "right_lung", "heart"]
    phantoms = [make_phantom(seed, size) for seed in seeds]
    images = np.stack([p.image for p in phantoms])
    masks = np.stack([np.stack([p.masks[k] for k in names]) for p in phantoms])
    ids = [f"p{i}" for i in seeds]
    return CachedCases(ids, images, masks, names, [(size, size)] * len(ids))


def _validation_dice(amp_dtype: torch.dtype | None, epochs: int = 20) -> float:
    """Train a small U-Net on 12 phantoms, score 8 others: mean validation Dice."""
    torch.manual_seed(0)
    model = create_model("unet", in_channels=1, num_classes=4, depth=3, base_channels=8)
    model.to(memory_format=torch.channels_last)
    config = TrainConfig(epochs=epochs, lr=1e-2, warmup_epochs=0)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch=3)
    loss_fn = SegmentationLoss("softmax", "dice_ce")
    settings = StepSettings(CPU, "softmax", channels_last=True, amp_dtype=amp_dtype)
    train_loader = DataLoader(SegmentationDataset(_phantoms(range(12))), batch_size=4)
    for epoch in range(1, epochs + 1):
        train_one_epoch(model, train_loader, optimizer, scheduler, loss_fn, settings,
                        EpochOptions(epoch))  # fmt: skip
    val_loader = DataLoader(SegmentationDataset(_phantoms(range(100, 108))), batch_size=4)
    result = evaluate(model, val_loader, loss_fn, settings, dist=DistInfo(), num_structures=3)
    return result.mean_dice


@needs_bf16
@pytest.mark.slow
def test_bf16_training_reaches_the_validation_dice_of_float32() -> None:
    fp32, bf16 = _validation_dice(None), _validation_dice(torch.bfloat16)
    assert fp32 > 0.9, fp32  # the comparison means something only once training has worked
    # 0.02 is the spread of float32 runs over seeds (0.943 to 0.959 for seeds 0 to 2).
    assert abs(bf16 - fp32) < 0.02, (bf16, fp32)


# --- a whole run records what it used ---------------------------------------------------------


@pytest.mark.slow
def test_run_on_a_cpu_without_bf16_trains_in_float32_and_logs_it(
    phantoms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mock_cpu(monkeypatch, {"avx2": True}, onednn=False)
    events: list[dict[str, object]] = []
    train(phantoms, tmp_path / "run", tiny_config(epochs=1, amp=True), on_event=events.append)
    start = next(e for e in events if e["event"] == "start")
    assert start["precision"] == "float32"
    assert "no native bfloat16" in (tmp_path / "run" / "train.log").read_text()


@needs_bf16
@pytest.mark.slow
def test_run_on_a_bf16_cpu_trains_in_bfloat16_and_logs_it(phantoms: Path, tmp_path: Path) -> None:
    events: list[dict[str, object]] = []
    train(phantoms, tmp_path / "run", tiny_config(epochs=1, amp=True), on_event=events.append)
    start = next(e for e in events if e["event"] == "start")
    assert start["precision"] == "bfloat16"
    assert "native bfloat16" in (tmp_path / "run" / "train.log").read_text()
