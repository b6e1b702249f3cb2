"""The whole pipeline on synthetic radiographs in one call: what ``cxrseg demo`` runs.

:func:`run_demo` chains the public function of every stage and writes, under ``out``::

    phantoms/        training + validation phantoms          cxrseg.phantom.write_phantom_dataset
    test-phantoms/   held-out phantoms (another seed)        cxrseg.phantom.write_phantom_dataset
    augmented/       offline elastic augmentation of the     cxrseg.augment_offline.augment_dataset
                     training phantoms only
    training-set/    phantoms + augmented samples (hard links), and splits.json
    run/             the training run: config.yaml, metrics.csv, curves.png, best/, last/
                                                             cxrseg.training.train
    predictions/     masks of the held-out phantoms, post-processed as chosen on validation
                                                             cxrseg.inference.predict_paths
    evaluation/      cases.csv, summary.json, report.html    cxrseg.evaluation.evaluate
    demo.json        settings, step timings, mean Dice per structure, paths

The validation phantoms are never augmented, and the augmented samples only ever train, so the
validation Dice that picks the best epoch and the post-processing is measured on unseen,
undistorted phantoms; the test phantoms are drawn from another seed and seen only at the end.

Structures: by default both lungs and the heart. They never overlap in the phantoms, so the run
trains one softmax over exclusive classes (the seed project's categorical set-up) and reaches a
mean test Dice above 0.9 in a few CPU minutes. ``structures=STRUCTURES`` adds the two clavicles:
they overlap the lungs, so training switches to sigmoid outputs; at the demo's 128 px they are
a few pixels thick and need far more training than the demo's budget to pass 0.9.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cxrseg.errors import InputError
from cxrseg.io import write_json
from cxrseg.phantom import STRUCTURES

__all__ = ["DEFAULT_OUT", "DEMO_STRUCTURES", "STEPS", "DemoResult", "DemoSettings", "run_demo"]

logger = logging.getLogger(__name__)

EventCallback = Callable[[dict[str, Any]], None]

DEFAULT_OUT = Path("cxrseg-demo")
DEMO_STRUCTURES = ("left_lung", "right_lung", "heart")
STEPS = ("phantoms", "augment", "train", "predict", "evaluate")
MARKER = "demo.json"
#: What a demo writes in its folder: the only names ``overwrite=True`` removes.
OUTPUTS = ("phantoms", "test-phantoms", "augmented", "training-set", "run", "predictions",
           "evaluation", MARKER)  # fmt: skip
#: The seed project's offline augmentation at 512 px: ``random_distortion(1, 5, 5, 8)`` and
#: ``gaussian_distortion(1, 5, 5, 6, "bell", "in")``; magnitudes are scaled to the demo size.
SEED_DISTORTIONS = {"grid": 5, "random_magnitude": 8, "gaussian_magnitude": 6.0, "at_size": 512}


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo; :meth:`full` is the default, :meth:`quick` a seconds-long smoke run.

    Attributes:
        size: Side of the phantoms and of the training, in pixels (a multiple of 32).
        phantoms: Training + validation phantoms.
        val_fraction: Share of ``phantoms`` kept for validation (never augmented).
        augmented: Augmented samples written, cycling over the training phantoms.
        test_phantoms: Held-out phantoms, drawn from ``seed + 1``.
        epochs: Training epochs.
        batch_size: Images per training step.
        lr: Peak learning rate.
        model: Name in the :mod:`cxrseg.models` registry.
        model_kwargs: Its keyword arguments besides channels and classes.
        structures: Structures to segment (of :data:`cxrseg.phantom.STRUCTURES`).
        seed: Seeds phantoms, splits, augmentation and training.
    """

    size: int = 128
    phantoms: int = 48
    val_fraction: float = 0.2
    augmented: int = 38
    test_phantoms: int = 20
    epochs: int = 16
    batch_size: int = 8
    lr: float = 3e-3
    model: str = "unet"
    model_kwargs: dict[str, Any] = field(
        default_factory=lambda: {"depth": 5, "base_channels": 8, "norm": "batch"}
    )
    structures: tuple[str, ...] = DEMO_STRUCTURES
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [s for s in self.structures if s not in STRUCTURES]
        if not self.structures or unknown:
            raise InputError(
                f"structures {list(self.structures)} must be a non-empty selection of "
                f"{', '.join(STRUCTURES)}.",
                hint="e.g. left_lung,right_lung,heart (the default) or all.",
            )
        for name in ("phantoms", "test_phantoms", "augmented", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name}={value!r} must be a whole number >= 1.")
        if self.size % 32 or self.size < 32:
            raise InputError(f"size={self.size} must be a multiple of 32.", hint="use 128.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed={self.seed!r} must be an integer >= 0.", hint="use 0.")

    @classmethod
    def full(cls, **changes: Any) -> DemoSettings:
        """The default demo: about 2-3 minutes on 2 CPU cores."""
        return cls(**changes)

    @classmethod
    def quick(cls, **changes: Any) -> DemoSettings:
        """A smoke run of a few seconds (tests): tiny images, few phantoms, 2 epochs."""
        tiny = {"size": 64, "phantoms": 10, "augmented": 8, "test_phantoms": 4, "epochs": 2,
                "batch_size": 4, "model_kwargs": {"depth": 4, "base_channels": 4}}  # fmt: skip
        return cls(**{**tiny, **changes})


