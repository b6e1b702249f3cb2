"""Read a case's pixels (the image and one binary mask per structure) and fit them to a size.

Mask value rules (shared by :func:`load_case` and :func:`cxrseg.data.validate`):

* Binary masks (datasets without named labels): values within {0, 1} or within {0, 255};
  any non-zero pixel is foreground. All-zero masks are allowed (a warning in validation).
* Label-index masks (labels named in ``dataset.json`` or ``discover(labels=...)``): values
  within {0} and the named label values; structure ``name`` is the pixels equal to its value.
* Anything else, e.g. {0, 7, 255}, is an error naming the file and the values found.

A mask must have its image's size, with one exception: in the ``jsrt`` layout, SCR masks are
stored at 1024 x 1024 for 2048 x 2048 JSRT images, so a mask smaller by the same whole factor
on both axes is enlarged (nearest neighbour) to the image size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import cv2
import numpy as np

from cxrseg.data.dataset import Case, Dataset
from cxrseg.errors import InputError
from cxrseg.io import read_image, read_mask

#: Smallest image side accepted for training, augmentation and prediction: below it a chest
#: radiograph has no anatomy left (the lungs would be a few pixels wide), so a smaller file
#: is a thumbnail, an icon or a mistake, and silently upscaling it would train on noise.
MIN_SIDE = 32


def check_radiograph_size(shape: tuple[int, ...], path: Path) -> None:
    """Refuse an image smaller than :data:`MIN_SIDE` on a side.

    Raises:
        InputError: Naming the file, its size and the minimum.
    """
    if min(shape[:2]) < MIN_SIDE:
        raise InputError(
            f"is {shape[1]} x {shape[0]} pixels; a chest radiograph needs at least "
            f"{MIN_SIDE} x {MIN_SIDE} to show any anatomy",
            path=path,
            hint="remove the file (a thumbnail or icon?) or replace it with the full image.",
        )


_BINARY_SETS = (frozenset({0, 1}), frozenset({0, 255}))


def mask_values(mask: np.ndarray) -> list[int]:
    """Distinct values of an integer mask, ascending."""
    if mask.dtype == np.uint8:
        return np.flatnonzero(np.bincount(mask.ravel(), minlength=256)).tolist()
    return [int(v) for v in np.unique(mask)]


def _format_values(values: Iterable[int], limit: int = 8) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    more = f", ... ({len(values)} values)" if len(values) > limit else ""
    return "{" + shown + more + "}"


def check_mask_values(
    values: Iterable[int], labels: Mapping[str, int] | None
) -> tuple[str, str] | None:
    """Say what is wrong with a mask's values, or return ``None`` when they are allowed.

    Args:
        values: Distinct values found in the mask.
        labels: Structure -> value for label-index masks; ``None`` for binary masks.

    Returns:
        ``None``, or ``(message, fix)`` where the message names the values found.
    """
    found = frozenset(int(v) for v in values)
    if labels is not None:
        allowed = frozenset({0, *labels.values()})
        if found <= allowed:
            return None
        extra = sorted(found - allowed)
        return (
            f"mask values {_format_values(sorted(found))} include {_format_values(extra)}, "
            f"which are not labels of this dataset ({dict(labels)})",
            "add them to the labels in dataset.json, or correct the mask.",
        )
    if any(found <= allowed for allowed in _BINARY_SETS):
        return None
    largest = max(found)
    if len(found) > 2 and largest < 255 and largest <= 32:
        names = ", ".join(f'"label_{v}": {v}' for v in range(1, largest + 1))
        return (
            f"mask values {_format_values(sorted(found))} look like label indices, but the "
            "dataset names no labels",
            f'write dataset.json with {{"labels": {{"background": 0, {names}}}}} next to '
            "images/ (or pass labels=) to use one structure per label.",
        )
    return (
        f"mask values {_format_values(sorted(found))} are not binary (expected 0/1 or 0/255)",
        "re-export the mask with 0 for background and 255 (or 1) for the structure; "
        "a mask saved with smoothing or JPEG compression needs thresholding.",
    )


def scale_factor(mask_shape: tuple[int, ...], image_shape: tuple[int, ...], layout: str) -> int:
    """Whole factor by which a mask is enlarged to its image: 1 when sizes match, 0 when refused.

    Only the ``jsrt`` layout (SCR masks at half the JSRT resolution) allows a factor above 1.
    """
    if tuple(mask_shape) == tuple(image_shape):
        return 1
    if layout != "jsrt" or len(mask_shape) != 2 or min(mask_shape) < 1:
        return 0
    factor = image_shape[0] // mask_shape[0]
    scaled = (mask_shape[0] * factor, mask_shape[1] * factor)
    return factor if factor >= 2 and scaled == tuple(image_shape) else 0


def size_mismatch(
    mask_shape: tuple[int, ...], image_shape: tuple[int, ...], image_name: str
) -> tuple[str, str]:
    """``(message, fix)`` for a mask whose size differs from its image's."""
    return (
        f"mask is {mask_shape[0]}x{mask_shape[1]} but its image {image_name} is "
        f"{image_shape[0]}x{image_shape[1]} (HxW)",
        "resample the mask to the image size (nearest neighbour) or re-export it from the "
        "original annotation.",
    )


