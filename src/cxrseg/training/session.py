"""The prepare phase of a training run: cases, splits, model, optimisation, loaders, resume.

:func:`load_data` finds, splits and caches the cases and resolves the options picked from
them; :func:`prepare` builds everything the epochs need into a :class:`Session` (restoring
``last/`` on ``--resume``) and announces the run. :mod:`cxrseg.training.run` trains its epochs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from cxrseg.catalogue import resolve
from cxrseg.data import Dataset, adopt_splits, discover, load_or_create_splits
from cxrseg.errors import InputError
from cxrseg.io import parse_json, write_error
from cxrseg.losses import SegmentationLoss
from cxrseg.models import count_parameters, create_model
from cxrseg.training import defaults
from cxrseg.training.config import TrainConfig
from cxrseg.training.dataset import (
    CachedCases,
    EpochSampler,
    SegmentationDataset,
    augment_on_device,
    build_pipeline,
    cache_cases,
)
from cxrseg.training.distributed import DistInfo, barrier
from cxrseg.training.duration import format_seconds
from cxrseg.training.events import EventCallback, TrainEvent
from cxrseg.training.loop import StepSettings, build_optimizer
from cxrseg.training.precision import precision_name
from cxrseg.training.quality_ranges import learn_quality_ranges
from cxrseg.training.resume import data_identity, last_dir, load_init, restore
from cxrseg.training.schedule import EarlyStopping, StopRule, build_scheduler
from cxrseg.training.seeding import seed_everything, torch_generator

__all__ = ["RunData", "RunLog", "Session", "load_data", "prepare"]


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
        saved = parse_json(path.read_text(encoding="utf-8"))
        recorded = {key: saved[key] for key in options}
        folds = saved.get("k")
    except (OSError, ValueError, KeyError, TypeError):
        return options  # none yet, or unreadable: load_or_create_splits says what is wrong
    return {**recorded, "folds": folds} if folds else recorded


def _split(
    dataset: Any, out: Path, config: TrainConfig, given: str | Path | None, dist: DistInfo
) -> tuple[list[Any], list[Any], list[Any]]:
    """Train/val/test cases from the run's ``splits.json`` (made once, by rank 0)."""
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


@dataclass
class RunData:
    """The cases of a run, cached at the training size, and the config they resolved."""

    config: TrainConfig
    structures: list[str]
    identity: dict[str, Any]
    train: CachedCases
    val: CachedCases
    counts: dict[str, int]
    reasons: dict[str, str]
    quality: dict[str, Any] | None = None


@dataclass
class Session:
    """Everything the epochs of a run need, built by :func:`_prepare`."""

    out: Path
    data: RunData
    config: TrainConfig
    dist: DistInfo
    emit: EventCallback
    core: nn.Module
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    loss_fn: nn.Module
    settings: StepSettings
    sampler: EpochSampler
    loader: DataLoader
    val_loader: DataLoader
    pipeline: Any
    on_device: bool
    stopper: EarlyStopping
    rule: StopRule
    run_log: RunLog
    base_meta: dict[str, Any]
    steps_per_epoch: int
    clock: float
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0
    elapsed: float = 0.0
    wall_before: float = 0.0

    def wall(self) -> float:
        """Wall time of the run so far, earlier sessions of a resumed run included."""
        return self.wall_before + time.monotonic() - self.clock


def check_training_data(dataset: Dataset, data: str | Path, out: Path) -> None:
    """Refuse a dataset with no complete pair, or a run folder inside the dataset.

    Raises:
        InputError: Naming the folder and the fix.
    """
    if dataset.contains(out):
        raise InputError(
            "the run folder is inside the dataset; the checkpoints and logs would be written "
            "among the inputs, which cxrseg never writes into.",
            path=out,
            hint="choose --out outside the dataset folder, e.g. a folder next to it.",
        )
    if not dataset.cases:
        raise InputError("no complete image/mask pairs found.", path=data,
                         hint="run `cxrseg inspect` on the folder to see why.")  # fmt: skip


