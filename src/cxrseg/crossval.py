"""Cross-validation: K folds, each a normal run folder, out-of-fold predictions, one summary.

:func:`train_folds` is what ``cxrseg train DATA --out RUN --folds K`` calls. ``RUN`` holds::

    config.yaml     the options every fold trains with (each fold resolves its own defaults)
    splits.json     the K folds (seeded, or from --folds-file) and any held-out test ids
    splits/         fold_<k>.json: the train/val split each fold run is started with
    fold_<k>/       a normal, resumable run folder: trains on the other folds, validates on
                    this one; fold.json once its out-of-fold predictions are written, and
                    oof/ = its validation cases predicted by its best model, unprocessed
    oof/            every case's out-of-fold prediction with the post-processing chosen once,
                    on all of them (masks/<structure>/<id>.png, the layout of cxrseg predict)
    evaluation/     cases.csv, summary.json and report.html of oof/ (cxrseg evaluate's files)
    crossval.json   folds, post-processing, summary; ``cxrseg predict RUN`` averages the folds

Rerunning the same command continues: finished folds are skipped and an interrupted one
resumes from its last epoch. Under torchrun every process trains every fold (each fold is a
distributed run, as ``cxrseg train`` is); only the main process writes the files.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cxrseg.data import (
    Dataset,
    Splits,
    discover,
    load_case,
    load_or_create_splits,
    make_splits,
    read_fold_file,
)
from cxrseg.errors import InputError
from cxrseg.evaluation import evaluate
from cxrseg.inference import Predictor, predict_paths
from cxrseg.inference.ensemble import CROSSVAL_FILE, CROSSVAL_FORMAT
from cxrseg.io import parse_json, read_mask, write_json, write_mask
from cxrseg.postprocess import choose_postprocessing, postprocess_mask
from cxrseg.training.config import TrainConfig, config_diff
from cxrseg.training.defaults import pick_device
from cxrseg.training.distributed import DistInfo, barrier, distributed_context
from cxrseg.training.events import EventCallback, TrainEvent, ignore
from cxrseg.training.quality_ranges import learn_quality_ranges
from cxrseg.training.resume import last_dir
from cxrseg.training.run import train
from cxrseg.training.session import check_training_data

__all__ = ["CrossvalResult", "train_folds"]

logger = logging.getLogger(__name__)

FOLD_RECORD = "fold.json"


@dataclass
class CrossvalResult:
    """A finished cross-validation.

    Attributes:
        run_dir: The cross-validation folder.
        record: What ``crossval.json`` holds: ``k``, ``folds``, ``fold_results``,
            ``postprocessing``, ``summary`` (``{structure: {metric: {"mean", "std", ...}}}``
            over all out-of-fold cases) and ``fold_dice`` (each fold's mean Dice).
    """

    run_dir: Path
    record: dict[str, Any]


def train_folds(
    data: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    folds: int | None = None,
    folds_file: str | Path | None = None,
    test_fraction: float = 0.0,
    overrides: dict[str, Any] | None = None,
    on_event: EventCallback | None = None,
) -> CrossvalResult:
    """Train K folds into ``out`` (or continue them), then summarise them as one ensemble.

    Args:
        data: Dataset folder.
        out: Cross-validation folder: new, empty, or one this function started.
        config: Options of every fold; ``None`` uses the defaults (or the saved ones).
        folds: Number of seeded folds (>= 2); with ``folds_file`` it must match the file.
        folds_file: A fold file (see :mod:`cxrseg.data.folds`) instead of seeded folds.
        test_fraction: Share of cases held out of every fold (seeded folds only).
        overrides: Options applied on top of ``config``.
        on_event: Receives the events of each fold's :func:`~cxrseg.training.train` and
            a ``fold`` :class:`~cxrseg.training.events.TrainEvent` (``fold``, ``k``, ``status``:
            ``start``, ``resume``, ``done``).

    Raises:
        InputError: Bad data, folds, folder, or options that differ from the saved ones.
    """
    out = Path(out)
    dataset = discover(data)
    check_training_data(dataset, data, out)
    config = _cv_config(out, config, overrides or {})
    splits = _cv_splits(out, dataset, config.seed, folds, folds_file, test_fraction)
    device = pick_device(config.device)
    with distributed_context(device.type) as dist:  # one process group for every fold
        emit = on_event if on_event is not None and dist.is_main else ignore
        barrier(dist)  # every process has read the folder before the main one writes
        if dist.is_main:
            _save_plan(out, config, splits)
        for fold in range(len(splits.folds)):
            _train_fold(data, out, fold, dataset, splits, config, dist, emit, on_event)
        record = _summarise(out, dataset, splits) if dist.is_main else {}
        barrier(dist)
    emit(TrainEvent("crossval", {**record}))
    return CrossvalResult(out, record)


def _train_fold(data: str | Path, out: Path, fold: int, dataset: Dataset, splits: Splits,
                config: TrainConfig, dist: DistInfo, emit: EventCallback,
                on_event: EventCallback | None) -> None:  # fmt: skip
    """Train one fold (or resume it, or skip it when done) and predict its validation cases."""
    k, run = len(splits.folds), out / f"fold_{fold}"
    if (run / FOLD_RECORD).is_file():
        emit(TrainEvent("fold", {"fold": fold, "k": k, "status": "done"}))
        return
    resume = last_dir(run) is not None
    if not resume and dist.is_main and run.exists():
        shutil.rmtree(run)  # a fold stopped before its first epoch: start it again
    barrier(dist)
    emit(TrainEvent("fold", {"fold": fold, "k": k, "status": "resume" if resume else "start"}))
    given = out / "splits" / f"fold_{fold}.json"
    result = train(data, run, config, resume=resume, splits=given, on_event=on_event)
    if dist.is_main:
        train_ids, val_ids = splits.folds[fold]
        _predict_oof(run, dataset, val_ids, config)
        write_json(run / FOLD_RECORD, {
            "fold": fold, "n_train": len(train_ids), "n_val": len(val_ids), "val": val_ids,
            "stopped": result.stopped, "epoch": result.epoch,
            "best_epoch": result.best_epoch, "best_dice": result.best_dice,
        }, indent=1)  # fmt: skip
    barrier(dist)


# --- the plan: options and folds, saved once ------------------------------------------------


def _cv_config(out: Path, config: TrainConfig | None, overrides: dict[str, Any]) -> TrainConfig:
    """The options of every fold: given now, or (on a rerun) the saved ones, which must agree."""
    saved_path = out / "config.yaml"
    if not saved_path.is_file():
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise InputError(
                "the folder exists and is not a cross-validation folder; nothing was changed.",
                path=out,
                hint="choose a new --out folder (a rerun continues a cross-validation folder).",
            )
        return (config or TrainConfig()).replace(**overrides)
    saved = TrainConfig.from_yaml(saved_path)
    requested = (config or saved).replace(**overrides)
    diff = config_diff(saved.identity(), requested.identity())
    if diff:
        raise InputError(
            "the cross-validation was started with other options: " + "; ".join(diff) + ".",
            path=out,
            hint="rerun with the original options (or none), or choose a new --out folder.",
        )
    return requested


def _cv_splits(
    out: Path,
    dataset: Dataset,
    seed: int,
    folds: int | None,
    folds_file: str | Path | None,
    test_fraction: float,
) -> Splits:
    """The folds: made (or read from ``folds_file``) once, saved in ``splits.json``, reused."""
    ids = dataset.case_ids
    path = out / "splits.json"
    given = read_fold_file(folds_file, ids, seed) if folds_file is not None else None
    if given is not None and folds is not None and folds != len(given.folds):
        raise InputError(f"--folds {folds} but the fold file lists {len(given.folds)} folds.",
                         path=folds_file, hint="drop --folds, or fix the file.")  # fmt: skip
    if path.is_file():
        saved = _saved_splits(path, ids)
    elif given is not None:
        saved = given
    elif folds is None:
        raise InputError("give the number of folds (--folds K) or a fold file (--folds-file).",
                         path=out)  # fmt: skip
    else:
        try:
            saved = make_splits(ids, seed, 0.0, test_fraction, folds)
        except ValueError as exc:
            raise InputError(
                f"cannot make {folds} folds: {exc}",
                path=dataset.root,
                hint="lower --folds or --test-fraction, or add cases.",
            ) from exc
    if given is not None and saved.folds != given.folds:
        raise InputError(
            "the fold file differs from the folds this folder was started with.",
            path=folds_file,
            hint="rerun with the original folds, or choose a new --out folder.",
        )
    if folds is not None and saved.k != folds:
        raise InputError(
            f"this folder holds a {saved.k}-fold cross-validation, not {folds}.",
            path=out,
            hint=f"rerun with --folds {saved.k}, or choose a new --out folder.",
        )
    return saved


def _save_plan(out: Path, config: TrainConfig, splits: Splits) -> None:
    """Write what is not saved yet: the options, the folds, and each fold's start split."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "config.yaml").is_file():
        config.to_yaml(out / "config.yaml")
    if not (out / "splits.json").is_file():
        write_json(out / "splits.json", splits.to_dict(), indent=1)
    for i, (train_ids, val_ids) in enumerate(splits.folds):
        target = out / "splits" / f"fold_{i}.json"
        one = replace(splits, train=train_ids, val=val_ids, k=None, folds=[(train_ids, val_ids)])
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_json(target, one.to_dict(), indent=1)


def _saved_splits(path: Path, ids: list[str]) -> Splits:
    """The folds saved in ``path``, checked against the dataset's ids."""
    try:
        recorded = parse_json(path.read_text(encoding="utf-8"))
        options = (int(recorded["seed"]), float(recorded["test_fraction"]), int(recorded["k"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the saved folds ({exc}).", path=path,
                         hint="choose a new --out folder.") from exc  # fmt: skip
    seed, test_fraction, k = options
    return load_or_create_splits(path, ids, seed, 0.0, test_fraction, k)


# --- after the folds ------------------------------------------------------------------------


def _predict_oof(run: Path, dataset: Dataset, val_ids: list[str], config: TrainConfig) -> None:
    """The fold's validation cases, predicted by its best model without post-processing."""
    device = config.device if config.device in ("cpu", "cuda") else "auto"
    predictor = Predictor.from_checkpoint(run, device=device, runtime="torch", postprocess=False)
    target = run / "oof"
    if target.exists():
        shutil.rmtree(target)  # a half-written one from an interrupted run
    predict_paths(predictor, [dataset.case(i).image for i in val_ids], target)


def _oof_masks(out: Path, dataset: Dataset, fold: int, case_id: str) -> dict[str, np.ndarray]:
    folder = out / f"fold_{fold}" / "oof" / "masks"
    return {s: (read_mask(folder / s / f"{case_id}.png") > 0).view(np.uint8)
            for s in dataset.structures}  # fmt: skip


def _choose(out: Path, dataset: Dataset, owner: dict[str, int]) -> tuple[dict[str, Any], Any]:
    """Post-processing chosen once on every out-of-fold prediction.

    Masks larger than the network's input are subsampled to about its size, the scale at which
    a single run chooses (on its validation set at the training size); this keeps the memory
    and time of the choice small for large radiographs.
    """
    meta = json.loads((out / "fold_0" / "best" / "model.json").read_text(encoding="utf-8"))
    size = int(meta["input_size"])
    preds, refs = [], []
    for case_id, fold in owner.items():
        pred = _oof_masks(out, dataset, fold, case_id)
        _, ref = load_case(dataset.case(case_id), dataset)
        step = max(1, round(max(next(iter(ref.values())).shape) / size))
        preds.append({s: m[::step, ::step] for s, m in pred.items()})
        refs.append({s: m[::step, ::step] for s, m in ref.items()})
    return choose_postprocessing(preds, refs)


def _summarise(out: Path, dataset: Dataset, splits: Splits) -> dict[str, Any]:
    """Choose the post-processing, write ``oof/`` and ``evaluation/``, then ``crossval.json``."""
    owner = {case_id: k for k, (_, val) in enumerate(splits.folds) for case_id in val}
    chosen, report = _choose(out, dataset, owner)
    for case_id, fold in owner.items():
        for name, mask in _oof_masks(out, dataset, fold, case_id).items():
            done = postprocess_mask(mask, chosen[name]) if name in chosen else mask
            write_mask(out / "oof" / "masks" / name / f"{case_id}.png", done * 255)
    cases = replace(dataset, cases=[dataset.case(i) for i in owner])
    result = evaluate(out / "oof", cases, out / "evaluation")
    by_case = {case.case_id: case for case in result.cases}
    fold_dice = {
        s: [float(np.mean([by_case[i].metrics[s]["dice"] for i in val])) for _, val in splits.folds]
        for s in result.structures
    }
    fold_results = [
        json.loads((out / f"fold_{k}" / FOLD_RECORD).read_text(encoding="utf-8"))
        for k in range(len(splits.folds))
    ]
    record = {
        "format": CROSSVAL_FORMAT, "version": 1, "k": len(splits.folds),
        "folds": [f"fold_{k}" for k in range(len(splits.folds))],
        "structures": result.structures, "n_cases": len(owner), "test": splits.test,
        "postprocessing": {name: cfg.to_dict() for name, cfg in chosen.items()},
        "postprocessing_report": report,
        "summary": result.summary, "fold_dice": fold_dice,
        "fold_results": [{k: v for k, v in r.items() if k != "val"} for r in fold_results],
        "oof": "oof", "evaluation": "evaluation",
        # the quality-flag ranges of the ensemble, from every case its folds trained on (each
        # fold learned its own from its training part, as cxrseg train does)
        "quality": learn_quality_ranges(dataset, list(owner)),
    }  # fmt: skip
    write_json(out / CROSSVAL_FILE, _finite(record), indent=1)
    return record


def _finite(value: Any) -> Any:
    """NaN and infinities as ``None``, so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