def foreground(mask: np.ndarray, structure: str, labels: Mapping[str, int] | None) -> np.ndarray:
    """Boolean (H, W) foreground of ``structure`` in one mask file's pixels."""
    if labels is not None:
        return np.asarray(mask == labels[structure])
    return np.asarray(mask != 0)


def load_case(case: Case, dataset: Dataset) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read a case's image and one binary mask per structure of the dataset.

    Args:
        case: The case, from ``dataset.cases``.
        dataset: The dataset it belongs to (gives structure names and label values).

    Returns:
        The float32 (H, W) image in [0, 1] and, for each structure in ``dataset.structures``
        order, a uint8 (H, W) mask of 0/1: the union of the structure's files (label-index
        masks: the pixels equal to the structure's label).

    Raises:
        InputError: A mask with values outside the rules above, or of another size than the
            image; unreadable files raise the reader's error.
    """
    image, _info = read_image(case.image)
    check_radiograph_size(image.shape, case.image)
    pixels: dict[Path, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    for structure in dataset.structures:
        union = np.zeros(image.shape, dtype=bool)
        for path in case.masks.get(structure, []):
            if path not in pixels:
                mask = read_mask(path)
                factor = scale_factor(mask.shape, image.shape, dataset.layout)
                if factor == 0:
                    message, fix = size_mismatch(mask.shape, image.shape, case.image.name)
                    raise InputError(message, path=path, hint=fix)
                problem = check_mask_values(mask_values(mask), dataset.labels)
                if problem is not None:
                    raise InputError(problem[0], path=path, hint=problem[1])
                if factor > 1:
                    mask = np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)
                pixels[path] = mask
            union |= foreground(pixels[path], structure, dataset.labels)
        masks[structure] = union.astype(np.uint8)
    return image, masks


#: How :func:`resize_pair` fits a case into the square network input.
RESIZE_MODES = ("squash", "letterbox")


def resize_pair(
    image: np.ndarray, masks: dict[str, np.ndarray], size: int, mode: str = "squash"
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Resize an image (area/bilinear) and its masks (nearest) to ``size`` x ``size``.

    Args:
        image: float32 (H, W).
        masks: name -> uint8 (H, W).
        size: Output side in pixels.
        mode: ``squash`` (ignore the aspect ratio) or ``letterbox`` (keep it, pad with 0).
    """
    height, width = image.shape[:2]
    if mode == "squash":
        inner = (size, size)
    else:
        scale = size / max(height, width)
        inner = (max(1, round(height * scale)), max(1, round(width * scale)))
    if inner != (height, width):
        shrink = inner[0] < height or inner[1] < width
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        image = cv2.resize(image, inner[::-1], interpolation=interp)
        masks = {
            k: cv2.resize(m, inner[::-1], interpolation=cv2.INTER_NEAREST_EXACT)
            for k, m in masks.items()
        }
    if inner != (size, size):
        top, left = (size - inner[0]) // 2, (size - inner[1]) // 2
        pad = ((top, size - inner[0] - top), (left, size - inner[1] - left))
        image = np.pad(image, pad)
        masks = {k: np.pad(m, pad) for k, m in masks.items()}
    return np.clip(image, 0.0, 1.0).astype(np.float32), masks
