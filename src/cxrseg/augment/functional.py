"""Pure geometry of the spatial augmentations: backward maps, no randomness, NumPy only.

A *map* is a pair ``(map_x, map_y)`` of float32 arrays of shape (H, W) in the ``cv2.remap``
convention: output pixel ``(x, y)`` takes its value from the source position
``(map_x[y, x], map_y[y, x])``, in pixel-index units (pixel centres at integer positions, the
top-left pixel centre at ``(0, 0)``). Every function here takes its parameters explicitly, so a
random transform only draws numbers and any sample can be replayed.

Composition: applying op ``A`` and then op ``B`` to an image gives
``out(p) = a(B(p)) = in(A(B(p)))``, so the map of the chain is ``A``'s map sampled at ``B``'s map
(:func:`compose_maps`, from :mod:`cxrseg.augment.compose`). The data is then resampled once.

Augmentor's mesh convention (``random_distortion``/``gaussian_distortion``; see
``docs`` and the conformance tests): tiles of ``floor(W / grid_width)`` px with the remainder in
the last column (rows likewise), interior vertices displaced, PIL's ``MESH`` transform with
pixel centres at ``+0.5``. In that convention the map is bilinear in each tile, so
:func:`mesh_map` builds it with two small matrix products.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

Maps = tuple[np.ndarray, np.ndarray]


class MapPair(tuple[np.ndarray, np.ndarray]):
    """A ``(map_x, map_y)`` pair that remembers how it was made, so composing stays exact.

    It unpacks and indexes like a plain tuple. ``matrix`` is set for affine maps (identity,
    flips, rotations...), ``mesh`` for mesh maps and ``parts`` for compositions;
    :func:`compose_maps` uses them to evaluate the first map exactly at the second's positions.
    Maps are never modified in place by this module.
    """

    matrix: np.ndarray | None
    mesh: tuple[int, int, np.ndarray] | None
    parts: tuple[Maps, Maps] | None

    def __new__(
        cls,
        map_x: np.ndarray,
        map_y: np.ndarray,
        *,
        matrix: np.ndarray | None = None,
        mesh: tuple[int, int, np.ndarray] | None = None,
        parts: tuple[Maps, Maps] | None = None,
    ) -> MapPair:
        self = super().__new__(cls, (map_x, map_y))
        self.matrix, self.mesh, self.parts = matrix, mesh, parts
        return self

    def __getnewargs__(self) -> tuple[np.ndarray, np.ndarray]:
        return self[0], self[1]


__all__ = [
    "CORNERS",
    "METHODS",
    "MapPair",
    "Maps",
    "affine_map",
    "affine_matrix",
    "compose_affine",
    "compose_maps",
    "elastic_map",
    "flip_map",
    "gaussian_sigmas",
    "identity_map",
    "mesh_displacement",
    "mesh_map",
    "tile_edges",
]

#: Corner remaps of Augmentor's ``gaussian_distortion`` (x0, x1, y0, y1).
CORNERS: dict[str, tuple[float, float, float, float]] = {
    "bell": (0.0, 1.0, 0.0, 1.0),
    "dr": (0.0, 0.5, 0.0, 0.5),
    "dl": (0.5, 1.0, 0.0, 0.5),
    "ur": (0.0, 0.5, 0.5, 1.0),
    "ul": (0.5, 1.0, 0.5, 1.0),
}
#: Methods of ``gaussian_distortion``: largest displacements in the centre or at the edges.
METHODS = ("in", "out")


def _check_size(height: int, width: int) -> tuple[int, int]:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer number of pixels.")
    return int(height), int(width)


def _check_grid(length: int, tiles: int, name: str, side: str) -> int:
    if isinstance(tiles, bool) or not isinstance(tiles, int | np.integer) or tiles < 1:
        raise ValueError(f"{name}={tiles!r} must be a positive integer number of tiles.")
    if tiles > length:
        raise ValueError(
            f"{name}={tiles} tiles do not fit in {length} px of image {side}; "
            f"use at most one tile per pixel ({name} <= {length})."
        )
    return int(tiles)


@lru_cache(maxsize=16)
def _rows_and_cols(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only pixel-index vectors: columns (1, W) and rows (H, 1), float32."""
    cols = np.arange(width, dtype=np.float32)[None, :]
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols.flags.writeable = False
    rows.flags.writeable = False
    return cols, rows


def identity_map(height: int, width: int) -> Maps:
    """Map that leaves an image unchanged.

    Returns:
        ``(map_x, map_y)``, float32 (H, W), with ``map_x[y, x] = x`` and ``map_y[y, x] = y``.
    """
    height, width = _check_size(height, width)
    cols, rows = _rows_and_cols(height, width)
    maps = np.repeat(cols, height, axis=0), np.repeat(rows, width, axis=1)
    return MapPair(*maps, matrix=np.eye(3)[:2])


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