@dataclass
class DemoResult:
    """What :func:`run_demo` did.

    Attributes:
        out: The demo folder.
        settings: The settings it ran with.
        dice: Mean test Dice per structure (after post-processing).
        seconds: Wall time of each step, in :data:`STEPS` order.
        report: The HTML evaluation report.
        summary: ``evaluation/summary.json``.
    """

    out: Path
    settings: DemoSettings
    dice: dict[str, float]
    seconds: dict[str, float]
    report: Path
    summary: Path

    @property
    def mean_dice(self) -> float:
        """Mean of :attr:`dice` over the structures."""
        return float(sum(self.dice.values()) / len(self.dice)) if self.dice else math.nan

    @property
    def total_seconds(self) -> float:
        """Wall time of the whole demo."""
        return float(sum(self.seconds.values()))


def run_demo(
    out: str | Path = DEFAULT_OUT,
    settings: DemoSettings | None = None,
    *,
    overwrite: bool = False,
    device: str = "auto",
    on_event: EventCallback | None = None,
) -> DemoResult:
    """Generate phantoms, augment, train, predict the held-out phantoms, evaluate.

    Args:
        out: Demo folder; must be new or empty, or hold an earlier demo with ``overwrite``.
        settings: Sizes and seed; default :meth:`DemoSettings.full`.
        overwrite: Replace an earlier demo in ``out`` (only the names in :data:`OUTPUTS` are
            removed; other files are left alone).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` for training and prediction.
        on_event: Receives dicts: ``{"event": "step", "step", "index", "steps"}`` when a step
            starts, ``{"event": "progress", "step", "done", "total"}`` during it, the
            training's ``{"event": "epoch", ...}`` (see :func:`cxrseg.training.train`), and
            ``{"event": "done", "step", "seconds", "message"}`` when it ends.

    Returns:
        Mean test Dice per structure, step timings and the report path.

    Raises:
        InputError: ``out`` holds other files, or a stage refused its input.
    """
    settings = settings or DemoSettings.full()
    out = Path(out)
    emit = on_event or (lambda event: None)
    _prepare_folder(out, overwrite)
    write_json(out / MARKER, {"status": "running", "settings": asdict(settings)}, indent=1)
    seconds: dict[str, float] = {}
    stages = {"phantoms": _phantoms, "augment": _augment, "train": _train,
              "predict": _predict, "evaluate": _evaluate}  # fmt: skip
    state: dict[str, Any] = {"device": device, "emit": emit}
    for index, step in enumerate(STEPS, 1):
        emit({"event": "step", "step": step, "index": index, "steps": len(STEPS)})

        def progress(done: int, total: int, step: str = step) -> None:
            emit({"event": "progress", "step": step, "done": done, "total": total})

        start = time.perf_counter()
        message = stages[step](out, settings, state, progress)
        seconds[step] = time.perf_counter() - start
        logger.info("demo %s: %.1f s, %s", step, seconds[step], message)
        emit({"event": "done", "step": step, "seconds": seconds[step], "message": message})
    result = DemoResult(out, settings, state["dice"], seconds, state["report"], state["summary"])
    record = {"dice": result.dice, "mean_dice": result.mean_dice, "seconds": seconds}
    write_json(
        out / MARKER,
        {
            "status": "finished",
            "settings": asdict(settings),
            **record,
            "total_seconds": result.total_seconds,
            "report": str(result.report),
        },
        indent=1,
    )
    return result


