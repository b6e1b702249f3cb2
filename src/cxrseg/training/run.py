"""A whole training run: run folder, splits, cached data, model, epochs, checkpoints, resume.

:func:`train` is what ``cxrseg train`` calls. The run folder holds::

    config.yaml     the resolved config (defaults picked from the data filled in)
    splits.json     train/val/test case ids (reused by --resume, or given with --splits)
    metrics.csv     one row per epoch; curves.png draws it
    train.log       the picked defaults, one JSON line per epoch, why the run stopped
    best/           model.safetensors + model.json of the best validation Dice, with the
                    post-processing chosen on the validation set at the end
    last/           the same for the last epoch, plus resume.safetensors + resume.json

Only the main process (rank 0 under torchrun) writes; every process computes.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from cxrseg.errors import InputError
from cxrseg.io import folder_lock
from cxrseg.postprocess import choose_postprocessing
from cxrseg.training import defaults
from cxrseg.training.checkpoint import load_checkpoint
from cxrseg.training.config import TrainConfig
from cxrseg.training.curves import metric_columns, plot_curves, write_metrics_csv
from cxrseg.training.dataset import CachedCases, SegmentationDataset, device_augment
from cxrseg.training.distributed import DistInfo, all_reduce_sum, barrier, distributed_context
from cxrseg.training.duration import format_seconds
from cxrseg.training.events import EventCallback, TrainEvent, ignore
from cxrseg.training.loop import (
    EpochOptions,
    StepSettings,
    TrainingStopped,
    evaluate,
    train_one_epoch,
    with_what_was_kept,
)
from cxrseg.training.resume import recover_swaps, save_best, save_last, starting_config
from cxrseg.training.session import Session, load_data, prepare

__all__ = ["TrainResult", "train"]

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished (or paused) run reports.

    Attributes:
        run_dir: The run folder.
        config: The resolved config.
        stopped: ``"converged"`` (the smoothed validation Dice stopped improving and the
            learning rate was annealed), ``"early_stopping"`` (the same without annealing),
            ``"completed"`` (``epochs`` reached), ``"time_budget"`` or ``"paused"``
            (``stop_after_epoch``).
        epoch: Last epoch trained.
        best_epoch: Epoch of the best checkpoint.
        best_dice: Validation Dice per structure of the best checkpoint.
        history: One dict per epoch (the rows of ``metrics.csv``).
        postprocessing: Chosen post-processing per structure (``None`` if paused).
        reason: Why the run stopped, in a sentence (also the last line of ``train.log``).
    """

    run_dir: Path
    config: TrainConfig
    stopped: str
    epoch: int
    best_epoch: int
    best_dice: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    postprocessing: dict[str, Any] | None = None
    reason: str = ""


def train(
    data: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    init: str | Path | None = None,
    splits: str | Path | None = None,
    on_event: EventCallback | None = None,
    stop_after_epoch: int | None = None,
) -> TrainResult:
    """Train a segmentation model on a dataset folder into a new run folder.

    Args:
        data: Dataset folder (any layout :func:`cxrseg.data.discover` knows).
        out: Run folder; must not exist or be empty unless ``resume``.
        config: Options; ``None`` uses the defaults (or, with ``resume``, the saved ones).
        overrides: Options given on the command line, applied on top of ``config``.
        resume: Continue the run in ``out`` from its last finished epoch.
        init: Checkpoint whose weights start the training (fine-tuning), or the name of a
            shipped model (``"lungs"``, see :mod:`cxrseg.pretrained`).
        splits: A ``splits.json`` to reuse instead of making new splits.
        on_event: Receives progress dicts (``"event"``: ``start``, ``loading``, ``step``,
            ``epoch``, ``end``) on the main process.
        stop_after_epoch: Stop (as if killed) after this epoch; ``--resume`` continues.

    Raises:
        InputError: Bad data, folder, config, or a resume/fine-tune that does not fit.
        TrainingStopped: The loss diverged or the GPU ran out of memory.
    """
    out = Path(out)
    config = starting_config(out, config, overrides or {}, resume)
    device = defaults.pick_device(config.device)
    fresh = not resume and not out.exists()
    with distributed_context(device.type) as dist:
        barrier(dist)  # every process has checked the folder before the main one writes in it
        if dist.enabled and device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
        emit = on_event if (on_event is not None and dist.is_main) else ignore
        # one command at a time per run folder (rank 0 holds the lock for all ranks)
        lock = folder_lock(out, "train") if dist.is_main else nullcontext(out)
        try:
            with lock:
                try:
                    return _run(data, out, config, device, dist, emit, resume, init, splits,
                                stop_after_epoch)  # fmt: skip
                except InputError:
                    if dist.is_main and not resume:
                        _remove_unstarted_run(out)
                    raise
        finally:
            if fresh and dist.is_main and out.is_dir() and not any(out.iterdir()):
                out.rmdir()


