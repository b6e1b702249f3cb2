"""What a run folder keeps so that ``--resume`` can continue it, and the checks on resuming.

- :func:`starting_config`: a new run refuses a non-empty folder; a resumed run starts from the
  saved ``config.yaml`` and refuses options that would change the result, naming them.
- :func:`data_identity` / :func:`data_diff`: the structures and case ids a run was trained on,
  so a resume on another dataset is refused with the difference spelled out.
- :func:`load_init`: fine-tuning starts from a checkpoint whose structures and mode match.
- :func:`save_last` / :func:`restore`: ``last/`` holds the model, optimizer, scheduler, torch
  RNG states, early-stopping state and history, written as a whole (``last.new/`` renamed in),
  so an interrupted and resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cxrseg.errors import InputError
from cxrseg.io.folders import LOCK_NAME
from cxrseg.training.checkpoint import (
    load_checkpoint,
    load_resume_state,
    save_checkpoint,
    save_resume_state,
)
from cxrseg.training.config import TrainConfig, config_diff
from cxrseg.training.loop import EarlyStopping
from cxrseg.training.seeding import get_rng_state, set_rng_state

__all__ = [
    "data_diff",
    "data_identity",
    "last_dir",
    "load_init",
    "recover_swaps",
    "restore",
    "save_best",
    "save_last",
    "starting_config",
    "write_whole",
]


def starting_config(
    out: Path, config: TrainConfig | None, overrides: dict[str, Any], resume: bool
) -> TrainConfig:
    """The config to resolve: given (or default) + overrides; on resume checked against the
    saved one, whose resolved values fill what the given one leaves open."""
    if not resume:
        if out.exists() and (not out.is_dir() or any(p.name != LOCK_NAME for p in out.iterdir())):
            raise InputError(
                "the run folder already exists and is not empty; nothing was overwritten.",
                path=out,
                hint="add --resume to continue that run, or choose a new --out folder.",
            )
        return (config or TrainConfig()).replace(**overrides)
    saved_path = out / "config.yaml"
    if not saved_path.is_file() or last_dir(out) is None:
        raise InputError(
            "--resume needs a run folder with config.yaml and a last/ checkpoint.",
            path=out,
            hint="check --out, or drop --resume to start a new run in an empty folder.",
        )
    saved = TrainConfig.from_yaml(saved_path)
    start = saved
    if config is not None:
        open_fields = {k: v for k, v in saved.to_dict().items() if getattr(config, k) is None}
        start = config.replace(**open_fields)
    start = start.replace(**overrides)
    diff = config_diff(saved.identity(), start.identity())
    if diff:
        raise InputError(
            "--resume: the run was made with another config: " + "; ".join(diff) + ".",
            path=out,
            hint="resume with the original options (or none), or start a new run.",
        )
    return start


def last_dir(out: Path) -> Path | None:
    """``last/``, or ``last.old/`` when a save was cut between its two renames."""
    for name in ("last", "last.old"):
        if (out / name / "resume.json").is_file():
            return out / name
    return None


def data_identity(dataset: Any) -> dict[str, Any]:
    """What a resumed run must find again: the structures and every case id."""
    identity = {"structures": list(dataset.structures), "case_ids": list(dataset.case_ids)}
    text = json.dumps(identity, sort_keys=True)
    return {**identity, "fingerprint": hashlib.sha256(text.encode()).hexdigest()[:16]}


def data_diff(saved: dict[str, Any], current: dict[str, Any]) -> str:
    """Say how two :func:`_data_identity` values differ."""
    parts = []
    if saved.get("structures") != current["structures"]:
        parts.append(f"structures {saved.get('structures')} -> {current['structures']}")
    old, new = set(saved.get("case_ids", [])), set(current["case_ids"])
    for label, ids in (("new", sorted(new - old)), ("missing", sorted(old - new))):
        if ids:
            shown = ", ".join(ids[:5]) + (f" ... ({len(ids)} in all)" if len(ids) > 5 else "")
            parts.append(f"{label} cases: {shown}")
    return "; ".join(parts) or "the case ids differ"


def save_last(
    out: Path,
    model: nn.Module,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    epoch: int,
    extra: dict[str, Any],
) -> None:
    """Write ``last/`` as a whole: into ``last.new/``, then swap it in."""

    def write(folder: Path) -> None:
        save_checkpoint(folder, model, meta)
        save_resume_state(folder, optimizer, scheduler, get_rng_state(), epoch, extra)

    write_whole(out / "last", write)


def save_best(out: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write ``best/`` as a whole, like ``last/``: a failed save leaves the old one intact."""
    write_whole(out / "best", lambda folder: save_checkpoint(folder, model, meta))


