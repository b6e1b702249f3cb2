"""Geometry: backward maps of the plain ops (identity, affine, flip, elastic), NumPy only.

A *map* is a pair ``(map_x, map_y)`` of float32 arrays of shape (H, W) in the ``cv2.remap``
convention: output pixel ``(x, y)`` takes its value from the source position
``(map_x[y, x], map_y[y, x])``, in pixel-index units (pixel centres at integer positions, the
top-left pixel centre at ``(0, 0)``). The maps made here are :class:`MapPair` tuples that also
remember how they were made, which :mod:`.compose` uses to compose them exactly.
Public names are re-exported by :mod:`cxrseg.augment.geometry`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple, Union

import cv2
import numpy as np

__all__ = [
    "MapPair",
    "Maps",
    "MeshSpec",
    "Step",
    "affine_map",
    "affine_matrix",
    "compose_affine",
    "elastic_map",
    "flip_map",
    "identity_map",
    "tile_edges",
]

Maps = tuple[np.ndarray, np.ndarray]


class MeshSpec(NamedTuple):
    """An Augmentor mesh distortion described by its grid, without its full-size map.

    ``displacements`` is (grid_height - 1, grid_width - 1, 2): the offsets (dx, dy) in pixels
    of the interior vertices (see :func:`cxrseg.augment.geometry.mesh.mesh_map`).
    """

    grid_width: int
    grid_height: int
    displacements: np.ndarray


Step = Union[np.ndarray, MeshSpec, Maps]  # noqa: UP007
"""One op of a chain for :func:`~cxrseg.augment.geometry.compose.chain_map`: a backward 2 x 3 affine
matrix, a :class:`MeshSpec`, or any ``(map_x, map_y)`` pair (e.g. an elastic field)."""


class MapPair(tuple[np.ndarray, np.ndarray]):
    """A ``(map_x, map_y)`` pair that remembers how it was made, so composing stays exact.

    It unpacks and indexes like a plain tuple. ``matrix`` is set for affine maps (identity,
    flips, rotations...), ``mesh`` for mesh maps, ``chain`` for maps of several mesh and affine
    steps (matrices and :class:`MeshSpec`, in the order applied) and ``parts`` for other
    compositions; :func:`compose_maps` uses them to evaluate the first map exactly at the
    second's positions. Maps are never modified in place by this module.
    """

    matrix: np.ndarray | None
    mesh: MeshSpec | None
    parts: tuple[Maps, Maps] | None
    chain: tuple[np.ndarray | MeshSpec, ...] | None

    def __new__(
        cls,
        map_x: np.ndarray,
        map_y: np.ndarray,
        *,
        matrix: np.ndarray | None = None,
        mesh: MeshSpec | None = None,
        parts: tuple[Maps, Maps] | None = None,
        chain: tuple[np.ndarray | MeshSpec, ...] | None = None,
    ) -> MapPair:
        self = super().__new__(cls, (map_x, map_y))
        self.matrix, self.mesh, self.parts, self.chain = matrix, mesh, parts, chain
        return self

    def __getnewargs__(self) -> tuple[np.ndarray, np.ndarray]:
        return self[0], self[1]


def _check_size(height: int, width: int) -> tuple[int, int]:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer number of pixels.")
    return int(height), int(width)


@lru_cache(maxsize=16)
def _rows_and_cols(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only pixel-index vectors: columns (1, W) and rows (H, 1), float32."""
    cols = np.arange(width, dtype=np.float32)[None, :]
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols.flags.writeable = False
    rows.flags.writeable = False
    return cols, rows


def _check_maps(maps: Maps, name: str) -> Maps:
    if not isinstance(maps, tuple | list) or len(maps) != 2:
        raise TypeError(
            f"{name} must be a (map_x, map_y) pair of arrays, not {type(maps).__name__}."
        )
    mx, my = (np.asarray(m, dtype=np.float32) for m in maps)
    if mx.ndim != 2 or mx.shape != my.shape:
        raise ValueError(
            f"{name}: map_x {mx.shape} and map_y {my.shape} must be two arrays of one (H, W) shape."
        )
    return mx, my