def _remove_unstarted_run(out: Path) -> None:
    """Undo the files of a run refused before its first epoch, so it can be started again."""
    if (out / "last").exists():
        return
    for name in ("best", "best.new", "last.new"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("splits.json", "config.yaml", "train.log", "metrics.csv", "curves.png"):
        (out / name).unlink(missing_ok=True)


# --- the run: prepare, train epochs, finish ------------------------------------------------


def _run(
    data: str | Path,
    out: Path,
    config: TrainConfig,
    device: torch.device,
    dist: DistInfo,
    emit: EventCallback,
    resume: bool,
    init: str | Path | None,
    splits_file: str | Path | None,
    stop_after_epoch: int | None,
) -> TrainResult:
    clock = time.monotonic()
    if dist.is_main:
        recover_swaps(out)
    data_part = load_data(data, out, config, device, dist, splits_file, emit)
    session = prepare(data_part, out, device, dist, emit, resume, init, clock)
    stopped, epoch = _train_epochs(session, stop_after_epoch)
    return _finish(session, stopped, epoch)


def _train_epochs(session: Session, stop_after_epoch: int | None) -> tuple[str, int]:
    """Train until the stop rule ends the run (or ``stop_after_epoch`` pauses it)."""
    epoch = session.start_epoch
    tick = time.monotonic()
    while not session.rule.done and epoch < session.config.epochs:
        epoch += 1
        improved, row = _one_epoch(session, epoch)
        now = time.monotonic()
        # every process must take the same decision: they share the mean of their clocks
        times = torch.tensor(
            [now - tick, session.wall(), 3 * row.pop("val_s")], dtype=torch.float64
        )
        epoch_s, wall_s, reserve_s = (
            all_reduce_sum(times, session.dist) / session.dist.world_size
        ).tolist()
        session.rule.update(epoch, row["val_dice_mean"], epoch_s, wall_s, reserve_s)
        tick = now
        session.scheduler.lr_lambdas[0].follow(session.rule, session.steps_per_epoch)
        _record(session, epoch, row, improved)
        if not session.rule.done and stop_after_epoch is not None and epoch >= stop_after_epoch:
            return "paused", epoch
    return session.rule.stopped or "completed", epoch


def _one_epoch(session: Session, epoch: int) -> tuple[bool, dict[str, Any]]:
    """Train one epoch and validate; return whether it is the best and its metrics row."""
    s = session
    s.sampler.set_epoch(epoch)
    augment = device_augment(s.pipeline, s.data.structures, epoch) if s.on_device else None
    batch_size = int(s.config.batch_size or 1)
    try:
        options = EpochOptions(epoch, s.dist, augment, s.scaler, s.emit)
        stats = train_one_epoch(s.model, s.loader, s.optimizer, s.scheduler, s.loss_fn,
                                s.settings, options)  # fmt: skip
    except TrainingStopped as exc:
        s.run_log.write(f"stopped: {exc}")
        raise TrainingStopped(with_what_was_kept(str(exc), epoch - 1)) from exc
    except torch.cuda.OutOfMemoryError as exc:
        s.run_log.write(f"stopped: out of memory at epoch {epoch}")
        raise TrainingStopped(
            f"the GPU ran out of memory at epoch {epoch} with batch size {batch_size} "
            f"({exc}). Fix: halve the batch, --batch-size {max(1, batch_size // 2)}, or "
            "lower --size."
        ) from exc
    started = time.monotonic()
    result = evaluate(s.model, s.val_loader, s.loss_fn, s.settings, dist=s.dist,
                      num_structures=len(s.data.structures))  # fmt: skip
    s.elapsed += stats.seconds
    dice = {f"val_dice_{n}": float(d) for n, d in zip(s.data.structures, result.dice, strict=True)}
    row = {"epoch": epoch, "train_loss": stats.loss, "val_loss": result.loss, **dice,
           "val_dice_mean": result.mean_dice, "lr": stats.lrs[0] if stats.lrs else math.nan,
           "epoch_s": stats.seconds, "elapsed_s": s.elapsed,
           "val_s": time.monotonic() - started}  # fmt: skip
    return s.stopper.update(result.mean_dice, epoch), row


def _record(session: Session, epoch: int, row: dict[str, Any], improved: bool) -> None:
    """Save the checkpoints, metrics.csv and curves.png; log and emit the epoch."""
    s = session
    s.history.append(row)
    if s.dist.is_main:
        meta = {**s.base_meta, "epoch": epoch, "metrics": row}
        if improved:
            save_best(s.out, s.core, meta)
        extra = {"history": s.history, "early_stopping": s.stopper.state_dict(),
                 "stop_rule": s.rule.state_dict(), "elapsed_s": s.elapsed, "wall_s": s.wall(),
                 "dataset": s.data.identity,
                 "scaler": s.scaler.state_dict() if s.scaler else None}  # fmt: skip
        save_last(s.out, s.core, meta, s.optimizer, s.scheduler, epoch, extra)
        write_metrics_csv(s.out / "metrics.csv", s.history, metric_columns(s.data.structures))
        plot_curves(s.out / "curves.png", s.history, s.data.structures, title=s.out.name)
    barrier(s.dist)
    s.run_log.write(json.dumps(row))
    s.emit(TrainEvent("epoch", {**row, "epochs": s.rule.schedule_end, "best": improved,
            "best_epoch": s.stopper.best_epoch}))  # fmt: skip


def _finish(session: Session, stopped: str, epoch: int) -> TrainResult:
    """Choose the post-processing on validation, log why the run stopped, report."""
    s = session
    post = None
    if stopped != "paused" and s.dist.is_main:
        post = _choose_postprocessing(s.out, s.data.val, s.loss_fn, s.settings, s.emit)
    barrier(s.dist)
    best = next((r for r in s.history if r["epoch"] == s.stopper.best_epoch), {})
    reason = "paused by stop_after_epoch" if stopped == "paused" else s.rule.reason
    result = TrainResult(
        run_dir=s.out, config=s.config, stopped=stopped, epoch=epoch,
        best_epoch=s.stopper.best_epoch,
        best_dice={n: float(best.get(f"val_dice_{n}", math.nan)) for n in s.data.structures},
        history=s.history, postprocessing=post, reason=reason,
    )  # fmt: skip
    s.run_log.write(f"end: {stopped} at epoch {epoch}, best epoch {s.stopper.best_epoch} "
                    f"({format_seconds(s.wall())} in all): {reason}")  # fmt: skip
    s.emit(TrainEvent("end", {"stopped": stopped, "epoch": epoch, "reason": reason,
            "best_epoch": s.stopper.best_epoch, "best_dice": result.best_dice,
            "postprocessing": post}))  # fmt: skip
    return result


def _choose_postprocessing(
    out: Path, val: CachedCases, loss_fn: nn.Module, settings: StepSettings, emit: EventCallback
) -> dict[str, Any] | None:
    """Pick post-processing with the best model on the validation set; store it in ``best/``."""
    if not (out / "best" / "model.json").is_file():
        return None
    model, meta = load_checkpoint(out / "best", map_location=settings.device)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    loader = DataLoader(SegmentationDataset(val), batch_size=4)
    result = evaluate(model, loader, loss_fn, settings, dist=DistInfo(),
                      num_structures=len(val.structures), keep_predictions=True)  # fmt: skip
    assert result.predictions is not None and result.references is not None
    names = val.structures
    preds = [dict(zip(names, p, strict=True)) for p in result.predictions]
    refs = [dict(zip(names, r, strict=True)) for r in result.references]
    chosen, report = choose_postprocessing(preds, refs)
    post = {name: cfg.to_dict() for name, cfg in chosen.items()}
    save_best(out, model, {**meta, "postprocessing": post, "postprocessing_report": report})
    emit(TrainEvent("postprocess", {"postprocessing": post, "report": report}))
    return post
