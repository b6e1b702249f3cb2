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
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from cxrseg.errors import InputError
from cxrseg.io import folder_lock, write_error
from cxrseg.training import defaults
from cxrseg.training.checkpoint import (
    load_checkpoint,
)
from cxrseg.training.config import TrainConfig
from cxrseg.training.curves import metric_columns, plot_curves, write_metrics_csv
from cxrseg.training.dataset import (
    CachedCases,
    EpochSampler,
    SegmentationDataset,
    augment_on_device,
    build_pipeline,
    cache_cases,
    device_augment,
)
from cxrseg.training.distributed import DistInfo, barrier, distributed_context
from cxrseg.training.loop import (
    EarlyStopping,
    StepSettings,
    TrainingStopped,
    build_optimizer,
    build_scheduler,
    evaluate,
    train_one_epoch,
    with_what_was_kept,
)
from cxrseg.training.precision import precision_name
from cxrseg.training.resume import (
    data_identity,
    last_dir,
    load_init,
    recover_swaps,
    restore,
    save_best,
    save_last,
    starting_config,
)
from cxrseg.training.seeding import seed_everything, torch_generator

__all__ = ["TrainResult", "train"]

logger = logging.getLogger(__name__)

EventCallback = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    """What a finished (or paused) run reports.

    Attributes:
        run_dir: The run folder.
        config: The resolved config.
        stopped: ``"completed"``, ``"early_stopping"`` or ``"paused"`` (``stop_after_epoch``).
        epoch: Last epoch trained.
        best_epoch: Epoch of the best checkpoint.
        best_dice: Validation Dice per structure of the best checkpoint.
        history: One dict per epoch (the rows of ``metrics.csv``).
        postprocessing: Chosen post-processing per structure (``None`` if paused).
    """

    run_dir: Path
    config: TrainConfig
    stopped: str
    epoch: int
    best_epoch: int
    best_dice: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    postprocessing: dict[str, Any] | None = None


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
        if dist.enabled and device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
        emit = on_event if (on_event is not None and dist.is_main) else _ignore
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


def _ignore(event: dict[str, Any]) -> None:
    del event