def load_data(
    data: str | Path,
    out: Path,
    config: TrainConfig,
    device: torch.device,
    dist: DistInfo,
    splits_file: str | Path | None,
    emit: EventCallback,
) -> RunData:
    """Find and split the cases, pick the size, cache them, resolve the data-driven options."""
    dataset = discover(data)
    check_training_data(dataset, data, out)
    train_cases, val_cases, test_cases = _split(dataset, out, config, splits_file, dist)
    structures = list(dataset.structures)
    reasons: dict[str, str] = {}
    if config.size is None:
        size, reasons["size"] = defaults.pick_size(train_cases)
        config = config.replace(size=size)
    assert config.size is not None

    def loading(done: int, total: int) -> None:
        emit(TrainEvent("loading", {"done": done, "total": total}))

    train_data = cache_cases(dataset, train_cases, config.size, config.resize, structures, loading)
    _refuse_empty_structures(train_data, data)
    val_data = cache_cases(dataset, val_cases, config.size, config.resize, structures)
    config = defaults.resolve_config(config, train_data, device, reasons)
    config.check_structures(structures)
    counts = {"train": len(train_cases), "val": len(val_cases), "test": len(test_cases)}
    # plausible ranges for the quality flags of every prediction (cxrseg.quality)
    quality = (
        learn_quality_ranges(dataset, [c.case_id for c in train_cases]) if dist.is_main else None
    )
    return RunData(
        config, structures, data_identity(dataset), train_data, val_data, counts, reasons, quality
    )


def _refuse_empty_structures(cached: CachedCases, data: str | Path) -> None:
    """Refuse a structure whose masks are empty in every training case: nothing to learn.

    Raises:
        InputError: Naming the structures and the number of training cases.
    """
    empty = [name for k, name in enumerate(cached.structures) if not cached.masks[:, k].any()]
    if empty:
        raise InputError(
            f"the masks of {', '.join(empty)} are empty (all background) in every one of the "
            f"{len(cached.case_ids)} training case(s), so the model would learn to find nothing",
            path=data,
            hint="check the masks and their values (0 background, 255 or 1 foreground): "
            "`cxrseg inspect` lists every empty mask; or remove that structure's masks",
        )


def prepare(
    data: RunData,
    out: Path,
    device: torch.device,
    dist: DistInfo,
    emit: EventCallback,
    resume: bool,
    init: str | Path | None,
    clock: float,
) -> Session:
    """Model, optimisation, loaders and stop rule; restored from ``last/`` on resume."""
    config = data.config
    seed_everything(config.seed, config.deterministic)
    torch.set_float32_matmul_precision("high")
    core, model = _build_model(config, data.structures, device, dist, init, resume)
    batch_size = int(config.batch_size or 1)
    sampler = EpochSampler(len(data.train), dist.rank, dist.world_size, True, config.seed)
    steps_per_epoch = math.ceil(len(sampler) / batch_size)
    if config.patience is None:
        patience, data.reasons["patience"] = defaults.pick_patience(steps_per_epoch)
        config = config.replace(patience=patience)
    optimizer = build_optimizer(core, config)
    amp_dtype, data.reasons["precision"] = defaults.pick_precision(config, device)
    mode = str(config.mode)
    loss_fn = SegmentationLoss(mode=mode, kind=config.loss, class_weights=config.class_weights)
    pipeline = build_pipeline(config.augmentation, config.seed)
    session = Session(
        out=out, data=data, config=config, dist=dist, emit=emit, core=core, model=model,
        optimizer=optimizer, scheduler=build_scheduler(optimizer, config, steps_per_epoch),
        scaler=torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None,
        loss_fn=loss_fn.to(device),
        settings=StepSettings(device, mode, config.normalization, config.channels_last,
                              amp_dtype, config.grad_clip or None),
        sampler=sampler, pipeline=pipeline,
        on_device=pipeline is not None and augment_on_device(config.augment_on, device),
        loader=None, val_loader=None,  # type: ignore[arg-type]
        stopper=EarlyStopping(int(config.patience or 0), config.min_delta),
        rule=StopRule(config.epochs, int(config.patience or 0), config.min_delta,
                      anneal=config.schedule == "plateau", budget_s=_budget_seconds(config)),
        run_log=RunLog(out / "train.log" if dist.is_main else None),
        base_meta=_base_meta(config, data), steps_per_epoch=steps_per_epoch, clock=clock,
    )  # fmt: skip
    session.loader, session.val_loader = _loaders(session, batch_size, device)
    if resume:
        _restore(session, device)
    _announce(session, device)
    return session


