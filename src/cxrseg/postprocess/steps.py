"""The post-processing steps of one mask, and a structure's chosen sequence of them.

:func:`keep_largest_components`, :func:`remove_small_components`, :func:`fill_holes` and
:func:`smooth` each take a mask (H, W) and return a new uint8 0/1 mask; :class:`PostprocessConfig`
says which of them a structure gets, and :func:`postprocess_mask` applies them in that order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

from cxrseg.metrics import binary_mask

__all__ = [
    "PostprocessConfig",
    "fill_holes",
    "keep_largest_components",
    "postprocess_mask",
    "postprocess_masks",
    "remove_small_components",
    "smooth",
]

logger = logging.getLogger(__name__)


def _binary(mask: np.ndarray) -> np.ndarray:
    """Return the mask as a contiguous uint8 0/1 (H, W) array."""
    return np.ascontiguousarray(binary_mask(mask), dtype=np.uint8)


def _check_int(value: Any, name: str, minimum: int, hint: str) -> int:
    """Return ``value`` if it is an integer (not a bool) >= ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}; {hint}")
    return int(value)


def _check_fraction(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a number in (0, 1], else raise."""
    ok = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    if not (ok and 0.0 < float(value) <= 1.0):
        raise ValueError(
            f"{name} must be in (0, 1], got {value!r}; 0.1 removes components under a tenth "
            "of the largest one."
        )
    return float(value)


def _components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Label the components of a 0/1 mask; return labels (H, W) and areas indexed by label - 1."""
    if connectivity not in (4, 8):
        raise ValueError(
            f"connectivity must be 4 or 8, got {connectivity!r}; "
            "use 8 (diagonal neighbours touch) unless you need 4."
        )
    _, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask, connectivity=connectivity, ltype=cv2.CV_32S
    )
    return labels, stats[1:, cv2.CC_STAT_AREA].astype(np.int64)


def _keep_labels(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Mask of the pixels whose label (1-based) is selected by the boolean ``keep`` per label."""
    lookup = np.concatenate(([0], keep.astype(np.uint8)))
    return lookup[labels]


def keep_largest_components(mask: np.ndarray, k: int = 1, *, connectivity: int = 8) -> np.ndarray:
    """Keep the ``k`` largest connected components of a mask.

    Components of equal area are ranked by their first pixel in row-major order.

    Args:
        mask: Mask (H, W); non-zero is foreground.
        k: Number of components to keep (2 for a structure holding both lungs).
        connectivity: 8 (default) or 4.

    Returns:
        uint8 0/1 mask (H, W); the input is not modified.
    """
    k = _check_int(k, "k", 1, "use k=2 for a structure holding both lungs.")
    binary = _binary(mask)
    labels, areas = _components(binary, connectivity)
    if areas.size <= k:
        return binary
    order = np.argsort(-areas, kind="stable")
    keep = np.zeros(areas.size, dtype=bool)
    keep[order[:k]] = True
    return _keep_labels(labels, keep)


def remove_small_components(
    mask: np.ndarray, min_fraction: float = 0.1, *, connectivity: int = 8
) -> np.ndarray:
    """Remove components smaller than ``min_fraction`` times the area of the largest one.

    The largest component is always kept; so is every component of at least
    ``min_fraction * largest_area`` pixels.

    Args:
        mask: Mask (H, W); non-zero is foreground.
        min_fraction: Threshold in (0, 1], relative to the largest component's area.
        connectivity: 8 (default) or 4.

    Returns:
        uint8 0/1 mask (H, W); the input is not modified.
    """
    min_fraction = _check_fraction(min_fraction, "min_fraction")
    binary = _binary(mask)
    labels, areas = _components(binary, connectivity)
    if areas.size <= 1:
        return binary
    return _keep_labels(labels, areas >= min_fraction * areas.max())


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill holes: background regions that do not reach the image border.

    Background connectivity is 4 (the dual of 8-connected foreground), as in
    ``scipy.ndimage.binary_fill_holes``; a notch open to the outside is not a hole.

    Args:
        mask: Mask (H, W); non-zero is foreground.

    Returns:
        uint8 0/1 mask (H, W); the input is not modified.
    """
    binary = _binary(mask)
    # Pad with background so that all outside background is one region, then flood it from a
    # corner; what the flood does not reach is foreground or a hole.
    padded = np.pad(binary, 1)
    flood_mask = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), dtype=np.uint8)
    cv2.floodFill(padded, flood_mask, (0, 0), 2, flags=4)
    return (padded[1:-1, 1:-1] != 2).astype(np.uint8)