def identity_map(height: int, width: int) -> Maps:
    """Map that leaves an image unchanged.

    Returns:
        ``(map_x, map_y)``, float32 (H, W), with ``map_x[y, x] = x`` and ``map_y[y, x] = y``.
    """
    height, width = _check_size(height, width)
    cols, rows = _rows_and_cols(height, width)
    maps = np.repeat(cols, height, axis=0), np.repeat(rows, width, axis=1)
    return MapPair(*maps, matrix=np.eye(3)[:2])


def elastic_map(
    height: int, width: int, alpha: float, sigma: float, seed: int | np.random.Generator
) -> Maps:
    """Simard et al. (2003) elastic deformation: a smoothed random displacement field.

    Each component is uniform in [-1, 1] per pixel (drawn from
    ``np.random.default_rng(seed)``, x first), smoothed by a Gaussian of ``sigma`` px (OpenCV,
    kernel truncated at 4 sigma, reflected border) and multiplied by ``alpha``.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        alpha: Scale of the displacements in pixels (>= 0).
        sigma: Smoothing standard deviation in pixels (> 0).
        seed: Integer seed (replayable) or a NumPy Generator.

    Returns:
        ``(map_x, map_y)``, float32 (H, W).
    """
    height, width = _check_size(height, width)
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha={alpha!r} must be a finite number >= 0 (pixels).")
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma={sigma!r} must be a finite number > 0 (pixels).")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    field = rng.random((2, height, width), dtype=np.float32)
    cols, rows = _rows_and_cols(height, width)
    out = []
    for component, base in zip(field, (cols, rows), strict=True):
        component = component * 2.0 - 1.0
        smooth = cv2.GaussianBlur(component, (0, 0), sigmaX=sigma, sigmaY=sigma,
                                  borderType=cv2.BORDER_REFLECT_101)  # fmt: skip
        smooth *= alpha
        smooth += base
        out.append(smooth)
    return out[0], out[1]


def affine_matrix(
    height: int,
    width: int,
    rotation: float = 0.0,
    scale: float | tuple[float, float] = 1.0,
    shear: float = 0.0,
    translate: tuple[float, float] = (0.0, 0.0),
    center: tuple[float, float] | None = None,
) -> np.ndarray:
    """Backward (output -> source) 2 x 3 matrix of an affine transform about a centre.

    The forward transform moves a source point ``p`` to
    ``center + translate + R(rotation) @ Shear(shear) @ S(scale) @ (p - center)``; the matrix
    returned is its inverse, ready for :func:`affine_map`.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        rotation: Degrees; positive turns the image clockwise on screen (y points down).
        scale: Factor (> 0), or (sx, sy); > 1 enlarges the content (zoom in).
        shear: Degrees; horizontal shear, ``x += tan(shear) * (y - cy)``.
        translate: (tx, ty) in pixels; positive moves the content right and down.
        center: (cx, cy) in pixel-index units; default the image centre
            ``((W - 1) / 2, (H - 1) / 2)``.

    Returns:
        float64 array (2, 3) ``M`` with ``source = M @ (x, y, 1)``.
    """
    height, width = _check_size(height, width)
    if isinstance(scale, tuple | list):
        if len(scale) != 2:
            raise ValueError(f"scale={scale!r} must be one factor or a pair (sx, sy).")
        sx, sy = float(scale[0]), float(scale[1])
    else:
        sx = sy = float(scale)
    if not (math.isfinite(sx) and math.isfinite(sy) and sx > 0 and sy > 0):
        raise ValueError(f"scale={scale!r} must be a positive number or a pair of them.")
    if not math.isfinite(rotation):
        raise ValueError(f"rotation={rotation!r} must be a finite angle in degrees.")
    if not (math.isfinite(shear) and abs(shear) < 90):
        raise ValueError(f"shear={shear!r} must be an angle in degrees strictly within (-90, 90).")
    tx, ty = (float(v) for v in translate)
    cx, cy = ((width - 1) / 2.0, (height - 1) / 2.0) if center is None else center
    a = math.radians(rotation)
    c, s = math.cos(a), math.sin(a)
    rot = np.array([[c, -s], [s, c]])
    sh = np.array([[1.0, math.tan(math.radians(shear))], [0.0, 1.0]])
    linear = rot @ sh @ np.diag([sx, sy])
    forward = np.eye(3)
    forward[:2, :2] = linear
    forward[:2, 2] = np.array([cx + tx, cy + ty]) - linear @ np.array([cx, cy])
    return np.linalg.inv(forward)[:2]