def _build_model(
    config: TrainConfig,
    structures: list[str],
    device: torch.device,
    dist: DistInfo,
    init: str | Path | None,
    resume: bool,
) -> tuple[nn.Module, nn.Module]:
    """The network (``core``, whose weights are saved) and what trains it (DDP, compiled)."""
    mode = str(config.mode)
    num_classes = len(structures) + (1 if mode == "softmax" else 0)
    core = create_model(config.model, in_channels=1, num_classes=num_classes, **config.model_kwargs)
    if init is not None and not resume:
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
    return core, model


def _loaders(session: Session, batch_size: int, device: torch.device) -> tuple[Any, Any]:
    config, dist = session.config, session.dist
    train_set = SegmentationDataset(session.data.train, None if session.on_device else
                                    session.pipeline)  # fmt: skip
    workers = int(config.workers or 0)
    loader = DataLoader(
        train_set,
        batch_size=batch_size,
        sampler=session.sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch_generator(config.seed, "shuffle"),
    )
    val_loader = DataLoader(
        SegmentationDataset(session.data.val),
        batch_size=batch_size,
        sampler=list(range(dist.rank, len(session.data.val), dist.world_size)),
        num_workers=min(workers, 2),
    )
    return loader, val_loader


def _restore(session: Session, device: torch.device) -> None:
    last = last_dir(session.out)
    assert last is not None
    state = restore(last, session.core, session.optimizer, session.scheduler, session.scaler,
                    session.stopper, session.data.identity, device)  # fmt: skip
    session.start_epoch, session.history = state["epoch"], state["history"]
    session.elapsed = state["elapsed_s"]
    session.wall_before = float(state.get("wall_s") or state["elapsed_s"])
    if state.get("stop_rule"):
        session.rule.load_state_dict(state["stop_rule"])


def _base_meta(config: TrainConfig, data: RunData) -> dict[str, Any]:
    """What every checkpoint of the run records besides its epoch and metrics."""
    return {
        "labels": data.structures,
        "mode": str(config.mode),
        "input_size": config.size,
        "resize": config.resize,
        "normalization": config.normalization,
        "in_channels": 1,
        "config": config.to_dict(),
        "dataset": {"fingerprint": data.identity["fingerprint"], **data.counts},
        "quality": data.quality,
    }


def _announce(session: Session, device: torch.device) -> None:
    """Write config.yaml, emit the start event, log the start line."""
    config, data = session.config, session.data
    if session.dist.is_main:
        config.to_yaml(session.out / "config.yaml")
    augment_on = "device" if session.on_device else ("cpu" if session.pipeline else "none")
    session.emit(TrainEvent("start", {"run_dir": str(session.out), "config": config.to_dict(),
                  "reasons": data.reasons, "device": str(device),
                  "precision": precision_name(session.settings.amp_dtype),
                  "world_size": session.dist.world_size, "structures": data.structures,
                  "cases": data.counts, "parameters": count_parameters(session.core),
                  "augment_on": augment_on, "start_epoch": session.start_epoch,
                  "steps_per_epoch": session.steps_per_epoch}))  # fmt: skip
    budget_s = _budget_seconds(config)
    budget = f", time budget {format_seconds(budget_s)}" if budget_s else ""
    session.run_log.write(f"start: epoch {session.start_epoch + 1} of at most {config.epochs} "
                          f"on {device}{budget}, {data.reasons}")  # fmt: skip


class RunLog:
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


def _budget_seconds(config: TrainConfig) -> float | None:
    """The checked config's time budget in seconds (``check()`` has read text such as 20m)."""
    return None if config.time_budget is None else float(config.time_budget)