@lru_cache(maxsize=32)
def _hat_weights(length: int, tiles: int, at_edges: bool = False) -> np.ndarray:
    """Weights (n, tiles - 1) of the interior vertices along one side.

    Pixel ``i`` in the tile ``[e_k, e_k+1)`` sits at ``c = i + 0.5`` (PIL's pixel centre), at
    ``s = (c - e_k) / (e_k+1 - e_k)`` of it, and gets ``1 - s`` of vertex ``k`` and ``s`` of
    vertex ``k + 1``; n = length. With ``at_edges`` the positions are the pixel edges
    ``c = 0, 1, ..., length`` instead (n = length + 1): a grid that contains every vertex, on
    which bilinear interpolation reproduces the mesh exactly. Border vertices never move, so
    their columns are dropped.
    """
    edges = tile_edges(length, tiles).astype(np.float64)
    if at_edges:
        positions = np.arange(length + 1, dtype=np.float64)
    else:
        positions = np.arange(length, dtype=np.float64) + 0.5
    k = np.clip(np.searchsorted(edges, positions, side="right") - 1, 0, tiles - 1)
    s = (positions - edges[k]) / (edges[k + 1] - edges[k])
    weights = np.zeros((positions.size, tiles + 1), dtype=np.float64)
    weights[np.arange(positions.size), k] = 1.0 - s
    weights[np.arange(positions.size), k + 1] = s
    out = np.ascontiguousarray(weights[:, 1:-1], dtype=np.float32)
    out.flags.writeable = False
    return out


def _check_displacements(
    displacements: np.ndarray, grid_width: int, grid_height: int
) -> np.ndarray:
    d = np.asarray(displacements, dtype=np.float32)
    expected = (grid_height - 1, grid_width - 1, 2)
    if d.shape != expected:
        raise ValueError(
            f"displacements have shape {d.shape}, expected {expected}: one (dx, dy) per interior "
            f"vertex of a {grid_width} x {grid_height} grid, as (grid_height-1, grid_width-1, 2)."
        )
    if not np.isfinite(d).all():
        raise ValueError("displacements contain NaN or infinity; give finite pixel offsets.")
    return d


def mesh_displacement(
    height: int,
    width: int,
    grid_width: int,
    grid_height: int,
    displacements: np.ndarray,
    at_edges: bool = False,
) -> Maps:
    """Displacement field ``(dx, dy)`` of :func:`mesh_map`: the map minus the identity.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        grid_width: Number of tile columns (>= 1, <= width).
        grid_height: Number of tile rows (>= 1, <= height).
        displacements: (grid_height - 1, grid_width - 1, 2) offsets (dx, dy) in pixels of the
            interior vertices, row-major.
        at_edges: Sample at the pixel edges (pixel-index positions -0.5, 0.5, ...,
            size - 0.5) instead of the pixel centres: a (H + 1, W + 1) field that contains
            every vertex, so bilinear interpolation of it is exact.

    Returns:
        ``(dx, dy)``, float32 (H, W), or (H + 1, W + 1) with ``at_edges``.
    """
    args = _mesh_args(height, width, grid_width, grid_height, displacements)
    return _mesh_fields(*args, at_edges, identity=False)


def _mesh_args(
    height: int, width: int, grid_width: int, grid_height: int, displacements: np.ndarray
) -> tuple[int, int, int, int, np.ndarray]:
    height, width = _check_size(height, width)
    grid_width = _check_grid(width, grid_width, "grid_width", "width")
    grid_height = _check_grid(height, grid_height, "grid_height", "height")
    d = _check_displacements(displacements, grid_width, grid_height)
    return height, width, grid_width, grid_height, d


