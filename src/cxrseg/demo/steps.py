"""The five steps of the demo; each returns the line that ``cxrseg demo`` prints for it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from cxrseg.augment.pipeline import Pipeline
from cxrseg.augment_offline import augment_dataset
from cxrseg.data import Case, discover, make_splits
from cxrseg.demo.settings import SEED_DISTORTIONS, DemoSettings
from cxrseg.errors import InputError
from cxrseg.evaluation import evaluate
from cxrseg.inference import Predictor, predict_paths
from cxrseg.io import write_json
from cxrseg.phantom import write_phantom_dataset
from cxrseg.training import TrainConfig, train

__all__ = ["STAGES"]

Progress = Callable[[int, int], None]


def _link_tree(source: Path, target: Path, folders: Sequence[str]) -> None:
    """Hard-link (copy where links fail) the files of ``source/<folder>`` into ``target``."""
    for folder in folders:
        (target / folder).mkdir(parents=True, exist_ok=True)
        for path in sorted((source / folder).iterdir()):
            if path.is_file() and not path.name.startswith("."):
                try:
                    os.link(path, target / folder / path.name)
                except OSError:
                    shutil.copy2(path, target / folder / path.name)


def _select(dataset: Any, structures: Sequence[str], ids: Sequence[str] | None = None) -> Any:
    """The dataset with only ``structures`` (and only the cases ``ids``, when given)."""
    cases = dataset.cases if ids is None else [dataset.case(i) for i in ids]
    cases = [Case(c.case_id, c.image, {s: c.masks[s] for s in structures}) for c in cases]
    return replace(dataset, cases=cases, structures=list(structures))


# --- the steps ------------------------------------------------------------------------------


def _phantoms(out: Path, settings: DemoSettings, state: dict[str, Any], progress: Progress) -> str:
    total = settings.phantoms + settings.test_phantoms

    def both(done: int, _total: int, offset: int = 0) -> None:
        progress(offset + done, total)

    write_phantom_dataset(
        out / "phantoms", settings.phantoms, size=settings.size, seed=settings.seed, progress=both
    )
    write_phantom_dataset(
        out / "test-phantoms",
        settings.test_phantoms,
        size=settings.size,
        seed=settings.seed + 1,
        progress=lambda d, t: both(d, t, settings.phantoms),
    )
    return (
        f"{settings.phantoms} phantoms for training and validation, "
        f"{settings.test_phantoms} held-out test phantoms, {settings.size} px"
    )


def _augment(out: Path, settings: DemoSettings, state: dict[str, Any], progress: Progress) -> str:
    dataset = discover(out / "phantoms")
    splits = make_splits(dataset.case_ids, settings.seed, settings.val_fraction)
    training = _select(dataset, settings.structures, splits.train)
    scale = settings.size / SEED_DISTORTIONS["at_size"]
    grid = int(SEED_DISTORTIONS["grid"])
    pipeline = Pipeline(seed=settings.seed)
    pipeline.random_distortion(
        1.0, grid, grid, max(1, round(SEED_DISTORTIONS["random_magnitude"] * scale))
    )
    pipeline.gaussian_distortion(
        1.0, grid, grid, SEED_DISTORTIONS["gaussian_magnitude"] * scale, "bell", "in"
    )
    summary = augment_dataset(
        training,
        out / "augmented",
        settings.augmented,
        pipeline=pipeline,
        size=settings.size,
        progress=progress,
    )
    state["splits"] = splits
    return (
        f"{summary.total} distorted samples of the {len(splits.train)} training phantoms "
        f"(random + Gaussian mesh distortion); {len(splits.val)} validation phantoms untouched"
    )


def _train(out: Path, settings: DemoSettings, state: dict[str, Any], progress: Progress) -> str:
    folders = ["images", *(f"masks/{name}" for name in settings.structures)]
    data = out / "training-set"
    _link_tree(out / "phantoms", data, folders)
    _link_tree(out / "augmented", data, folders)
    augmented = discover(out / "augmented").case_ids
    base = state["splits"]
    config = _training_config(settings, state["device"])
    train_ids = [*base.train, *augmented]  # augmented samples train, never validate
    splits = replace(base, train=train_ids, folds=[(train_ids, list(base.val))])
    write_json(data / "splits.json", splits.to_dict(), indent=1)

    def on_event(event: Mapping[str, Any]) -> None:
        if event["event"] == "start":
            state["train_start"] = event
            progress(0, settings.epochs)
        elif event["event"] == "epoch":
            progress(int(event["epoch"]), settings.epochs)
            state["emit"](event)

    result = train(data, out / "run", config, splits=data / "splits.json", on_event=on_event)
    start = state.get("train_start", {})
    dice = ", ".join(f"{name} {value:.3f}" for name, value in result.best_dice.items())
    return (
        f"{len(train_ids)} training images ({len(augmented)} augmented), {len(base.val)} "
        f"validation; {start.get('config', {}).get('mode', '?')} U-Net, "
        f"{start.get('parameters', 0):,} parameters, {result.epoch} epochs on "
        f"{start.get('device', '?')}; best epoch {result.best_epoch}, validation Dice {dice}"
    )


def _training_config(settings: DemoSettings, device: str) -> TrainConfig:
    """A short fixed run: no early stopping, no test split, augmentation done offline."""
    return TrainConfig.from_dict(
        {
            "size": settings.size,
            "model": settings.model,
            "model_kwargs": dict(settings.model_kwargs),
            "loss": "dice_ce",
            "epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "lr": settings.lr,
            "val_fraction": settings.val_fraction,
            "test_fraction": 0.0,
            "patience": 0,
            "schedule": "cosine",  # the demo's short fixed run decays over exactly its epochs
            "augmentation": {},  # the distortions were done offline, in step 2
            "seed": settings.seed,
            "device": device,
            "workers": 0,
        }
    )


def _predict(out: Path, settings: DemoSettings, state: dict[str, Any], progress: Progress) -> str:
    predictor = Predictor.from_checkpoint(out / "run", device=state["device"])
    summary = predict_paths(
        predictor,
        [out / "test-phantoms" / "images"],
        out / "predictions",
        overlays=True,
        progress=progress,
    )
    if summary.failed:
        raise InputError(
            f"{len(summary.failed)} test phantoms could not be predicted: {summary.failed[:3]}",
            path=out / "test-phantoms",
        )
    chosen = predictor.postprocessing.items()
    steps = ", ".join(f"{name}: {_describe(cfg)}" for name, cfg in chosen) or "none"
    return f"{len(summary.written)} held-out phantoms; post-processing: {steps}"


def _describe(config: Any) -> str:
    """The active options of a PostprocessConfig, e.g. ``keep_components=2 fill_holes=True``."""
    values = {k: v for k, v in config.to_dict().items() if v}
    return " ".join(f"{k}={v}" for k, v in values.items()) or "none"


def _evaluate(out: Path, settings: DemoSettings, state: dict[str, Any], progress: Progress) -> str:
    references = _select(discover(out / "test-phantoms"), settings.structures)
    result = evaluate(out / "predictions", references, out / "evaluation", progress=progress)
    state["dice"] = {
        name: float(result.summary[name]["dice"]["mean"]) for name in result.structures
    }
    state["report"] = result.report_path
    state["summary"] = result.out / "summary.json"
    mean = sum(state["dice"].values()) / len(state["dice"])
    return f"{len(result.cases)} cases, mean Dice {mean:.3f}"


#: Step name -> its function ``(out, settings, state, progress) -> message``.
STAGES = {"phantoms": _phantoms, "augment": _augment, "train": _train, "predict": _predict,
          "evaluate": _evaluate}  # fmt: skip
