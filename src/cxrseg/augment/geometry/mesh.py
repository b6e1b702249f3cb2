"""Geometry: Augmentor's mesh distortions as exact backward maps (NumPy, no randomness).

Augmentor's ``random_distortion``/``gaussian_distortion`` (0.2.12) cut the image into tiles of
``floor(W / grid_width)`` px with the remainder in the last column (rows likewise), move the
interior vertices and warp with PIL's ``MESH`` transform, which samples at pixel centres
``+0.5``. In that convention the map is bilinear in each tile, so :func:`mesh_map` evaluates it
analytically (the numba kernel of :mod:`.kernels`, or two small matrix products
without numba); the conformance tests check it against Augmentor within 1e-4 px.
Public names are re-exported by :mod:`cxrseg.augment.geometry`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from cxrseg.augment.geometry.maps import (
    MapPair,
    Maps,
    MeshSpec,
    _check_grid,
    _check_size,
    tile_edges,
)

__all__ = [
    "CORNERS",
    "METHODS",
    "gaussian_sigmas",
    "mesh_displacement",
    "mesh_map",
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
    d = d.copy()
    d.flags.writeable = False
    spec = MeshSpec(grid_width, grid_height, d)
    # lazy: start-up time (the kernels import numba, about a second)
    from cxrseg.augment.geometry import kernels

    if kernels.available():
        dx, dy = kernels.evaluate_grid(height, width, kernels.plan(height, width, [spec]))
    else:
        dx, dy = _mesh_fields(height, width, grid_width, grid_height, d, False, identity=True)
    return MapPair(dx, dy, mesh=spec)


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
    shape = _sigma_shape(height, width, grid_width, grid_height, corner, method,
                         float(mex), float(mey), float(sdx), float(sdy))  # fmt: skip
    return shape * float(magnitude)


@lru_cache(maxsize=64)
def _sigma_shape(
    height: int,
    width: int,
    grid_width: int,
    grid_height: int,
    corner: str,
    method: str,
    mex: float,
    mey: float,
    sdx: float,
    sdy: float,
) -> np.ndarray:
    """:func:`gaussian_sigmas` for magnitude 1 (read-only; a pipeline draws with it per sample)."""
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
    out = np.maximum((values - lo) / (hi - lo), 0.01)
    out.flags.writeable = False
    return out