def _mesh_fields(
    height: int,
    width: int,
    grid_width: int,
    grid_height: int,
    d: np.ndarray,
    at_edges: bool,
    identity: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """``wy @ d @ wx.T`` per component (+ the pixel indices with ``identity``), float32.

    The identity is folded into the product as one more rank-1 term. ``einsum`` (plain C
    loops) is used rather than ``@``: with so few terms BLAS gains nothing, and its threads
    stall for milliseconds when the CPUs are busy.
    """
    wy = _hat_weights(height, grid_height, at_edges)  # (h, k_y)
    k = grid_width - 1
    out = []
    for c in range(2):
        if identity:
            right = _hat_weights_t(width, grid_width, at_edges, "index" if c == 0 else "ones")
        else:
            right = _hat_weights_t(width, grid_width, at_edges)
        left = np.empty((wy.shape[0], right.shape[0]), dtype=np.float32)
        left[:, :k] = np.einsum("hi,ij->hj", wy, d[..., c]) if d.size else 0.0
        if identity:  # x = 1 * index row; y = rows * ones row
            left[:, k] = 1.0 if c == 0 else np.arange(height, dtype=np.float32)
        if left.shape[1] == 0:
            out.append(np.zeros((wy.shape[0], right.shape[1]), dtype=np.float32))
        else:
            out.append(np.einsum("hk,kw->hw", left, right))
    return out[0], out[1]


@lru_cache(maxsize=64)
def _hat_weights_t(length: int, tiles: int, at_edges: bool, extra: str = "") -> np.ndarray:
    """Transposed :func:`_hat_weights` (k, n), with one more row of pixel ``index`` or ``ones``."""
    rows = [_hat_weights(length, tiles, at_edges).T]
    if extra:
        values = np.arange(length) if extra == "index" else np.ones(length)
        rows.append(values[None, :].astype(np.float32))
    out = np.ascontiguousarray(np.vstack(rows), dtype=np.float32)
    out.flags.writeable = False
    return out


def mesh_map(
    height: int, width: int, grid_width: int, grid_height: int, displacements: np.ndarray
) -> Maps:
    """Backward map of Augmentor's mesh distortion with the given vertex displacements.

    This is exactly the map PIL's ``Image.transform(size, Image.MESH, mesh)`` uses for
    Augmentor's mesh (quads NW, SW, SE, NE; source position bilinear in each tile, evaluated at
    pixel centres ``+0.5``), shifted by -0.5 px to the pixel-index convention. Tile sizes follow
    :func:`tile_edges`. Border vertices stay fixed; a vertex displaced by ``(dx, dy)`` makes the
    output at that vertex show the source at ``vertex + (dx, dy)``.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        grid_width: Number of tile columns (>= 1, <= width).
        grid_height: Number of tile rows (>= 1, <= height).
        displacements: (grid_height - 1, grid_width - 1, 2) offsets (dx, dy) in pixels of the
            interior vertices, in row-major order (Augmentor's draw order).

    Returns:
        ``(map_x, map_y)``, float32 (H, W).

    Raises:
        ValueError: If sizes are not positive, the grid has more tiles than pixels, or the
            displacements have the wrong shape or are not finite.
    """
    height, width, grid_width, grid_height, d = _mesh_args(
        height, width, grid_width, grid_height, displacements
    )
    dx, dy = _mesh_fields(height, width, grid_width, grid_height, d, False, identity=True)
    d = d.copy()
    d.flags.writeable = False
    return MapPair(dx, dy, mesh=(grid_width, grid_height, d))


def gaussian_sigmas(
    height: int,
    width: int,
    grid_width: int,
    grid_height: int,
    magnitude: float,
    corner: str = "bell",
    method: str = "in",
    mex: float = 0.5,
    mey: float = 0.5,
    sdx: float = 0.05,
    sdy: float = 0.05,
) -> np.ndarray:
    """Per-vertex standard deviations (pixels) of Augmentor's ``gaussian_distortion``.

    ``sigma = magnitude * max(0.01, (f(nx, ny) - min f) / (max f - min f))`` with
    ``f(x, y) = c * exp(-((x - mex)^2 / sdx + (y - mey)^2 / sdy)) + max(0, -c) - max(0, c)``,
    ``c = +1`` for ``"in"`` and ``-1`` for ``"out"``, ``(nx, ny)`` the vertex position as a
    fraction of the image size remapped by ``corner`` (:data:`CORNERS`), and min/max taken over
    NumPy's 50 x 50 ``linspace(0, 1)`` grid, as Augmentor does. ``sdx``/``sdy`` divide the squared
    distance directly (they act like ``2 * sigma^2``).

    Difference from Augmentor: sigma is evaluated at the undisplaced vertex. Augmentor evaluates
    it at the vertex's current position, which differs from the undisplaced one only from the
    second image of a list on, through its accumulation bug (masks get extra displacements).

    Returns:
        float64 array (grid_height - 1, grid_width - 1).

    Raises:
        ValueError: For an unknown ``corner`` or ``method``, a negative magnitude or a
            non-positive ``sdx``/``sdy``.
    """
    height, width = _check_size(height, width)
    grid_width = _check_grid(width, grid_width, "grid_width", "width")
    grid_height = _check_grid(height, grid_height, "grid_height", "height")
    if corner not in CORNERS:
        raise ValueError(f"corner={corner!r} is unknown; use one of {sorted(CORNERS)}.")
    if method not in METHODS:
        raise ValueError(f"method={method!r} is unknown; use 'in' or 'out'.")
    if not math.isfinite(magnitude) or magnitude < 0:
        raise ValueError(f"magnitude={magnitude!r} must be a finite number >= 0 (pixels).")
    if not (sdx > 0 and sdy > 0):
        raise ValueError(f"sdx={sdx!r} and sdy={sdy!r} must both be > 0.")
    const = -1.0 if method == "out" else 1.0

    def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        bell = np.exp(-(((x - mex) ** 2) / sdx + ((y - mey) ** 2) / sdy))
        return const * bell + max(0.0, -const) - max(0.0, const)

    grid = np.linspace(0.0, 1.0)
    z = f(*np.meshgrid(grid, grid))
    lo, hi = float(z.min()), float(z.max())
    c0, c1, c2, c3 = CORNERS[corner]
    x = tile_edges(width, grid_width)[1:-1] / width
    y = tile_edges(height, grid_height)[1:-1] / height
    nx = x * (c1 - c0) + c0
    ny = y * (c3 - c2) + c2
    values = f(nx[None, :], ny[:, None])
    return np.maximum((values - lo) / (hi - lo), 0.01) * float(magnitude)


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


# Composition lives in its own module; it is part of this module's API.
from cxrseg.augment.compose import compose_affine, compose_maps  # noqa: E402