def _disk(radius: int) -> np.ndarray:
    """Disk structuring element: pixels with ``x**2 + y**2 <= radius**2``."""
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def smooth(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """Smooth a mask: morphological opening, then closing, with a disk of ``radius`` pixels.

    Opening removes spurs and specks thinner than the disk; closing fills gaps and notches
    narrower than it. Outside the image neither erodes nor dilates (OpenCV's default border),
    so a mask touching the edge is not eaten from the edge. ``radius=0`` returns a copy.

    Args:
        mask: Mask (H, W); non-zero is foreground.
        radius: Disk radius in pixels, >= 0.

    Returns:
        uint8 0/1 mask (H, W); the input is not modified.
    """
    radius = _check_int(radius, "radius", 0, "2 is a mild smoothing, 0 none.")
    binary = _binary(mask)
    if radius == 0:
        return binary
    disk = _disk(radius)
    opened = cv2.morphologyEx(binary, cv2.MORPH_OPEN, disk)
    return cv2.morphologyEx(opened, cv2.MORPH_CLOSE, disk)


@dataclass
class PostprocessConfig:
    """Post-processing of one structure; every step is off by default.

    Attributes:
        keep_components: Keep this many largest components, or None to skip the step.
        min_fraction: Remove components under this fraction of the largest, or None to skip.
        fill_holes: Fill holes.
        smooth_radius: Disk radius of the opening+closing, 0 to skip.
    """

    keep_components: int | None = None
    min_fraction: float | None = None
    fill_holes: bool = False
    smooth_radius: int = 0

    def __post_init__(self) -> None:
        if self.keep_components is not None:
            _check_int(self.keep_components, "keep_components", 1, "use 2 for both lungs.")
        if self.min_fraction is not None:
            _check_fraction(self.min_fraction, "min_fraction")
        if not isinstance(self.fill_holes, bool):
            raise TypeError(f"fill_holes must be True or False, got {self.fill_holes!r}.")
        _check_int(self.smooth_radius, "smooth_radius", 0, "0 disables smoothing.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PostprocessConfig:
        """Build from :meth:`to_dict` output; missing fields take their defaults.

        Raises:
            ValueError: If a key is not a field (the message lists the valid ones).
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown post-processing option(s) {unknown}; valid options are {sorted(names)}."
            )
        return cls(**dict(data))


def postprocess_mask(mask: np.ndarray, config: PostprocessConfig) -> np.ndarray:
    """Apply the enabled steps of ``config`` to one mask, in the module's order.

    Args:
        mask: Mask (H, W); non-zero is foreground.
        config: Steps to apply.

    Returns:
        uint8 0/1 mask (H, W); the input is not modified.
    """
    out = _binary(mask)
    if config.keep_components is not None:
        out = keep_largest_components(out, config.keep_components)
    if config.min_fraction is not None:
        out = remove_small_components(out, config.min_fraction)
    if config.fill_holes:
        out = fill_holes(out)
    if config.smooth_radius > 0:
        out = smooth(out, config.smooth_radius)
    return out


def postprocess_masks(
    masks: Mapping[str, np.ndarray], config: Mapping[str, PostprocessConfig]
) -> dict[str, np.ndarray]:
    """Post-process every structure of one image.

    Structures without an entry in ``config`` are returned unchanged (as uint8 0/1).

    Args:
        masks: Mask (H, W) per structure name.
        config: Post-processing per structure name.

    Returns:
        uint8 0/1 mask (H, W) per structure, in the order of ``masks``.

    Raises:
        ValueError: If ``config`` names a structure that ``masks`` lacks.
    """
    missing = sorted(set(config) - set(masks))
    if missing:
        raise ValueError(
            f"post-processing configured for structure(s) {missing} that the masks lack "
            f"(structures: {list(masks)}); fix the structure names in the configuration."
        )
    return {
        name: postprocess_mask(mask, config.get(name, PostprocessConfig()))
        for name, mask in masks.items()
    }
