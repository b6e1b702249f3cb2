"""Small datasets and configs shared by the training tests (tiny, so each run takes seconds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cxrseg.training.config import TrainConfig

TINY_MODEL = {"depth": 3, "base_channels": 4}


def tiny_config(**changes: Any) -> TrainConfig:
    """32 px, 2 epochs, a U-Net of depth 3 with 4 base channels, deterministic, float32.

    ``amp`` is off: at this size bfloat16 only adds conversions, and the runs stay the same on
    every CPU (tests/test_training_precision.py covers bfloat16).
    """
    values: dict[str, Any] = {
        "size": 32,
        "epochs": 2,
        "batch_size": 4,
        "model_kwargs": dict(TINY_MODEL),
        "deterministic": True,
        "val_fraction": 0.25,
        "test_fraction": 0.0,
        "workers": 0,
        "device": "cpu",
        "amp": False,
    }
    values.update(changes)
    return TrainConfig(**values)


def phantom_folder(root: Path, n: int = 8, size: int = 32, seed: int = 0) -> Path:
    """Write ``n`` phantoms (five structures) under ``root`` and return it."""
    from cxrseg.phantom import write_phantom_dataset

    write_phantom_dataset(root, n, size=size, seed=seed)
    return root


def lungs_folder(root: Path, n: int = 6, size: int = 32, seed: int = 0) -> Path:
    """A single-structure dataset (``masks/<id>.png``, both lungs as ``foreground``)."""
    from cxrseg.io import write_image, write_mask
    from cxrseg.phantom import make_phantom

    for i in range(n):
        phantom = make_phantom(seed + i, size)
        lungs = np.maximum(phantom.masks["left_lung"], phantom.masks["right_lung"])
        write_image(root / "images" / f"case{i}.png", phantom.image)
        write_mask(root / "masks" / f"case{i}.png", lungs * 255)
    return root
