"""One epoch of training, one pass of validation, and the pieces they need: plain functions.

:func:`train_one_epoch` and :func:`evaluate` take the model, a loader and a :class:`StepSettings`
(training also an :class:`EpochOptions`: epoch, process group, augmentation, scaler, events);
:func:`build_optimizer` is built from a :class:`~cxrseg.training.config.TrainConfig`
(:func:`build_scheduler`, :func:`lr_factor` and :class:`EarlyStopping` live in
:mod:`cxrseg.training.schedule` and are re-exported here). :func:`cxrseg.training.run.train`
ties them together with the run folder, checkpoints and resume. Nothing here prints: progress
goes to an ``on_event(dict)`` callback.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sized
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from cxrseg.errors import CxrsegError
from cxrseg.losses import logits_to_masks, masks_to_target
from cxrseg.metrics import dice_per_structure
from cxrseg.training.config import TrainConfig
from cxrseg.training.dataset import normalize_batch
from cxrseg.training.distributed import DistInfo, all_reduce_sum
from cxrseg.training.events import EventCallback, TrainEvent
from cxrseg.training.schedule import EarlyStopping, build_scheduler, lr_factor

__all__ = [
    "EarlyStopping",
    "EpochOptions",
    "EvalResult",
    "StepSettings",
    "TrainingStopped",
    "with_what_was_kept",
    "build_optimizer",
    "build_scheduler",
    "evaluate",
    "lr_factor",
    "train_one_epoch",
]

logger = logging.getLogger(__name__)


class TrainingStopped(CxrsegError):
    """Training cannot go on (non-finite loss, out of memory); the message says what to do."""


@dataclass(frozen=True)
class StepSettings:
    """How batches are prepared and stepped; the same for training and validation.

    Attributes:
        device: Where the model lives.
        mode: ``"softmax"`` or ``"sigmoid"`` target encoding.
        normalization: ``"zscore"`` or ``"unit"`` (see :func:`normalize_batch`).
        channels_last: Put batches in the channels-last memory format.
        amp_dtype: Autocast dtype (``torch.bfloat16``/``torch.float16``) or ``None``.
        grad_clip: Maximum gradient norm, or ``None``.
    """

    device: torch.device
    mode: str
    normalization: str = "zscore"
    channels_last: bool = False
    amp_dtype: torch.dtype | None = None
    grad_clip: float | None = None

    def autocast(self) -> Any:
        """The autocast context of a forward pass (a no-op without mixed precision)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


# --- optimisation -------------------------------------------------------------------------


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD (Nesterov) over the model's parameters.

    Weight decay is not applied to biases and normalisation scales (1-D parameters).
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=config.lr)


# --- batches ------------------------------------------------------------------------------


