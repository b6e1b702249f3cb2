"""One declarative schema holds every training option; it is saved with every run.

:class:`TrainConfig` is what ``cxrseg train --config train.yaml`` reads, what the command-line
options override, and what the run folder (``config.yaml``) and the checkpoints store once the
data-dependent defaults (``size``, ``batch_size``, ``workers``, ``mode``, ``device``) are filled
in. Options left as ``None`` are resolved from the data by :mod:`cxrseg.training.defaults`.

Every option is one line of :class:`TrainConfig` with its type, default and bounds; the whole
config (model keyword arguments and augmentation recipe included) is checked when it is built,
so a bad option is refused before a run folder is touched (see :mod:`cxrseg.training.schema`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import Field

from cxrseg.augment.pipeline import Pipeline
from cxrseg.errors import InputError
from cxrseg.io import atomic_write, parse_yaml
from cxrseg.limits import MAX_LABELS, MAX_SIZE
from cxrseg.training.duration import parse_duration
from cxrseg.training.schema import Real, Schema

__all__ = [
    "MAX_LABELS",
    "MAX_SIZE",
    "MODEL_OPTIONS",
    "RUNTIME_FIELDS",
    "TrainConfig",
    "UNetOptions",
    "config_diff",
    "default_augmentation",
]


#: Options that may change between a run and its ``--resume`` without changing the result
#: (where it runs and how fast), so they are left out of :meth:`TrainConfig.identity`.
RUNTIME_FIELDS = frozenset({"device", "workers", "compile"})


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


class UNetOptions(Schema):
    """``model_kwargs`` of the ``unet`` and ``unet_small`` models (see :class:`cxrseg.models.UNet`).

    ``in_channels`` and ``num_classes`` are not options: the data decide them.
    """

    prefix: ClassVar[str] = "model_kwargs."

    depth: Annotated[int, Field(ge=2, le=7)] = 5
    base_channels: Annotated[int, Field(ge=1, le=256)] = 32
    norm: Literal["batch", "instance", "group"] = "batch"
    upsample: Literal["transpose", "bilinear"] = "transpose"
    dropout: Annotated[Real, Field(ge=0, lt=1)] = 0.0
    deep_supervision: bool = False
    pad_mode: Literal["reflect", "zeros", "replicate"] = "reflect"

    def check(self) -> None:
        if self.deep_supervision and self.depth < 3:
            raise InputError(
                f"model_kwargs.deep_supervision needs depth >= 3, got depth={self.depth}.",
                hint="raise model_kwargs.depth or set deep_supervision: false.",
            )


#: The option schema of each model's ``model_kwargs``, by name in :data:`cxrseg.models.MODELS`.
MODEL_OPTIONS: dict[str, type[Schema]] = {"unet": UNetOptions, "unet_small": UNetOptions}


class TrainConfig(Schema):
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
        epochs: The most epochs the run may train (a generous cap: the default run stops when
            the validation Dice stops improving, see ``patience``).
        batch_size: Images per step on each process; ``None`` picks from free memory.
        lr: Peak learning rate reached at the end of the warm-up.
        optimizer: ``"adamw"`` or ``"sgd"`` (Nesterov, with ``momentum``).
        weight_decay: Decoupled weight decay (AdamW) or L2 (SGD).
        momentum: SGD momentum.
        schedule: After the warm-up, ``"plateau"`` (default) holds the peak learning rate
            until the run is ending, then anneals it (a cosine over a fifth of the epochs
            trained); ``"cosine"`` or ``"poly"`` (power 0.9) decay over ``epochs`` (or the
            epochs that fit the time budget); ``"constant"`` never decays. See
            :mod:`cxrseg.training.schedule`.
        warmup_epochs: Linear warm-up length in epochs (may be fractional).
        min_lr_ratio: Final learning rate as a fraction of ``lr``.
        grad_clip: Maximum gradient norm; ``None`` or 0 turns clipping off.
        amp: Mixed precision: bfloat16 autocast on CUDA (float16 where the GPU lacks
            bfloat16) and on CPUs with native bfloat16 (AMX, AVX512-BF16); float32 elsewhere
            or when off (see :mod:`cxrseg.training.precision`).
        channels_last: Use the channels-last memory format for the model and batches.
        compile: Wrap the model in ``torch.compile``.
        patience: Epochs without an improvement of the smoothed validation Dice after which
            the run cools down and stops; ``None`` fits it to the data size (about 1,000
            optimisation steps, 8 to 30 epochs); 0 trains for ``epochs``.
        min_delta: Improvement in smoothed mean validation Dice that counts as better.
        time_budget: Wall-clock seconds for the whole run (``"20m"``, ``"1h30m"``, ``"90s"``
            are read too); the last epoch is fitted to it from the measured epoch time.
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

    # One option per line: type, default, bounds. Cross-option rules live in check().
    size: Annotated[int | None, Field(ge=32, le=MAX_SIZE)] = None
    resize: Literal["squash", "letterbox"] = "squash"
    normalization: Literal["zscore", "unit"] = "zscore"
    val_fraction: Annotated[Real, Field(ge=0, lt=1)] = 0.15
    test_fraction: Annotated[Real, Field(ge=0, lt=1)] = 0.15
    model: Literal["unet", "unet_small"] = "unet"
    model_kwargs: dict[str, Any] = Field(default_factory=_default_model_kwargs)
    loss: Literal["dice_ce", "ce", "dice"] = "dice_ce"
    mode: Literal["softmax", "sigmoid"] | None = None
    class_weights: Annotated[list[Annotated[Real, Field(ge=0)]] | None, Field(min_length=1)] = None
    epochs: Annotated[int, Field(ge=1)] = 300
    batch_size: Annotated[int | None, Field(ge=1, le=4096)] = None
    lr: Annotated[Real, Field(gt=0)] = 2e-3
    optimizer: Literal["adamw", "sgd"] = "adamw"
    weight_decay: Annotated[Real, Field(ge=0)] = 1e-4
    momentum: Annotated[Real, Field(ge=0, lt=1)] = 0.9
    schedule: Literal["plateau", "cosine", "poly", "constant"] = "plateau"
    warmup_epochs: Annotated[Real, Field(ge=0)] = 1.0
    min_lr_ratio: Annotated[Real, Field(ge=0, le=1)] = 0.01
    grad_clip: Annotated[Real | None, Field(ge=0)] = 1.0
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    patience: Annotated[int | None, Field(ge=0)] = None
    min_delta: Annotated[Real, Field(ge=0)] = 1e-4
    time_budget: Real | str | None = None  # seconds; text such as 20m is read in check()
    augmentation: dict[str, Any] | None = None
    augment_on: Literal["auto", "cpu", "device"] = "auto"
    seed: Annotated[int, Field(ge=0)] = 0
    deterministic: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    workers: Annotated[int | None, Field(ge=0, le=256)] = None

    def check(self) -> None:
        """Rules joining options, run after every option passed its own bounds."""
        if self.size is not None and self.size % 32:
            raise InputError(
                f"size={self.size} is not a multiple of 32 (the U-Net halves it 5 times).",
                hint=f"use {max(32, round(self.size / 32) * 32)}.",
            )
        if self.val_fraction + self.test_fraction >= 1:
            raise InputError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction} "
                "leaves no case for training.",
                hint="keep their sum below 1.",
            )
        if self.time_budget is not None:
            self.time_budget = _duration(self.time_budget)
        MODEL_OPTIONS[self.model](**self.model_kwargs)
        if self.augmentation and self.augmentation.get("operations"):
            try:
                pipeline = Pipeline.from_dict({**self.augmentation, "seed": self.seed})
                if self.size is not None:
                    pipeline.check_size(self.size, self.size)
            except ValueError as exc:  # InputError, or a transform refusing an argument
                reason = getattr(exc, "reason", str(exc))
                raise InputError(
                    f"augmentation: {reason}", hint=getattr(exc, "hint", None)
                ) from None

    def check_structures(self, structures: list[str]) -> None:
        """Refuse options that do not fit the data's structures (once ``mode`` is resolved)."""
        channels = len(structures) + (1 if self.mode == "softmax" else 0)
        if self.class_weights is not None and len(self.class_weights) != channels:
            what = "background + " if self.mode == "softmax" else ""
            raise InputError(
                f"class_weights has {len(self.class_weights)} values but the model has "
                f"{channels} output channels ({what}{', '.join(structures)}).",
                hint=f"give {channels} weights, in that order, or leave class_weights out.",
            )

    # --- conversion -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON/YAML-safe copy of every option."""
        return self.model_dump(mode="json")

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
                hint="write one 'name: value' line per option, e.g. 'epochs: 30'.",
            )
        known = set(cls.model_fields)
        unknown = sorted(map(str, set(values) - known))
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
            values = parse_yaml(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise InputError(
                f"not valid YAML ({exc}).",
                path=path,
                hint="fix the line shown: one 'name: value' per line, lists in [ ].",
            ) from exc
        return cls.from_dict(values or {}, source=path)

    def to_yaml(self, path: str | Path) -> None:
        """Write every option as YAML (atomically)."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        with atomic_write(Path(path)) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")

    def replace(self, **changes: Any) -> TrainConfig:
        """Copy with some options changed; ``None`` values are ignored."""
        given = {k: v for k, v in changes.items() if v is not None}
        return type(self)(**{**self.model_dump(), **given})

    def identity(self) -> dict[str, Any]:
        """The options that decide the result (all but :data:`RUNTIME_FIELDS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}

    def fingerprint(self) -> str:
        """Short hash of :meth:`identity`, stored with the run to check ``--resume``."""
        text = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InputError(f"time_budget: {exc}", hint="e.g. --time-budget 20m") from None


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Describe the options whose values differ, as ``"name: old -> new"`` lines."""
    lines = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            lines.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return lines
