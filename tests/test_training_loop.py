"""Epoch functions: schedule, early stopping, a few phantoms overfit, validation Dice."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cxrseg.losses import SegmentationLoss
from cxrseg.models import create_model
from cxrseg.phantom import make_phantom
from cxrseg.training.config import TrainConfig
from cxrseg.training.dataset import CachedCases, SegmentationDataset
from cxrseg.training.distributed import DistInfo
from cxrseg.training.loop import (
    EarlyStopping,
    EpochOptions,
    StepSettings,
    build_optimizer,
    build_scheduler,
    evaluate,
    lr_factor,
    train_one_epoch,
)

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ["left_lung", "right_lung", "heart"]  # exclusive structures: softmax mode
CPU = StepSettings(torch.device("cpu"), "softmax")


def _phantoms(n: int = 4, size: int = 64) -> CachedCases:
    phantoms = [make_phantom(seed, size) for seed in range(n)]
    images = np.stack([p.image for p in phantoms])
    masks = np.stack([np.stack([p.masks[k] for k in NAMES]) for p in phantoms])
    return CachedCases([f"p{i}" for i in range(n)], images, masks, NAMES, [(size, size)] * n)


def test_warmup_rises_linearly_to_the_peak() -> None:
    factors = [lr_factor(s, 100, 4, "cosine", 0.0) for s in range(5)]
    assert factors == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


@pytest.mark.parametrize("schedule", ["cosine", "poly"])
def test_decay_ends_at_the_minimum_ratio_and_never_rises(schedule: str) -> None:
    factors = [lr_factor(s, 50, 5, schedule, 0.01) for s in range(5, 51)]
    assert factors[0] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(factors, factors[1:], strict=False))


def test_cosine_is_halfway_at_the_middle_of_the_decay() -> None:
    assert lr_factor(55, 105, 5, "cosine", 0.0) == pytest.approx(0.5)


def test_schedule_spans_the_configured_epochs() -> None:
    model = torch.nn.Linear(2, 2)
    config = TrainConfig(epochs=4, lr=0.1, warmup_epochs=0, min_lr_ratio=0.0, schedule="cosine")
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch=3)
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.1)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_weight_decay_spares_biases_and_norm_scales() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    optimizer = build_optimizer(model, TrainConfig(weight_decay=0.05))
    decays = {len(g["params"]): g["weight_decay"] for g in optimizer.param_groups}
    assert decays == {1: 0.05, 3: 0.0}  # conv kernel | conv bias, BN weight and bias


def test_sgd_uses_nesterov_momentum() -> None:
    optimizer = build_optimizer(torch.nn.Linear(2, 2), TrainConfig(optimizer="sgd", momentum=0.8))
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["nesterov"] and optimizer.param_groups[0]["momentum"] == 0.8


def test_early_stopping_waits_patience_epochs_after_the_best() -> None:
    stopper = EarlyStopping(patience=2, min_delta=0.01)
    improved = [
        stopper.update(score, epoch) for epoch, score in enumerate([0.5, 0.7, 0.705, 0.6], 1)
    ]
    assert improved == [True, True, False, False]
    assert stopper.should_stop and (stopper.best, stopper.best_epoch) == (0.7, 2)
    copy = EarlyStopping(patience=2, min_delta=0.01)
    copy.load_state_dict(stopper.state_dict())
    assert copy == stopper


def test_patience_zero_never_stops() -> None:
    stopper = EarlyStopping(patience=0)
    for epoch in range(1, 20):
        stopper.update(0.5, epoch)
    assert not stopper.should_stop


def test_a_few_phantoms_overfit_to_dice_above_095() -> None:
    torch.manual_seed(0)
    loader = DataLoader(SegmentationDataset(_phantoms()), batch_size=4)
    model = create_model("unet", in_channels=1, num_classes=4, depth=3, base_channels=8)
    config = TrainConfig(epochs=80, lr=1e-2, warmup_epochs=0, schedule="cosine")
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch=1)
    loss_fn = SegmentationLoss("softmax", "dice_ce")
    losses = [
        train_one_epoch(model, loader, optimizer, scheduler, loss_fn, CPU, EpochOptions(e)).loss
        for e in range(1, 81)
    ]  # fmt: skip
    result = evaluate(model, loader, loss_fn, CPU, dist=DistInfo(), num_structures=3)
    assert losses[-1] < losses[0] / 3
    assert result.dice.min() > 0.95, result.dice


def test_evaluate_scores_perfect_logits_as_dice_one() -> None:
    cases = _phantoms(n=3, size=32)

    class Oracle(torch.nn.Module):
        """Returns logits that put every pixel in its reference class."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            index = self.lookup[tuple(x.shape)]
            return index

    masks = torch.from_numpy(cases.masks.astype(np.float32))
    background = 1 - masks.sum(dim=1, keepdim=True)
    logits = torch.cat([background, masks], dim=1) * 10
    oracle = Oracle()
    oracle.lookup = {(3, 1, 32, 32): logits}  # type: ignore[assignment]
    loader = DataLoader(SegmentationDataset(cases), batch_size=3)
    result = evaluate(oracle, loader, SegmentationLoss("softmax", "ce"), CPU, dist=DistInfo(),
                      num_structures=3, keep_predictions=True)  # fmt: skip
    assert result.dice == pytest.approx([1.0, 1.0, 1.0])
    assert result.count == 3 and result.loss < 1e-3
    assert np.array_equal(result.predictions, cases.masks)
    assert math.isclose(result.mean_dice, 1.0)