def affine_map(height: int, width: int, matrix: np.ndarray) -> Maps:
    """Map of a backward (output -> source) affine 2 x 3 matrix, e.g. from :func:`affine_matrix`.

    Returns:
        ``(map_x, map_y)``, float32 (H, W).
    """
    height, width = _check_size(height, width)
    m = np.array(matrix, dtype=np.float64)
    if m.shape != (2, 3) or not np.isfinite(m).all():
        raise ValueError(f"matrix has shape {m.shape}; give a finite backward 2 x 3 affine matrix.")
    x = np.arange(width, dtype=np.float64)[None, :]
    y = np.arange(height, dtype=np.float64)[:, None]
    map_x = (m[0, 0] * x + m[0, 2]) + m[0, 1] * y
    map_y = (m[1, 0] * x + m[1, 2]) + m[1, 1] * y
    m.flags.writeable = False
    return MapPair(map_x.astype(np.float32), map_y.astype(np.float32), matrix=m)


def _affine_at(matrix: np.ndarray, bx: np.ndarray, by: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Affine map evaluated at arbitrary positions (float32 arrays)."""
    m = matrix.astype(np.float32)
    return m[0, 0] * bx + m[0, 1] * by + m[0, 2], m[1, 0] * bx + m[1, 1] * by + m[1, 2]


def flip_map(height: int, width: int, horizontal: bool = False, vertical: bool = False) -> Maps:
    """Map that mirrors the image left-right and/or top-bottom."""
    height, width = _check_size(height, width)
    cols, rows = _rows_and_cols(height, width)
    xs = (width - 1) - cols if horizontal else cols
    ys = (height - 1) - rows if vertical else rows
    sx, sy = (-1.0 if horizontal else 1.0), (-1.0 if vertical else 1.0)
    tx, ty = (width - 1.0 if horizontal else 0.0), (height - 1.0 if vertical else 0.0)
    matrix = np.array([[sx, 0.0, tx], [0.0, sy, ty]])
    return MapPair(np.repeat(xs, height, axis=0), np.repeat(ys, width, axis=1), matrix=matrix)


def compose_affine(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Backward matrix of "apply ``first``, then ``second``" for two backward 2 x 3 matrices."""
    a, b = np.eye(3), np.eye(3)
    a[:2] = np.asarray(first, dtype=np.float64)
    b[:2] = np.asarray(second, dtype=np.float64)
    return np.einsum("ij,jk->ik", a, b)[:2]


def _check_grid(length: int, tiles: int, name: str, side: str) -> int:
    if isinstance(tiles, bool) or not isinstance(tiles, int | np.integer) or tiles < 1:
        raise ValueError(f"{name}={tiles!r} must be a positive integer number of tiles.")
    if tiles > length:
        raise ValueError(
            f"{name}={tiles} tiles do not fit in {length} px of image {side}; "
            f"use at most one tile per pixel ({name} <= {length})."
        )
    return int(tiles)


def tile_edges(length: int, tiles: int) -> np.ndarray:
    """Tile edges of Augmentor's grid along one side: ``floor(length / tiles)`` px per tile.

    The last tile takes the remainder; for 512 px and 5 tiles: 0, 102, 204, 306, 408, 512.

    Returns:
        int64 array (tiles + 1,), edges in PIL's continuous coordinates (pixel ``i`` spans
        ``[i, i + 1)``).
    """
    tiles = _check_grid(length, tiles, "tiles", "side")
    edges = np.arange(tiles + 1, dtype=np.int64) * (length // tiles)
    edges[-1] = length
    return edges
