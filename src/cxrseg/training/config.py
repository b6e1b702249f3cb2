"""One dataclass holds every training option; it is saved with every run.

:class:`TrainConfig` is what ``cxrseg train --config train.yaml`` reads, what the command-line
options override, and what the run folder (``config.yaml``) and the checkpoints store once the
data-dependent defaults (``size``, ``batch_size``, ``workers``, ``mode``, ``device``) are filled
in. Options left as ``None`` are resolved from the data by :mod:`cxrseg.training.defaults`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cxrseg.errors import InputError

__all__ = ["RUNTIME_FIELDS", "TrainConfig", "config_diff", "default_augmentation"]

#: Options that may change between a run and its ``--resume`` without changing the result
#: (where it runs and how fast), so they are left out of :meth:`TrainConfig.identity`.
RUNTIME_FIELDS = frozenset({"device", "workers", "compile"})

_CHOICES: dict[str, tuple[str, ...]] = {
    "resize": ("squash", "letterbox"),
    "normalization": ("zscore", "unit"),
    "loss": ("dice_ce", "ce", "dice"),
    "optimizer": ("adamw", "sgd"),
    "schedule": ("cosine", "poly", "constant"),
    "augment_on": ("auto", "cpu", "device"),
    "device": ("auto", "cpu", "cuda"),
}


def default_augmentation() -> dict[str, Any]:
    """The default recipe as a :meth:`cxrseg.augment.Pipeline.to_dict` description.

    The seed project's two Augmentor mesh distortions (``random_distortion`` and
    ``gaussian_distortion``, displacements in pixels at the training size), a small rotation
    and zoom, and brightness, contrast and gamma changes. No horizontal flip: left and right
    structures are anatomical, and a flipped radiograph is not a plausible radiograph.
    """
    return {
        "operations": [
            {"op": "random_distortion", "probability": 0.5, "grid_width": 4, "grid_height": 4,
             "magnitude": 4},
            {"op": "gaussian_distortion", "probability": 0.5, "grid_width": 4, "grid_height": 4,
             "magnitude": 3.0, "corner": "bell", "method": "in"},
            {"op": "rotate", "probability": 0.5, "max_left_rotation": 7.0,
             "max_right_rotation": 7.0, "crop": False},
            {"op": "zoom", "probability": 0.5, "min_factor": 0.9, "max_factor": 1.1},
            {"op": "brightness", "probability": 0.5, "min_factor": 0.85, "max_factor": 1.15},
            {"op": "contrast", "probability": 0.5, "min_factor": 0.85, "max_factor": 1.15},
            {"op": "gamma", "probability": 0.5, "min_gamma": 0.8, "max_gamma": 1.25},
        ]
    }  # fmt: skip


def _default_model_kwargs() -> dict[str, Any]:
    return {"depth": 5, "base_channels": 12, "norm": "batch", "upsample": "transpose"}


@dataclass
class TrainConfig:
    """Every option of a training run.

    Attributes:
        size: Square training size in pixels (multiple of 32); ``None`` takes the median image
            size of the data rounded to a multiple of 32, capped at 512.
        resize: ``"squash"`` resizes to size x size ignoring the aspect ratio; ``"letterbox"``
            keeps it and pads. Recorded in the checkpoint so prediction inverts it.
        normalization: ``"zscore"`` (per image) or ``"unit"`` (keep [0, 1]), applied after the
            augmentation.
        val_fraction: Share of cases used for validation when new splits are made.
        test_fraction: Share of cases held out for testing (never seen in training).
        model: Name in the :mod:`cxrseg.models` registry.
        model_kwargs: Keyword arguments of the model besides channels and classes.
        loss: ``"dice_ce"`` (default: Dice keeps the thin clavicles and the small classes from
            being swamped by background, CE gives smooth early gradients), ``"ce"`` (the seed
            project's plain categorical cross-entropy) or ``"dice"``.
        mode: ``"softmax"`` (exclusive structures, background is class 0) or ``"sigmoid"``
            (overlapping structures); ``None`` picks from the masks.
        class_weights: Optional loss weight per model output channel.
        epochs: Total epochs; the learning-rate schedule spans exactly these.
        batch_size: Images per step on each process; ``None`` picks from free memory.
        lr: Peak learning rate reached at the end of the warm-up.
        optimizer: ``"adamw"`` or ``"sgd"`` (Nesterov, with ``momentum``).
        weight_decay: Decoupled weight decay (AdamW) or L2 (SGD).
        momentum: SGD momentum.
        schedule: ``"cosine"``, ``"poly"`` (power 0.9) or ``"constant"`` after the warm-up.
        warmup_epochs: Linear warm-up length in epochs (may be fractional).
        min_lr_ratio: Final learning rate as a fraction of ``lr``.
        grad_clip: Maximum gradient norm; ``None`` or 0 turns clipping off.
        amp: Mixed precision: bfloat16 autocast on CUDA (float16 where the GPU lacks
            bfloat16) and on CPUs with native bfloat16 (AMX, AVX512-BF16); float32 elsewhere
            or when off (see :mod:`cxrseg.training.precision`).
        channels_last: Use the channels-last memory format for the model and batches.
        compile: Wrap the model in ``torch.compile``.
        patience: Stop after this many epochs without a better validation Dice; 0 turns
            early stopping off.
        min_delta: Improvement in mean validation Dice that counts as better.
        augmentation: A :meth:`cxrseg.augment.Pipeline.to_dict` description; ``None`` uses
            the default recipe, ``{}`` or ``{"steps": []}`` trains without augmentation.
        augment_on: ``"cpu"`` augments each sample in the data loader, ``"device"`` augments
            whole batches on the training device, ``"auto"`` picks the device on CUDA and the
            CPU otherwise.
        seed: Seeds the splits, the weights, the shuffling and every augmentation draw.
        deterministic: Ask torch for deterministic algorithms (bit-exact resume on CPU).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        workers: Data-loader worker processes; ``None`` picks from the CPU count. The
            results do not depend on it.
    """

    size: int | None = None
    resize: str = "squash"
    normalization: str = "zscore"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    model: str = "unet"
    model_kwargs: dict[str, Any] = field(default_factory=_default_model_kwargs)
    loss: str = "dice_ce"
    mode: str | None = None
    class_weights: list[float] | None = None
    epochs: int = 30
    batch_size: int | None = None
    lr: float = 2e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    grad_clip: float | None = 1.0
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    patience: int = 10
    min_delta: float = 1e-4
    augmentation: dict[str, Any] | None = None
    augment_on: str = "auto"
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    workers: int | None = None

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise InputError(
                    f"{name}={value!r} is not one of {', '.join(map(repr, choices))}.",
                    hint=f"set {name} to one of them.",
                )
        if self.mode is not None and self.mode not in ("softmax", "sigmoid"):
            raise InputError(
                f"mode={self.mode!r} is not 'softmax' or 'sigmoid'.",
                hint="leave it out to pick it from the masks.",
            )
        _positive_int(self, "epochs")
        _positive_int(self, "size", allow_none=True)
        _positive_int(self, "batch_size", allow_none=True)
        if self.size is not None and self.size % 32:
            raise InputError(
                f"size={self.size} is not a multiple of 32 (the U-Net halves it 5 times).",
                hint=f"use {max(32, round(self.size / 32) * 32)}.",
            )
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            raise InputError(f"workers={self.workers!r} must be 0 or more.", hint="use 0 or 2.")
        for name in ("lr", "weight_decay", "momentum", "warmup_epochs", "min_lr_ratio"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InputError(f"{name}={value!r} must be a finite number >= 0.")
        if self.lr <= 0:
            raise InputError(f"lr={self.lr!r} must be > 0.", hint="try 1e-3.")
        if not 0 <= self.val_fraction < 1 or not 0 <= self.test_fraction < 1:
            raise InputError(
                f"val_fraction={self.val_fraction} and test_fraction={self.test_fraction} "
                "must each be in [0, 1).",
                hint="use e.g. 0.15 and 0.15.",
            )
        if self.val_fraction + self.test_fraction >= 1:
            raise InputError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction} "
                "leaves no case for training.",
                hint="keep their sum below 1.",
            )
        if self.grad_clip is not None and self.grad_clip < 0:
            raise InputError(f"grad_clip={self.grad_clip} must be >= 0 (0 or null: off).")
        if self.patience < 0:
            raise InputError(f"patience={self.patience} must be >= 0 (0: no early stopping).")
        if not isinstance(self.model_kwargs, dict):
            raise InputError(f"model_kwargs={self.model_kwargs!r} must be a mapping.")

    # --- conversion -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON/YAML-safe copy of every option."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str | Path | None = None) -> TrainConfig:
        """Build a config from a mapping, refusing unknown keys.

        Args:
            values: Option names and values; missing options keep their defaults.
            source: File the mapping came from, named in error messages.

        Raises:
            InputError: An unknown option or a bad value.
        """
        if not isinstance(values, dict):
            raise InputError(
                f"a training config must be a mapping of options, got {type(values).__name__}.",
                path=source,
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(
                f"unknown option(s) {', '.join(unknown)}.",
                path=source,
                hint=f"valid options are: {', '.join(sorted(known))}.",
            )
        try:
            return cls(**values)
        except InputError as exc:
            if source is None:
                raise
            raise InputError(exc.reason, path=source, hint=exc.hint) from exc

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read a YAML file written by :meth:`to_yaml` or by hand."""
        path = Path(path)
        if not path.is_file():
            raise InputError("config file not found.", path=path, hint="check the path.")
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise InputError(f"not valid YAML ({exc}).", path=path) from exc
        return cls.from_dict(values or {}, source=path)

    def to_yaml(self, path: str | Path) -> None:
        """Write every option as YAML (atomically)."""
        from cxrseg.io import atomic_write

        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        with atomic_write(Path(path)) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")

    def replace(self, **changes: Any) -> TrainConfig:
        """Copy with some options changed; ``None`` values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def identity(self) -> dict[str, Any]:
        """The options that decide the result (all but :data:`RUNTIME_FIELDS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}

    def fingerprint(self) -> str:
        """Short hash of :meth:`identity`, stored with the run to check ``--resume``."""
        text = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Describe the options whose values differ, as ``"name: old -> new"`` lines."""
    lines = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            lines.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return lines


def _positive_int(config: TrainConfig, name: str, allow_none: bool = False) -> None:
    value = getattr(config, name)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name}={value!r} must be a whole number >= 1.")
