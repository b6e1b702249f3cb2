"""The image preparation of training, in NumPy, and its inverse for the network's outputs.

Training resizes every case to the square ``input_size`` with
:func:`cxrseg.data.loading.resize_pair` (``"squash"`` ignores the aspect ratio,
``"letterbox"`` keeps it and pads with 0) and normalises batches on the device with
:func:`cxrseg.training.dataset.normalize_batch`. :func:`prepare` does exactly the same in
NumPy (no torch, so the ONNX path runs without it), and :func:`restore` maps ``(C, S, S)``
probabilities back onto the original ``(H, W)`` grid: the letterbox padding is cropped off
and the rest resized bilinearly.
"""

from __future__ import annotations

import cv2
import numpy as np

from cxrseg.data.loading import RESIZE_MODES, resize_pair

__all__ = ["NORMALIZATIONS", "RESIZE_MODES", "content_box", "normalize", "prepare", "restore"]

NORMALIZATIONS = ("zscore", "unit")


def content_box(shape: tuple[int, int], size: int, resize: str) -> tuple[int, int, int, int]:
    """Where an ``(H, W)`` image lies in the ``size`` x ``size`` network input.

    Returns:
        ``(top, bottom, left, right)`` bounds; the whole square for ``"squash"``.
    """
    if resize == "squash":
        return 0, size, 0, size
    height, width = shape
    scale = size / max(height, width)
    inner = (max(1, round(height * scale)), max(1, round(width * scale)))
    top, left = (size - inner[0]) // 2, (size - inner[1]) // 2
    return top, top + inner[0], left, left + inner[1]


def normalize(images: np.ndarray, method: str = "zscore") -> np.ndarray:
    """NumPy twin of :func:`cxrseg.training.dataset.normalize_batch`.

    Args:
        images: (N, C, H, W) float32 in [0, 1].
        method: ``"zscore"`` (each image minus its mean, over its sample standard deviation,
            floored at 1e-6, as ``torch.std``) or ``"unit"`` (unchanged).

    Returns:
        (N, C, H, W) float32.
    """
    if method == "unit":
        return images.astype(np.float32, copy=False)
    if method != "zscore":
        raise ValueError(f"normalization {method!r} is not one of {NORMALIZATIONS}.")
    flat = images.reshape(len(images), -1)
    mean = flat.mean(axis=1, dtype=np.float64)  # float64 sums, no float64 copy
    std = flat.std(axis=1, ddof=1, dtype=np.float64) if flat.shape[1] > 1 else mean * 0
    shift = mean.astype(np.float32)[:, None, None, None]
    scale = (1.0 / np.maximum(std, 1e-6)).astype(np.float32)[:, None, None, None]
    out = np.subtract(images, shift, dtype=np.float32)
    out *= scale
    return out


def prepare(image: np.ndarray, size: int, resize: str = "squash") -> np.ndarray:
    """Resize one image to the network's square input as training did (not normalised).

    Args:
        image: (H, W) float32 in [0, 1].
        size: The checkpoint's ``input_size``.
        resize: The checkpoint's ``resize`` mode.

    Returns:
        (size, size) float32 in [0, 1].
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize {resize!r} is not one of {RESIZE_MODES}.")
    resized, _ = resize_pair(np.asarray(image, dtype=np.float32), {}, size, resize)
    return resized


def restore(channel: np.ndarray, shape: tuple[int, int], resize: str) -> np.ndarray:
    """Map one network-sized map back onto the original image grid.

    One channel at a time, so a large radiograph never holds every class at full size.

    Args:
        channel: (S, S) float32 map at the network's input size.
        shape: ``(H, W)`` of the original image.
        resize: The mode :func:`prepare` used.

    Returns:
        New (H, W) float32 array, bilinearly resized (the letterbox padding cropped first).
    """
    top, bottom, left, right = content_box(shape, channel.shape[-1], resize)
    inner = np.array(channel[top:bottom, left:right], dtype=np.float32)  # a copy, never a view
    if inner.shape == tuple(shape):
        return inner
    height, width = shape
    return cv2.resize(inner, (width, height), interpolation=cv2.INTER_LINEAR)