def write_whole(target: Path, write: Callable[[Path], object]) -> None:
    """Write a checkpoint folder into ``<target>.new/``, then swap it in for ``target``.

    A write that fails (a full disk) removes ``.new/`` and leaves ``target`` as it was; a
    process killed between the two renames leaves ``<target>.old/``, which
    :func:`recover_swaps` puts back.
    """
    new = target.with_name(target.name + ".new")
    old = target.with_name(target.name + ".old")
    shutil.rmtree(new, ignore_errors=True)
    try:
        write(new)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def recover_swaps(out: Path) -> None:
    """Put back ``best/`` and ``last/`` from a swap that was cut between its renames."""
    for name in ("best", "last"):
        old, target = out / f"{name}.old", out / name
        if old.is_dir() and not target.exists():
            old.rename(target)


def restore(
    last: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    stopper: EarlyStopping,
    data_identity: dict[str, Any],
    device: torch.device,
) -> dict[str, Any]:
    """Load ``last/`` into the objects; refuse a run made on other data."""
    state = load_resume_state(last, optimizer, scheduler, map_location=device)
    extra = state.extra
    saved_data = extra.get("dataset") or {}
    if saved_data.get("fingerprint") != data_identity["fingerprint"]:
        diff = data_diff(saved_data, data_identity)
        raise InputError(
            f"--resume: the run was trained on other data ({diff}).",
            path=last.parent,
            hint="resume with the original dataset folder, or start a new run.",
        )
    saved, _ = load_checkpoint(last, map_location=device)
    model.load_state_dict(saved.state_dict())
    set_rng_state(state.rng_state)
    stopper.load_state_dict(extra["early_stopping"])
    if scaler is not None and extra.get("scaler"):
        scaler.load_state_dict(extra["scaler"])
    return {"epoch": state.epoch, "history": list(extra["history"]),
            "elapsed_s": float(extra["elapsed_s"]), "wall_s": extra.get("wall_s"),
            "stop_rule": extra.get("stop_rule")}  # fmt: skip


def load_init(model: nn.Module, path: Path, structures: list[str], mode: str) -> None:
    """Start from a checkpoint's weights; its labels and mode must match the data's.

    A single unnamed structure (``foreground``: masks with no ``dataset.json``) matches any
    single structure, so a folder of plain lung masks fine-tunes the shipped ``lungs`` model.
    """
    source, meta = load_checkpoint(path)
    labels = list(meta.get("labels", []))
    single = len(labels) == len(structures) == 1 and "foreground" in (*labels, *structures)
    if (labels != structures and not single) or meta.get("mode") != mode:
        raise InputError(
            f"the checkpoint was trained for structures {meta.get('labels')} ({meta.get('mode')})"
            f" but the data has {structures} ({mode}).",
            path=path,
            hint="fine-tune on data with the same structures, or train from scratch.",
        )
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as exc:
        raise InputError(
            f"its model does not match the configured one ({exc}).",
            path=path,
            hint=f"set model/model_kwargs as in the checkpoint: {meta.get('model')}.",
        ) from exc
