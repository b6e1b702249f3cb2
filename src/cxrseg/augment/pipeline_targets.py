"""Pipeline: the targets it augments, one image and its masks in the caller's containers.

Images are converted to float32 in [0, 1] for the transforms and back to their dtype; masks may
be a dict name -> array (names kept, ``left_*``/``right_*`` swapped by a horizontal flip), a
list or a tuple, and come back in the same container.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union

import numpy as np

from cxrseg.augment.transforms import swap_left_right_name
from cxrseg.errors import InputError

__all__ = [
    "Masks",
    "image_from_float",
    "image_to_float",
    "mask_list",
    "rebuild_masks",
]

Masks = Union[Mapping[str, np.ndarray], Sequence[np.ndarray], None]  # noqa: UP007
"""Masks travel as a dict name -> (H, W) array or a list of (H, W) arrays; same container back."""

_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def image_to_float(image: object) -> np.ndarray:
    """float32 copy in [0, 1] of a uint8, uint16 or float image (H, W) or (H, W, C)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, not {type(image).__name__}.")
    if image.ndim not in (2, 3) or image.size == 0:
        raise InputError(
            f"image has shape {image.shape}; expected (H, W) or (H, W, C).",
            hint="pass one grayscale image as a 2-D array.",
        )
    if image.dtype in _SCALE:
        return image.astype(np.float32) / np.float32(_SCALE[image.dtype])
    if not np.issubdtype(image.dtype, np.floating):
        raise InputError(
            f"image dtype {image.dtype} is not supported.",
            hint="pass uint8, uint16, or float in [0, 1].",
        )
    low, high = float(np.min(image)), float(np.max(image))
    if low < 0.0 or high > 1.0:
        raise InputError(
            f"float image has values in [{low:g}, {high:g}], outside [0, 1].",
            hint="scale it to [0, 1] (e.g. image / 255) or pass the integer array.",
        )
    return image.astype(np.float32)


def image_from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype in _SCALE:
        scale = _SCALE[dtype]
        return np.clip(np.rint(image * scale), 0, scale).astype(dtype)
    return image.astype(dtype)


def mask_list(masks: Masks, shape: tuple[int, int]) -> tuple[list[np.ndarray], list[str] | None]:
    """Masks as a list of uint8-compatible arrays plus their names (None for a list)."""
    if masks is None:
        return [], None
    names: list[str] | None
    if isinstance(masks, Mapping):
        names, arrays = [str(k) for k in masks], list(masks.values())
    elif isinstance(masks, Sequence) and not isinstance(masks, str | bytes):
        names, arrays = None, list(masks)
    else:
        raise TypeError(f"masks must be a dict or list of arrays, not {type(masks).__name__}.")
    for i, mask in enumerate(arrays):
        label = repr(names[i]) if names else f"#{i}"
        if not isinstance(mask, np.ndarray):
            raise TypeError(f"mask {label} must be a numpy array, not {type(mask).__name__}.")
        if mask.shape != shape:
            raise InputError(
                f"mask {label} has shape {mask.shape} but the image is {shape}.",
                hint="give image and masks the same height and width (resize masks with "
                "nearest-neighbour interpolation).",
            )
        if not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == np.bool_):
            raise InputError(
                f"mask {label} has dtype {mask.dtype}; masks must hold integer labels, not "
                "float probabilities.",
                hint="threshold it first, e.g. (mask > 0.5).astype(np.uint8).",
            )
    return arrays, names


def rebuild_masks(
    masks: Masks, arrays: list[np.ndarray], names: list[str] | None, swap: bool
) -> Any:
    """Masks back in the container they came in; names swapped left/right when ``swap``."""
    if masks is None:
        return None
    if names is None:
        return type(masks)(arrays) if isinstance(masks, tuple) else arrays
    by_name = dict(zip(names, arrays, strict=True))
    if swap:
        by_name = {swap_left_right_name(n): a for n, a in by_name.items()}
    return {n: by_name[n] for n in names}
