"""Options picked from the data and the machine when the config leaves them out.

Each ``pick_*`` function returns the value and a one-line reason, which ``cxrseg train``
prints at the start:

- ``size``: the median image size (longer side) rounded to a multiple of 32, at most 512;
- ``mode``: ``"sigmoid"`` when structures overlap in any training case, else ``"softmax"``;
- ``batch_size``: from free memory (CUDA) or available RAM (CPU), using a per-image estimate
  of the U-Net's activation memory, capped (4 on CPU, where a larger batch only costs steps;
  64 on CUDA) and never above the number of training cases;
- ``workers``: 0 on CPU (the augmentation of a few cached images is cheaper than feeding
  worker processes, and the cores are busy with the convolutions); up to 8 on CUDA;
- ``device``: CUDA when available;
- ``patience``: about 1,000 optimisation steps in epochs, 8 to 30 (:func:`pick_patience`);
- precision: bfloat16 autocast on CUDA and on CPUs with native bfloat16, else float32
  (:mod:`cxrseg.training.precision`).
"""

from __future__ import annotations

import logging
import math
import os
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cxrseg.errors import InputError
from cxrseg.io import read_image_info
from cxrseg.losses import infer_mode
from cxrseg.training.config import default_augmentation
from cxrseg.training.precision import autocast_dtype

if TYPE_CHECKING:
    from cxrseg.data import Case
    from cxrseg.training.config import TrainConfig
    from cxrseg.training.dataset import CachedCases

__all__ = [
    "amp_dtype",
    "estimate_image_bytes",
    "pick_batch_size",
    "pick_device",
    "pick_mode",
    "pick_patience",
    "pick_precision",
    "pick_size",
    "pick_workers",
    "resolve_config",
]

logger = logging.getLogger(__name__)

MAX_SIZE = 512
CPU_BATCH_CAP = 4
CUDA_BATCH_CAP = 64
#: Activation tensors kept per pixel and base channel by a U-Net step (conv, norm and ReLU
#: outputs of both blocks of every level, the decoder's concatenations and their gradients).
_ACTIVATIONS_PER_PIXEL_CHANNEL = 40


def pick_device(requested: str) -> torch.device:
    """``"auto"`` -> CUDA if present, else CPU; ``"cuda"`` without CUDA is refused.

    Raises:
        InputError: CUDA was requested but torch sees no GPU.
    """
    if requested == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "--device cuda was requested but torch finds no CUDA GPU "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}).",
            hint="use --device cpu, or install a CUDA build of torch on a machine with a GPU.",
        )
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


def pick_size(cases: Sequence[Case]) -> tuple[int, str]:
    """Median longer side of the images, rounded to a multiple of 32, capped at 512."""
    infos = [read_image_info(case.image, pixel_range=False) for case in cases]
    sides = [max(info.height, info.width) for info in infos]
    median = statistics.median(sides)
    size = int(min(MAX_SIZE, max(32, round(median / 32) * 32)))
    return size, f"median image size {median:g} px, rounded to a multiple of 32, capped at 512"


def pick_mode(masks: np.ndarray) -> tuple[str, str]:
    """Softmax unless structures overlap.

    Args:
        masks: (N, K, H, W) masks of the training cases.
    """
    mode = infer_mode(list(masks))
    why = "structures overlap" if mode == "sigmoid" else "structures never overlap"
    return mode, f"{why} in the training masks"


def estimate_image_bytes(size: int, model_kwargs: dict[str, Any], half: bool = False) -> int:
    """Rough training memory per image of a U-Net at ``size`` x ``size`` pixels."""
    base = int(model_kwargs.get("base_channels", 32))
    per_value = 2 if half else 4
    return size * size * base * _ACTIVATIONS_PER_PIXEL_CHANNEL * per_value


def pick_batch_size(
    config: TrainConfig, size: int, device: torch.device, train_cases: int
) -> tuple[int, str]:
    """Largest power of two whose estimated memory fits in half the free memory."""
    half = amp_dtype(config, device) is not None
    per_image = estimate_image_bytes(size, config.model_kwargs, half=half)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cap, where = CUDA_BATCH_CAP, f"{free / 2**30:.1f} GiB free on the GPU"
    else:
        free = _available_ram()
        cap, where = CPU_BATCH_CAP, f"{free / 2**30:.1f} GiB RAM available"
    fits = max(1, int(free * 0.5 // per_image))
    limit = max(1, min(fits, cap, train_cases))
    batch = 1 << (limit.bit_length() - 1)
    reason = f"{where}, about {per_image / 2**20:.0f} MiB per image; capped at {cap}" + (
        f" and {train_cases} training cases" if train_cases < cap else ""
    )
    return batch, reason


def _available_ram() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


#: Optimisation steps the smoothed validation Dice may go without improving before a run ends.
PATIENCE_STEPS = 1000
PATIENCE_EPOCHS = (8, 30)


def pick_patience(steps_per_epoch: int) -> tuple[int, str]:
    """Patience in epochs from the data size: about :data:`PATIENCE_STEPS` steps, 8 to 30.

    A model improves per optimisation step, not per epoch: a small dataset has short epochs
    and needs more of them before a plateau is real, a large one fewer. The floor leaves room
    for the smoothing of the validation curve (it lags about two epochs) and the ceiling keeps
    a tiny dataset from waiting forever.
    """
    low, high = PATIENCE_EPOCHS
    wanted = math.ceil(PATIENCE_STEPS / max(1, steps_per_epoch))
    patience = min(high, max(low, wanted))
    return patience, (
        f"about {PATIENCE_STEPS} optimisation steps at {steps_per_epoch} steps per epoch, "
        f"kept within {low}-{high} epochs"
    )


def pick_workers(device: torch.device) -> tuple[int, str]:
    """Data-loader worker count for the device (the results never depend on it)."""
    if device.type == "cpu":
        return 0, "on CPU the main process augments while the cores run the model"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = max(0, min(8, (cpus or 1) - 1))
    return workers, f"{cpus} CPU cores, one kept for the main process"


def resolve_config(
    config: TrainConfig, train: CachedCases, device: torch.device, reasons: dict[str, str]
) -> TrainConfig:
    """Fill in mode, batch size, workers and augmentation from the data and the machine.

    Args:
        config: With ``size`` already set.
        train: The cached training cases.
        device: The training device.
        reasons: Receives a one-line reason per option picked here.
    """
    changes: dict[str, Any] = {}
    if config.mode is None:
        changes["mode"], reasons["mode"] = pick_mode(train.masks)
    if config.batch_size is None:
        assert config.size is not None
        changes["batch_size"], reasons["batch_size"] = pick_batch_size(
            config, config.size, device, len(train)
        )
    if config.workers is None:
        changes["workers"], reasons["workers"] = pick_workers(device)
    if config.augmentation is None:
        changes["augmentation"] = default_augmentation()
        reasons["augmentation"] = "default recipe (mesh distortions, rotation, zoom, intensity)"
    return config.replace(**changes)


def pick_precision(config: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, str]:
    """Autocast dtype and why: bfloat16 on CUDA (float16 without it) and on CPUs with native
    bfloat16; ``None`` (float32) on other CPUs or with ``amp`` off (see
    :mod:`cxrseg.training.precision`)."""
    return autocast_dtype(device, config.amp)


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of :func:`pick_precision` (``None``: float32)."""
    return pick_precision(config, device)[0]
