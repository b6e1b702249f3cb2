"""The demo's sizes (:class:`DemoSettings`), what it returns (:class:`DemoResult`) and the names
of its folder."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrseg.errors import InputError
from cxrseg.phantom import STRUCTURES

__all__ = ["DEFAULT_OUT", "DEMO_STRUCTURES", "MARKER", "OUTPUTS", "SEED_DISTORTIONS", "STEPS",
           "DemoResult", "DemoSettings"]  # fmt: skip

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
