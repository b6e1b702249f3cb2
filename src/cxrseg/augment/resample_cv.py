"""Resampling, OpenCV twin: an image and its masks through one backward map (NumPy arrays).

The map comes from :mod:`cxrseg.augment.geometry` (``cv2.remap`` convention). The image is
interpolated (bilinear by default, or bicubic); masks are always sampled nearest, so every output
mask value is one of the input's and labels never blur. Image and masks use the same border mode,
so they stay aligned even where the border is reflected.

Dtypes: uint8, uint16, int16, float32 and float64 images keep their dtype; integer results are
rounded, and bicubic overshoot is clipped to the input's own value range (and the fill value),
so a [0, 1] float image stays in [0, 1] and a 12-bit image in uint16 stays below 4096. float16
is computed in float32. OpenCV quantises source positions to 1/32 px, far below what a
radiograph shows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from cxrseg.errors import InputError

__all__ = ["BORDERS", "INTERPOLATIONS", "remap", "warp"]

logger = logging.getLogger(__name__)

#: Interpolation names and their OpenCV flags.
INTERPOLATIONS: dict[str, int] = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
}
#: Border modes: ``constant`` fills with a value; ``reflect`` mirrors about the outer pixel
#: edge (``cba|abc``), as ``torch.nn.functional.grid_sample(padding_mode="reflection")`` does.
BORDERS: dict[str, int] = {"constant": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT}

_INTERPOLATED_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)
_NEAREST_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64)
_MAX_CHANNELS = 4  # OpenCV's fast paths; more channels are processed in groups

#: Masks accepted by :func:`warp`; the same container type comes back.
Masks = Mapping[str, np.ndarray] | Sequence[np.ndarray] | None


def _check_choice(name: str, value: str, options: Mapping[str, int]) -> int:
    if value not in options:
        raise ValueError(f"{name}={value!r} is unknown; use one of {sorted(options)}.")
    return options[value]


def _check_map_pair(map_x: np.ndarray, map_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mx = np.asarray(map_x, dtype=np.float32)
    my = np.asarray(map_y, dtype=np.float32)
    if mx.ndim != 2 or mx.shape != my.shape:
        raise ValueError(
            f"map_x {mx.shape} and map_y {my.shape} must be two float arrays of one (H, W) shape."
        )
    return mx, my


@lru_cache(maxsize=64)
def _integer_range(dtype: np.dtype) -> tuple[int, int] | None:
    """(min, max) of an integer dtype, None for others (cached: ``np.iinfo`` is slow)."""
    if dtype.kind not in "ui":
        return None
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _check_fill(fill: float, dtype: np.dtype) -> float:
    if isinstance(fill, bool) or not isinstance(fill, int | float | np.number):
        raise TypeError(f"fill={fill!r} must be a number.")
    value = float(fill)
    if not math.isfinite(value):
        raise ValueError(f"fill={fill!r} must be finite.")
    bounds = _integer_range(dtype)
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise ValueError(
            f"fill={fill!r} does not fit the image dtype {dtype} ({bounds[0]}..{bounds[1]}); "
            "give a fill value inside that range."
        )
    return value


def _nearest_numpy(
    image: np.ndarray, mx: np.ndarray, my: np.ndarray, border: str, fill: float
) -> np.ndarray:
    """Nearest-neighbour sampling for dtypes OpenCV cannot remap (bool, uint32, 64-bit ints)."""
    height, width = image.shape[:2]
    xi = np.rint(mx).astype(np.int64)
    yi = np.rint(my).astype(np.int64)
    if border == "reflect":
        xi = _reflect_index(xi, width)
        yi = _reflect_index(yi, height)
        return image[yi, xi]
    inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
    out = image[np.clip(yi, 0, height - 1), np.clip(xi, 0, width - 1)]
    out[~inside] = np.asarray(fill).astype(image.dtype)
    return out


def _reflect_index(index: np.ndarray, size: int) -> np.ndarray:
    """Integer indices reflected as ``cba|abcdef|fed`` (OpenCV BORDER_REFLECT)."""
    period = 2 * size
    index = np.mod(index, period)
    return np.where(index >= size, period - 1 - index, index)


def _channel_groups(channels: int) -> list[slice]:
    """Split channels into OpenCV calls of 4, 3 or 1 channels.

    OpenCV 5's two-channel remap takes a slower, less exact path (positions quantised to
    1/32 px where one-channel float remap is exact), so pairs go one channel at a time.
    """
    groups, start = [], 0
    while start < channels:
        left = channels - start
        size = _MAX_CHANNELS if left >= _MAX_CHANNELS else (3 if left == 3 else 1)
        groups.append(slice(start, start + size))
        start += size
    return groups


def _cv_remap(
    image: np.ndarray, mx: np.ndarray, my: np.ndarray, flag: int, border_flag: int, fill: float
) -> np.ndarray:
    border_value = (fill,) * 4
    if image.ndim == 2:
        return cv2.remap(image, mx, my, flag, borderMode=border_flag, borderValue=border_value)
    parts = []
    for group in _channel_groups(image.shape[2]):
        part = np.ascontiguousarray(image[..., group])
        out = cv2.remap(part, mx, my, flag, borderMode=border_flag, borderValue=border_value)
        parts.append(out.reshape(*mx.shape, -1))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def remap(
    image: np.ndarray,
    map_x: np.ndarray,
    map_y: np.ndarray,
    interpolation: str = "bilinear",
    border: str = "constant",
    fill: float = 0,
) -> np.ndarray:
    """Resample one array with a backward map.

    Args:
        image: (H, W) or (H, W, C) array. Interpolated resampling takes uint8, uint16, int16,
            float16, float32 or float64; ``"nearest"`` takes any numeric or bool dtype.
        map_x: Source x of every output pixel, (H', W'), pixel-index units.
        map_y: Source y of every output pixel, (H', W').
        interpolation: ``"bilinear"``, ``"bicubic"`` (OpenCV's, a = -0.75) or ``"nearest"``.
        border: ``"constant"`` (outside pixels are ``fill``) or ``"reflect"``.
        fill: Value of outside pixels with ``border="constant"``; must fit the dtype.

    Returns:
        (H', W') or (H', W', C) array of the input dtype. Integer results are rounded. Bicubic
        results are clipped to ``[min(image.min(), fill), max(image.max(), fill)]`` (``fill``
        only with the constant border), so overshoot never leaves the input's value range.

    Raises:
        TypeError: If ``image`` is not an array or its dtype cannot be interpolated.
        ValueError: For unknown options, mismatched maps or a fill outside the dtype.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, not {type(image).__name__}.")
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image has shape {image.shape}; give an (H, W) or (H, W, C) array.")
    _check_choice("interpolation", interpolation, INTERPOLATIONS)
    _check_choice("border", border, BORDERS)
    mx, my = _check_map_pair(map_x, map_y)
    fill = _check_fill(fill, image.dtype if image.dtype != np.bool_ else np.dtype(np.uint8))
    return _remap(image, mx, my, interpolation, border, fill)


def _remap(
    image: np.ndarray, mx: np.ndarray, my: np.ndarray, interpolation: str, border: str, fill: float
) -> np.ndarray:
    """:func:`remap` with arguments already checked (float32 maps, known options, fill)."""
    flag, border_flag = INTERPOLATIONS[interpolation], BORDERS[border]
    if interpolation == "nearest":
        if image.dtype == np.bool_:
            out = _cv_remap(image.view(np.uint8), mx, my, flag, border_flag, fill)
            return out.view(np.bool_)
        if image.dtype.type in _NEAREST_DTYPES:
            return _cv_remap(image, mx, my, flag, border_flag, fill)
        if image.dtype == np.float16:
            out = _cv_remap(image.astype(np.float32), mx, my, flag, border_flag, fill)
            return out.astype(np.float16)
        return _nearest_numpy(image, mx, my, border, fill)
    if image.dtype == np.float16:
        out = _remap(image.astype(np.float32), mx, my, interpolation, border, fill)
        return out.astype(np.float16)
    if image.dtype.type not in _INTERPOLATED_DTYPES:
        raise TypeError(
            f"cannot interpolate an image of dtype {image.dtype}; convert it to float32 "
            "(or uint8/uint16), or use interpolation='nearest' for label maps."
        )
    src = np.ascontiguousarray(image)
    out = _cv_remap(src, mx, my, flag, border_flag, fill)
    if interpolation == "bicubic":
        lo, hi = float(np.nanmin(src)), float(np.nanmax(src))
        if border == "constant":
            lo, hi = min(lo, fill), max(hi, fill)
        np.clip(out, np.asarray(lo).astype(out.dtype), np.asarray(hi).astype(out.dtype), out=out)
    return out


def _mask_arrays(masks: Any) -> list[np.ndarray]:
    """The masks' arrays in order (dict values or list items), checked to be arrays."""
    if isinstance(masks, list | tuple):
        arrays = list(masks)
    elif isinstance(masks, Mapping):
        arrays = list(masks.values())
    else:
        raise TypeError(
            f"masks must be None, a dict of arrays or a list of arrays, not {type(masks).__name__}."
        )
    for i, value in enumerate(arrays):
        if not isinstance(value, np.ndarray):
            label = _mask_label(masks, i)
            raise TypeError(f"{label} must be a numpy array, not {type(value).__name__}.")
    return arrays


def _mask_label(masks: Any, index: int) -> str:
    """How to name mask ``index`` in a message: its key, or its position."""
    if isinstance(masks, Mapping):
        return f"mask {list(masks)[index]!r}"
    return f"mask #{index}"


def _warp_masks(
    arrays: list[np.ndarray], mx: np.ndarray, my: np.ndarray, border: str
) -> list[np.ndarray]:
    """Nearest-sample masks, stacking 2-D masks of one dtype so OpenCV does 3 or 4 per call."""
    out: list[np.ndarray | None] = [None] * len(arrays)
    groups: dict[np.dtype, list[int]] = {}
    for i, array in enumerate(arrays):
        if array.ndim == 2 and array.dtype.type in _NEAREST_DTYPES:
            groups.setdefault(array.dtype, []).append(i)
        else:
            out[i] = _remap(array, mx, my, "nearest", border, 0.0)
    for indices in groups.values():
        for group in _channel_groups(len(indices)):
            chunk = indices[group]
            if len(chunk) == 1:
                out[chunk[0]] = _remap(arrays[chunk[0]], mx, my, "nearest", border, 0.0)
                continue
            stacked = np.stack([arrays[i] for i in chunk], axis=2)
            warped = _remap(stacked, mx, my, "nearest", border, 0.0)
            for j, i in enumerate(chunk):
                out[i] = warped[..., j]
    return [array for array in out if array is not None]


def warp(
    image: np.ndarray,
    masks: Masks,
    maps: tuple[np.ndarray, np.ndarray],
    *,
    interpolation: str = "bilinear",
    border: str = "constant",
    fill: float = 0,
) -> tuple[np.ndarray, Any]:
    """Resample an image and its masks with the same backward map.

    Args:
        image: (H, W) or (H, W, C) image; see :func:`remap` for dtypes.
        masks: None, a dict ``name -> (H, W) array`` or a list/tuple of (H, W) arrays; label
            values of any dtype (bool included).
        maps: ``(map_x, map_y)``, float32 (H', W'), e.g. from :mod:`cxrseg.augment.geometry`.
        interpolation: Image interpolation, ``"bilinear"`` or ``"bicubic"`` (or ``"nearest"``).
        border: ``"constant"`` or ``"reflect"``, for the image and the masks alike.
        fill: Image value outside the source with ``border="constant"``; masks get 0 there.

    Returns:
        ``(image, masks)``: the warped image (input dtype) and masks in the same container type
        (dict with the same keys, list or tuple in the same order), or None.

    Raises:
        InputError: If a mask's height and width differ from the image's (names the mask).
    """
    if not isinstance(maps, tuple | list) or len(maps) != 2:
        raise TypeError(f"maps must be a (map_x, map_y) pair, not {type(maps).__name__}.")
    mx, my = _check_map_pair(*maps)
    warped = remap(image, mx, my, interpolation, border, fill)
    if masks is None:
        return warped, masks
    arrays = _mask_arrays(masks)
    for i, value in enumerate(arrays):
        if value.shape[:2] != image.shape[:2] or value.ndim not in (2, 3):
            raise InputError(
                f"{_mask_label(masks, i)} has shape {value.shape} but the image is "
                f"{image.shape[:2]}.",
                hint="give masks of the image's height and width, (H, W) or (H, W, K).",
            )
    arrays = _warp_masks(arrays, mx, my, border)
    if isinstance(masks, list | tuple):
        return warped, tuple(arrays) if isinstance(masks, tuple) else arrays
    return warped, dict(zip(masks.keys(), arrays, strict=True))  # type: ignore[union-attr]