def _prepare(
    batch: dict[str, Any],
    settings: StepSettings,
    augment: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move a batch to the device, augment it there if asked, normalise; return
    ``(inputs (N, 1, H, W), masks (N, K, H, W) uint8, target)``."""
    images = batch["image"].to(settings.device, non_blocking=True)
    masks = batch["masks"].to(settings.device, non_blocking=True)
    if augment is not None:
        images, masks = augment(images, masks, batch["index"])
    inputs = normalize_batch(images.float(), settings.normalization)
    if settings.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    target = masks_to_target(masks, settings.mode)  # on the device: no copy back to the host
    return inputs, masks, target


def _loss_of(loss_fn: nn.Module, output: Any, target: torch.Tensor) -> torch.Tensor:
    """The loss of the logits (``SegmentationLoss`` weights deep-supervision lists itself)."""
    return loss_fn(output, target)


@dataclass
class EpochStats:
    """What one training epoch measured (averaged over all processes)."""

    loss: float
    images: int
    seconds: float
    data_seconds: float = 0.0
    lrs: list[float] = field(default_factory=list)


@dataclass
class EpochOptions:
    """What an epoch of :func:`train_one_epoch` needs besides the model, data and optimiser.

    Attributes:
        epoch: 1-based epoch, for events and error messages.
        dist: Process group; the epoch loss is averaged over every process.
        augment: ``augment(images, masks, indices) -> (images, masks)`` on the device, or
            ``None`` when the loader already augments.
        scaler: Gradient scaler for float16 autocast.
        on_event: Receives a ``step`` :class:`~cxrseg.training.events.TrainEvent` after each batch.
    """

    epoch: int = 1
    dist: DistInfo = field(default_factory=DistInfo)
    augment: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Any] | None = None
    scaler: torch.amp.GradScaler | None = None
    on_event: EventCallback | None = None


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: nn.Module,
    settings: StepSettings,
    options: EpochOptions,
) -> EpochStats:
    """Train for one pass over ``loader``; the scheduler steps after every batch.

    Each step: prepare the batch (:func:`_prepare`), forward under the settings' autocast and
    the loss in float32, check that it is finite on every process (:func:`_step_stats`),
    backward and optimiser step (:func:`_backward_and_step`), report.

    Args:
        model: The (possibly DDP-wrapped) network, in training mode on return.
        loader: Yields dicts with ``"image"``, ``"masks"`` and ``"index"``.
        optimizer: From :func:`build_optimizer`.
        scheduler: From :func:`build_scheduler`.
        loss_fn: Called as ``loss_fn(logits, target)``.
        settings: Device, target mode, normalisation, precision, clipping.
        options: Epoch number, process group, device augmentation, scaler, event callback.

    Raises:
        TrainingStopped: The loss is NaN or infinite on any process.
    """
    model.train()
    total = torch.zeros(3, dtype=torch.float64)  # loss sum, images, non-finite flag
    steps = len(loader) if isinstance(loader, Sized) else 0
    start = time.perf_counter()
    data_seconds = 0.0
    lrs = []
    waited = time.perf_counter()
    for step, batch in enumerate(loader, start=1):
        data_seconds += time.perf_counter() - waited
        inputs, _, target = _prepare(batch, settings, options.augment)
        with settings.autocast():
            output = model(inputs)
        loss = _loss_of(loss_fn, output, target)
        step_stats = _step_stats(loss, len(inputs), options, step, optimizer)
        _backward_and_step(model, loss, optimizer, settings, options.scaler)
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
        total += step_stats
        if options.on_event is not None:
            loss_value = float(step_stats[0]) / max(float(step_stats[1]), 1.0)
            values = {"epoch": options.epoch, "step": step, "steps": steps, "loss": loss_value}
            options.on_event(TrainEvent("step", values))
        waited = time.perf_counter()
    if total[1] == 0:
        raise TrainingStopped(
            f"epoch {options.epoch} had no training batch; check the training split."
        )
    seconds = time.perf_counter() - start
    return EpochStats(float(total[0] / total[1]), int(total[1]), seconds, data_seconds, lrs)


def _step_stats(
    loss: torch.Tensor, images: int, options: EpochOptions, step: int, optimizer: Any
) -> torch.Tensor:
    """``(loss sum, images, non-finite flag)`` of a step, summed over every process.

    Raises:
        TrainingStopped: The loss is NaN or infinite on any process (all of them stop).
    """
    value = loss.item()  # the step's one wait for the device
    stats = torch.tensor([value * images, images, 0.0 if math.isfinite(value) else 1.0],
                         dtype=torch.float64)  # fmt: skip
    if options.dist.enabled:  # every process must learn that one of them diverged
        all_reduce_sum(stats, options.dist)
    if stats[2] > 0:
        raise TrainingStopped(
            f"the training loss became {value} at epoch {options.epoch}, step {step}; "
            "training stopped. Fix: lower the "
            f"learning rate (e.g. --lr {optimizer.param_groups[0]['lr'] / 3:.2g}), or "
            "check the images for NaN values."
        )
    return stats


def _backward_and_step(
    model: nn.Module,
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    settings: StepSettings,
    scaler: torch.amp.GradScaler | None,
) -> None:
    """Gradients (scaled for float16), clipping, and one optimiser step."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if settings.grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


@dataclass
class EvalResult:
    """Validation scores, already combined over every process.

    Attributes:
        loss: Mean loss per image.
        dice: Mean Dice per structure over the cases, (K,).
        count: Number of cases.
        predictions: (N, K, H, W) uint8 predicted masks of this process's cases when asked.
        references: (N, K, H, W) uint8 reference masks matching ``predictions``.
        indices: Dataset indices of ``predictions``.
    """

    loss: float
    dice: np.ndarray
    count: int
    predictions: np.ndarray | None = None
    references: np.ndarray | None = None
    indices: list[int] = field(default_factory=list)

    @property
    def mean_dice(self) -> float:
        """Mean over structures."""
        return float(self.dice.mean()) if self.dice.size else math.nan


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    loss_fn: nn.Module,
    settings: StepSettings,
    *,
    dist: DistInfo,
    num_structures: int,
    keep_predictions: bool = False,
) -> EvalResult:
    """Validation loss and Dice per structure over full images at the training size.

    Every process evaluates its own share of the cases; sums of loss, Dice and case counts are
    then added up over all processes, so each gets the same :class:`EvalResult` scores.

    Args:
        model: The network (put in eval mode here).
        loader: Yields unaugmented batches (``"image"``, ``"masks"``, ``"index"``).
        loss_fn: As in training.
        settings: As in training.
        dist: Process group.
        num_structures: K, the number of structures.
        keep_predictions: Also return this process's predicted and reference masks (used to
            choose the post-processing).
    """
    model.eval()
    sums = torch.zeros(num_structures + 2, dtype=torch.float64)  # loss, count, dice per K
    preds: list[np.ndarray] = []
    refs: list[np.ndarray] = []
    indices: list[int] = []
    for batch in loader:
        inputs, masks, target = _prepare(batch, settings)
        with settings.autocast():
            logits = model(inputs)
        sums[0] += float(_loss_of(loss_fn, logits, target)) * len(inputs)
        predicted = logits_to_masks(logits.float(), settings.mode).to(torch.uint8).cpu().numpy()
        reference = masks.to(torch.uint8).cpu().numpy()
        sums[1] += len(inputs)
        sums[2:] += torch.from_numpy(dice_per_structure(predicted, reference).sum(axis=0))
        if keep_predictions:
            preds.append(predicted)
            refs.append(reference)
            indices.extend(int(i) for i in batch["index"])
    all_reduce_sum(sums, dist)
    count = int(sums[1])
    if count == 0:
        raise TrainingStopped("the validation split is empty; give it at least one case.")
    return EvalResult(
        loss=float(sums[0] / count),
        dice=(sums[2:] / count).numpy(),
        count=count,
        predictions=np.concatenate(preds) if preds else None,
        references=np.concatenate(refs) if refs else None,
        indices=indices,
    )


def with_what_was_kept(message: str, saved_epoch: int) -> str:
    """``message`` with what the run folder still holds said truthfully, before its fix."""
    reason, _, fix = message.partition(" Fix: ")
    kept = (
        f" The checkpoints of epoch {saved_epoch} (best/, last/) are kept."
        if saved_epoch > 0
        else " No checkpoint was written: it stopped before the first epoch ended."
    )
    return reason.rstrip(".") + "." + kept + (f" Fix: {fix}" if fix else "")
