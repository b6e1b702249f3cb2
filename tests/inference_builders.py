"""Tiny checkpoints, hand-made networks and input files for the prediction and export tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

LABELS = ["left_lung", "right_lung", "heart"]
SIZE = 32


def make_checkpoint(
    folder: Path,
    labels: Sequence[str] = LABELS,
    mode: str = "softmax",
    size: int = SIZE,
    resize: str = "squash",
    seed: int = 0,
    **metadata: Any,
) -> Path:
    """Save a random tiny U-Net (depth 3, base 4) with training-like metadata; return folder."""
    import torch

    from cxrseg.models import create_model
    from cxrseg.training.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    classes = len(labels) + (1 if mode == "softmax" else 0)
    model = create_model("unet", in_channels=1, num_classes=classes, depth=3, base_channels=4)
    meta = {"labels": list(labels), "mode": mode, "input_size": size, "resize": resize,
            "normalization": "zscore", "in_channels": 1, **metadata}  # fmt: skip
    save_checkpoint(folder, model, meta)
    return folder


def rewrite_json(path: Path, **changes: Any) -> None:
    """Change top-level entries of a JSON file in place."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


class FakeBackend:
    """A hand-written 'network': ``logits = fn(batch)`` with ``batch`` (N, 1, S, S) normalised."""

    device = "cpu"
    runtime = "fake"

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]):
        self.fn = fn
        self.calls: list[np.ndarray] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(np.array(batch))
        return np.asarray(self.fn(np.array(batch)), dtype=np.float32)


def positional_lungs(batch: np.ndarray) -> np.ndarray:
    """Softmax logits over (background, left_lung, right_lung, heart) that label bright pixels
    by their side: the image's right half is the patient's left (``left_lung``)."""
    bright = batch[:, 0] > 1.0
    columns = np.arange(batch.shape[-1])
    right_half = columns >= batch.shape[-1] // 2
    logits = np.zeros((len(batch), 4, *batch.shape[2:]), np.float32)
    logits[:, 1] = np.where(bright & right_half, 8.0, -4.0)
    logits[:, 2] = np.where(bright & ~right_half, 8.0, -4.0)
    logits[:, 3] = -4.0
    return logits


def write_inputs(folder: Path) -> dict[str, tuple[int, int]]:
    """An 8-bit PNG (70x90), a 16-bit PNG (45x33) and a DICOM (40x52); return id -> shape."""
    from PIL import Image

    from test_io import make_dicom  # the DICOM builder of the io tests

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (70, 90), dtype=np.uint8)).save(folder / "a8.png")
    Image.fromarray(rng.integers(0, 65536, (45, 33), dtype=np.uint16)).save(folder / "b16.png")
    make_dicom(folder / "c.dcm", rng.integers(0, 4096, (40, 52), dtype=np.uint16))
    return {"a8": (70, 90), "b16": (45, 33), "c": (40, 52)}


def mock_cpu_bf16(monkeypatch: Any, native: bool) -> None:
    """Make this CPU look as if it had (or lacked) native bfloat16, whatever it has."""
    from cxrseg.training import precision

    why = "Mock CPU has native bfloat16" if native else "Mock CPU has no native bfloat16"
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: (native, why))