# --- the folder ---------------------------------------------------------------------------


def _prepare_folder(out: Path, overwrite: bool) -> None:
    """Refuse a file or a folder with foreign content; clear an earlier demo if asked."""
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a folder.", path=out, hint="choose a folder for --out.")
    if not out.is_dir() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    if not (out / MARKER).is_file():
        raise InputError(
            f"the folder is not empty and holds no earlier demo ({MARKER}); nothing was changed.",
            path=out,
            hint="choose a new or empty folder with --out.",
        )
    if not overwrite:
        raise InputError(
            "the folder holds an earlier demo; nothing was changed.",
            path=out,
            hint="add --overwrite to replace it, or choose another --out.",
        )
    for name in OUTPUTS:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    logger.info("removed the earlier demo in %s", out)


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
    from cxrseg.data import Case

    cases = dataset.cases if ids is None else [dataset.case(i) for i in ids]
    cases = [Case(c.case_id, c.image, {s: c.masks[s] for s in structures}) for c in cases]
    return replace(dataset, cases=cases, structures=list(structures))


# --- the steps ----------------------------------------------------------------------------

Progress = Callable[[int, int], None]


def _phantoms(out: Path, settings: DemoSettings, state: dict[str, Any], progress: Progress) -> str:
    from cxrseg.phantom import write_phantom_dataset

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
    from cxrseg.augment.pipeline import Pipeline
    from cxrseg.augment_offline import augment_dataset
    from cxrseg.data import discover, make_splits

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
    from cxrseg.data import discover
    from cxrseg.training import TrainConfig, train

    folders = ["images", *(f"masks/{name}" for name in settings.structures)]
    data = out / "training-set"
    _link_tree(out / "phantoms", data, folders)
    _link_tree(out / "augmented", data, folders)
    augmented = discover(out / "augmented").case_ids
    base = state["splits"]
    config = TrainConfig(
        size=settings.size,
        model=settings.model,
        model_kwargs=dict(settings.model_kwargs),
        loss="dice_ce",
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        val_fraction=settings.val_fraction,
        test_fraction=0.0,
        patience=0,
        schedule="cosine",  # the demo's short fixed run decays over exactly its epochs
        augmentation={},  # the distortions were done offline, in step 2
        seed=settings.seed,
        device=state["device"],
        workers=0,
    )
    train_ids = [*base.train, *augmented]  # augmented samples train, never validate
    splits = replace(base, train=train_ids, folds=[(train_ids, list(base.val))])
    write_json(data / "splits.json", splits.to_dict(), indent=1)

    def on_event(event: dict[str, Any]) -> None:
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


def _predict(out: Path, settings: DemoSettings, state: dict[str, Any], progress: Progress) -> str:
    from cxrseg.inference import Predictor, predict_paths

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
    from cxrseg.data import discover
    from cxrseg.evaluation import evaluate

    references = _select(discover(out / "test-phantoms"), settings.structures)
    result = evaluate(out / "predictions", references, out / "evaluation", progress=progress)
    state["dice"] = {
        name: float(result.summary[name]["dice"]["mean"]) for name in result.structures
    }
    state["report"] = result.report_path
    state["summary"] = result.out / "summary.json"
    mean = sum(state["dice"].values()) / len(state["dice"])
    return f"{len(result.cases)} cases, mean Dice {mean:.3f}"