def _remove_unstarted_run(out: Path) -> None:
    """Undo the files of a run refused before its first epoch, so it can be started again."""
    if (out / "last").exists():
        return
    for name in ("best", "best.new", "last.new"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("splits.json", "config.yaml", "train.log", "metrics.csv", "curves.png"):
        (out / name).unlink(missing_ok=True)


# --- configuration and run folder ---------------------------------------------------------


def _split_options(path: Path, config: TrainConfig) -> dict[str, Any]:
    """Seed and fractions of the run's splits: the file's own once it exists.

    A run folder's ``splits.json`` (given with ``--splits``, or made at the start of a run now
    resumed) is the record, so it is not reported as differing from the config's fractions.
    """
    options = {
        "seed": config.seed,
        "val_fraction": config.val_fraction,
        "test_fraction": config.test_fraction,
    }
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        recorded = {key: saved[key] for key in options}
        folds = saved.get("k")
    except (OSError, ValueError, KeyError, TypeError):
        return options  # none yet, or unreadable: load_or_create_splits says what is wrong
    return {**recorded, "folds": folds} if folds else recorded


def _split(
    dataset: Any, out: Path, config: TrainConfig, given: str | Path | None, dist: DistInfo
) -> tuple[list[Any], list[Any], list[Any]]:
    """Train/val/test cases from the run's ``splits.json`` (made once, by rank 0)."""
    from cxrseg.data import adopt_splits, load_or_create_splits

    path = out / "splits.json"
    if given is not None and dist.is_main and not path.exists():
        adopt_splits(given, path, dataset.case_ids)  # errors name the user's file
    for turn in (0, 1):  # rank 0 writes the file first, the others then read it
        if (turn == 0) == dist.is_main:
            try:
                result = load_or_create_splits(
                    path, dataset.case_ids, **_split_options(path, config)
                )
            except InputError:
                raise
            except ValueError as exc:
                raise InputError(
                    f"cannot split {len(dataset.cases)} cases: {exc}",
                    path=dataset.root,
                    hint="add cases, or lower val_fraction/test_fraction in the --config file.",
                ) from exc
        barrier(dist)
    by_id = {case.case_id: case for case in dataset.cases}
    parts = [[by_id[i] for i in ids] for ids in (result.train, result.val, result.test)]
    if len(parts[0]) < 2 or len(parts[1]) < 1:
        raise InputError(
            f"too few cases to train: {len(parts[0])} for training and {len(parts[1])} for "
            f"validation (of {len(dataset.cases)}; at least 2 and 1 are needed).",
            path=dataset.root,
            hint="add cases, or lower val_fraction/test_fraction in the --config file.",
        )
    return parts[0], parts[1], parts[2]


# --- the run ------------------------------------------------------------------------------


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
    from cxrseg.data import discover

    if dist.is_main:
        recover_swaps(out)
    dataset = discover(data)
    if not dataset.cases:
        raise InputError("no complete image/mask pairs found.", path=data,
                         hint="run `cxrseg inspect` on the folder to see why.")  # fmt: skip
    train_cases, val_cases, test_cases = _split(dataset, out, config, splits_file, dist)
    structures = list(dataset.structures)
    identity = data_identity(dataset)
    reasons: dict[str, str] = {}
    if config.size is None:
        size, reasons["size"] = defaults.pick_size(train_cases)
        config = config.replace(size=size)
    assert config.size is not None

    def loading(done: int, total: int) -> None:
        emit({"event": "loading", "done": done, "total": total})

    train_data = cache_cases(dataset, train_cases, config.size, config.resize, structures, loading)
    val_data = cache_cases(dataset, val_cases, config.size, config.resize, structures)
    config = defaults.resolve_config(config, train_data, device, reasons)
    config.check_structures(structures)
    seed_everything(config.seed, config.deterministic)
    torch.set_float32_matmul_precision("high")

    mode = str(config.mode)
    num_classes = len(structures) + (1 if mode == "softmax" else 0)
    from cxrseg.losses import SegmentationLoss
    from cxrseg.models import count_parameters, create_model

    core = create_model(config.model, in_channels=1, num_classes=num_classes, **config.model_kwargs)
    if init is not None and not resume:
        from cxrseg.catalogue import resolve

        load_init(core, resolve(init), structures, mode)
    core.to(device)
    if config.channels_last:
        core.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model: nn.Module = core
    if dist.enabled:
        ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(core, device_ids=ids)
    if config.compile:
        model = torch.compile(model)  # type: ignore[assignment]

    batch_size = int(config.batch_size or 1)
    sampler = EpochSampler(len(train_data), dist.rank, dist.world_size, True, config.seed)
    steps_per_epoch = math.ceil(len(sampler) / batch_size)
    optimizer = build_optimizer(core, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    amp_dtype, reasons["precision"] = defaults.pick_precision(config, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    stopper = EarlyStopping(config.patience, config.min_delta)
    loss_fn = SegmentationLoss(mode=mode, kind=config.loss, class_weights=config.class_weights)
    loss_fn.to(device)
    settings = StepSettings(device, mode, config.normalization, config.channels_last, amp_dtype,
                            config.grad_clip or None)  # fmt: skip

    history: list[dict[str, Any]] = []
    start_epoch, elapsed = 0, 0.0
    if resume:
        last = last_dir(out)
        assert last is not None
        state = restore(last, core, optimizer, scheduler, scaler, stopper, identity, device)
        start_epoch, history, elapsed = state["epoch"], state["history"], state["elapsed_s"]

    pipeline = build_pipeline(config.augmentation, config.seed)
    on_device = pipeline is not None and augment_on_device(config.augment_on, device)
    train_set = SegmentationDataset(train_data, None if on_device else pipeline)
    workers = int(config.workers or 0)
    loader = DataLoader(
        train_set,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch_generator(config.seed, "shuffle"),
    )
    val_loader = DataLoader(
        SegmentationDataset(val_data),
        batch_size=batch_size,
        sampler=list(range(dist.rank, len(val_data), dist.world_size)),
        num_workers=min(workers, 2),
    )
    if dist.is_main:
        config.to_yaml(out / "config.yaml")
    run_log = _RunLog(out / "train.log" if dist.is_main else None)
    columns = metric_columns(structures)
    emit(
        {
            "event": "start",
            "run_dir": str(out),
            "config": config.to_dict(),
            "reasons": reasons,
            "device": str(device),
            "precision": precision_name(amp_dtype),
            "world_size": dist.world_size,
            "structures": structures,
            "cases": {"train": len(train_cases), "val": len(val_cases), "test": len(test_cases)},
            "parameters": count_parameters(core),
            "augment_on": "device" if on_device else ("cpu" if pipeline else "none"),
            "start_epoch": start_epoch,
            "steps_per_epoch": steps_per_epoch,
        }
    )
    run_log.write(f"start: epoch {start_epoch + 1}/{config.epochs} on {device}, {reasons}")

    base_meta = {
        "labels": structures,
        "mode": mode,
        "input_size": config.size,
        "resize": config.resize,
        "normalization": config.normalization,
        "in_channels": 1,
        "config": config.to_dict(),
        "dataset": {
            "fingerprint": identity["fingerprint"],
            "train": len(train_cases),
            "val": len(val_cases),
            "test": len(test_cases),
        },  # fmt: skip
    }
    stopped, epoch = "completed", start_epoch
    if stopper.should_stop:
        stopped = "early_stopping"
    for epoch in range(start_epoch + 1, config.epochs + 1) if stopped == "completed" else ():
        sampler.set_epoch(epoch)
        augment = device_augment(pipeline, structures, epoch) if on_device else None
        try:
            stats = train_one_epoch(model, loader, optimizer, scheduler, loss_fn, settings,
                                    epoch=epoch, dist=dist, augment=augment, scaler=scaler,
                                    on_event=emit)  # fmt: skip
        except TrainingStopped as exc:
            run_log.write(f"stopped: {exc}")
            raise TrainingStopped(with_what_was_kept(str(exc), epoch - 1)) from exc
        except torch.cuda.OutOfMemoryError as exc:
            run_log.write(f"stopped: out of memory at epoch {epoch}")
            raise TrainingStopped(
                f"the GPU ran out of memory at epoch {epoch} with batch size {batch_size} "
                f"({exc}). Fix: halve the batch, --batch-size {max(1, batch_size // 2)}, or "
                "lower --size."
            ) from exc
        result = evaluate(model, val_loader, loss_fn, settings, dist=dist,
                          num_structures=len(structures))  # fmt: skip
        improved = stopper.update(result.mean_dice, epoch)
        elapsed += stats.seconds
        row = {
            "epoch": epoch,
            "train_loss": stats.loss,
            "val_loss": result.loss,
            **{f"val_dice_{s}": float(d) for s, d in zip(structures, result.dice, strict=True)},
            "val_dice_mean": result.mean_dice,
            "lr": stats.lrs[0] if stats.lrs else math.nan,
            "epoch_s": stats.seconds,
            "elapsed_s": elapsed,
        }
        history.append(row)
        if dist.is_main:
            meta = {**base_meta, "epoch": epoch, "metrics": row}
            if improved:
                save_best(out, core, meta)
            extra = {"history": history, "early_stopping": stopper.state_dict(),
                     "elapsed_s": elapsed, "dataset": identity,
                     "scaler": scaler.state_dict() if scaler else None}  # fmt: skip
            save_last(out, core, meta, optimizer, scheduler, epoch, extra)
            write_metrics_csv(out / "metrics.csv", history, columns)
            plot_curves(out / "curves.png", history, structures, title=out.name)
        barrier(dist)
        run_log.write(json.dumps(row))
        emit({"event": "epoch", **row, "epochs": config.epochs, "best": improved,
              "best_epoch": stopper.best_epoch, "data_s": stats.data_seconds})  # fmt: skip
        if epoch < config.epochs and stopper.should_stop:
            stopped = "early_stopping"
            break
        if epoch < config.epochs and stop_after_epoch is not None and epoch >= stop_after_epoch:
            stopped = "paused"
            break

    post = None
    if stopped != "paused" and dist.is_main:
        post = _choose_postprocessing(out, val_data, loss_fn, settings, emit)
    barrier(dist)
    best = next((r for r in history if r["epoch"] == stopper.best_epoch), {})
    result_obj = TrainResult(
        run_dir=out,
        config=config,
        stopped=stopped,
        epoch=epoch,
        best_epoch=stopper.best_epoch,
        best_dice={s: float(best.get(f"val_dice_{s}", math.nan)) for s in structures},
        history=history,
        postprocessing=post,
    )
    run_log.write(f"end: {stopped} at epoch {epoch}, best epoch {stopper.best_epoch}")
    emit({"event": "end", "stopped": stopped, "epoch": epoch, "best_epoch": stopper.best_epoch,
          "best_dice": result_obj.best_dice, "postprocessing": post})  # fmt: skip
    return result_obj


def _choose_postprocessing(
    out: Path, val: CachedCases, loss_fn: nn.Module, settings: StepSettings, emit: EventCallback
) -> dict[str, Any] | None:
    """Pick post-processing with the best model on the validation set; store it in ``best/``."""
    from cxrseg.postprocess import choose_postprocessing

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
    emit({"event": "postprocess", "postprocessing": post, "report": report})
    return post


class _RunLog:
    """Appends timestamped lines to ``train.log`` (nothing when ``path`` is ``None``)."""

    def __init__(self, path: Path | None):
        self.path = path

    def write(self, line: str) -> None:
        if self.path is None:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(f"{stamp} {line}\n")
        except OSError as exc:  # a full disk says so like every other write
            raise write_error(exc, self.path.parent) from exc
