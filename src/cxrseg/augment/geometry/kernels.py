"""Geometry: numba kernels, one pass per pixel for the map of a chain of mesh/affine steps.

Every mesh map (Augmentor's, see :mod:`cxrseg.augment.geometry.mesh`) and every affine map is
*piecewise bilinear*: the plane is cut into rectangular cells by boundaries along x and y, and
in each cell the source position is ``c0 + c1 s + c2 t + c3 s t`` with ``(s, t)`` the position
relative to the cell's origin. Such a map is a :class:`Patches`. An affine step applied before a
mesh step folds into the mesh's coefficients exactly, so a chain of meshes and affines becomes
a short list of patches (:func:`plan`), and its map is evaluated analytically, per pixel:

* the op applied last is evaluated on the pixel grid, where along a row it is linear in each of
  its cells;
* the op before it is evaluated at those positions: along a run of pixels that stays in one of
  its cells (the run ends are where a linear position crosses a cell boundary, solved exactly)
  the result is a quadratic in the pixel index, written with two multiply-adds per pixel;
* any earlier ops are evaluated at the resulting positions pixel by pixel.

No full-size intermediate map is made and nothing is interpolated, so the result is the exact
sequential map up to float32 rounding (about 1e-4 px). Coordinates inside the patches are *edge
coordinates* ``u = x + 0.5`` (PIL's convention, in which tile edges are whole numbers); output
positions are pixel indices (``cv2.remap`` convention).

The kernels need numba (compiled on first use and cached on disk); :func:`available` says
whether it is installed. Without it, :mod:`.compose` falls back to NumPy/OpenCV.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from cxrseg.augment.geometry.maps import MeshSpec, compose_affine, tile_edges

__all__ = [
    "Patches",
    "affine_patches",
    "available",
    "evaluate_at",
    "evaluate_grid",
    "mesh_patches",
    "plan",
]

logger = logging.getLogger(__name__)


class Patches(NamedTuple):
    """A piecewise-bilinear backward map.

    Cells are ``[bounds_x[i - 1], bounds_x[i])`` along x (the first and last reach infinity),
    likewise along y. In cell ``(j, i)`` (row j, column i) the source position, in pixel-index
    units, of the point at edge coordinates ``(u, w)`` is, per component ``c`` (0: x, 1: y),
    ``coef[j, i, c] @ (1, s, t, s * t)`` with ``s = u - origin_x[i]``, ``t = w - origin_y[j]``.

    Attributes:
        bounds_x: float64 (nx - 1,), increasing cell boundaries along x (edge coordinates).
        bounds_y: float64 (ny - 1,).
        origin_x: float64 (nx,), finite origin of each cell column.
        origin_y: float64 (ny,).
        coef: float64 (ny, nx, 2, 4).
    """

    bounds_x: np.ndarray
    bounds_y: np.ndarray
    origin_x: np.ndarray
    origin_y: np.ndarray
    coef: np.ndarray


def affine_patches(matrix: np.ndarray) -> Patches:
    """One cell covering the plane: ``source = matrix @ (u - 0.5, w - 0.5, 1)``."""
    m = np.asarray(matrix, dtype=np.float64)
    coef = np.zeros((1, 1, 2, 4))
    coef[0, 0, :, 0] = m[:, 2] - 0.5 * (m[:, 0] + m[:, 1])
    coef[0, 0, :, 1] = m[:, 0]
    coef[0, 0, :, 2] = m[:, 1]
    empty = np.zeros(0)
    return Patches(empty, empty, np.zeros(1), np.zeros(1), coef)


_IDENTITY = affine_patches(np.eye(3)[:2])


@lru_cache(maxsize=32)
def _mesh_frame(height: int, width: int, grid_width: int, grid_height: int) -> Patches:
    """The patches of an undisplaced mesh: the identity, cut into the tiles.

    Cells: outside left, the tiles, outside right (likewise in y); tile origins are the tiles'
    top-left edges. Shared by every mesh of this size: :func:`mesh_patches` copies ``coef``
    before changing it. (Not marked read-only: numba compiles read-only arrays separately.)
    """
    ex = tile_edges(width, grid_width).astype(np.float64)
    ey = tile_edges(height, grid_height).astype(np.float64)
    origin_x = np.concatenate([[0.0], ex])
    origin_y = np.concatenate([[0.0], ey])
    coef = np.zeros((grid_height + 2, grid_width + 2, 2, 4))
    coef[:, :, 0, 0] = origin_x[None, :] - 0.5
    coef[:, :, 0, 1] = 1.0
    coef[:, :, 1, 0] = origin_y[:, None] - 0.5
    coef[:, :, 1, 2] = 1.0
    return Patches(ex, ey, origin_x, origin_y, coef)


def mesh_patches(height: int, width: int, mesh: MeshSpec) -> Patches:
    """Cells of Augmentor's mesh (tiles from :func:`~cxrseg.augment.geometry.maps.tile_edges`).

    Each tile interpolates its four vertex positions bilinearly (PIL's ``MESH`` transform).
    Outside the image the map is the identity: border vertices never move, so the mesh's
    displacement is 0 on the image border and is continued as 0 beyond it.
    """
    grid_width, grid_height, d = mesh
    ex, ey, origin_x, origin_y, coef = _mesh_frame(height, width, grid_width, grid_height)
    coef = coef.copy()
    _add_displacements(coef, np.ascontiguousarray(d, dtype=np.float64), ex, ey)
    return Patches(ex, ey, origin_x, origin_y, coef)


def _then(matrix: np.ndarray, patches: Patches) -> Patches:
    """Patches of ``matrix`` applied to the positions ``patches`` gives (exact: linear)."""
    m = np.asarray(matrix, dtype=np.float64)
    coef = np.ascontiguousarray(np.einsum("ck,jikn->jicn", m[:, :2], patches.coef))
    coef[..., 0] += m[:, 2]
    return patches._replace(coef=coef)


def plan(height: int, width: int, steps: Sequence[np.ndarray | MeshSpec]) -> list[Patches]:
    """Patches of a chain, in the order the ops are applied, with every affine folded in.

    An affine step is folded into the next mesh step (the mesh's source positions are then
    transformed by it); consecutive affines are merged; an affine that ends the chain stays
    a one-cell step.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        steps: Backward 2 x 3 matrices and :class:`MeshSpec` in the order applied (checked
            by the caller).

    Returns:
        At least one :class:`Patches`, first-applied first.
    """
    out: list[Patches] = []
    pending: np.ndarray | None = None
    for step in steps:
        if isinstance(step, MeshSpec):
            patches = mesh_patches(height, width, step)
            out.append(patches if pending is None else _then(pending, patches))
            pending = None
        else:
            pending = step if pending is None else compose_affine(pending, step)
    if pending is not None or not out:
        out.append(affine_patches(np.eye(3)[:2] if pending is None else pending))
    return out


# --- kernels ------------------------------------------------------------------------------

numba: Any
try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; this is the safety net
    numba = None
    logger.info("numba is not installed; chains of spatial ops use the NumPy/OpenCV path.")


def available() -> bool:
    """Whether the numba kernels can run (numba importable)."""
    return numba is not None


def _jit(function: Any) -> Any:
    """Compile with numba (lazily, on first call; cached on disk), or leave as Python."""
    if numba is None:
        return function
    return numba.njit(cache=True, nogil=True, fastmath=False)(function)


@_jit
def _cell(bounds, value, start):
    """Index of the cell holding ``value`` (the number of boundaries at or below it), searched
    from cell ``start``: from a neighbouring cell that is a step or two."""
    i = start
    while i < bounds.size and value >= bounds[i]:
        i += 1
    while i > 0 and value < bounds[i - 1]:
        i -= 1
    return i


@_jit
def _run_end(end, x, bound, a, b, inv_b):
    """First pixel after ``x`` (at most ``end``) where ``a + b * pixel`` passes ``bound``.

    Rising (``b > 0``): the first pixel at or above ``bound``; falling: the first below it.
    ``inv_b`` is ``1 / b``.
    """
    where = (bound - a) * inv_b
    cross = np.ceil(where) if b > 0.0 else np.floor(where) + 1.0
    if not cross > x:  # rounding right at the boundary (or NaN): both cells agree there
        cross = x + 1.0
    return int(cross) if cross < end else end


@_jit
def _add_displacements(coef, d, ex, ey):
    """Add a mesh's vertex displacements ``d`` (gh - 1, gw - 1, 2) to the tiles of ``coef``.

    The undisplaced mesh is the identity, so each tile just gains the bilinear interpolant of
    its corners' displacements: corner value, x and y slopes, and the twist.
    """
    rows, cols = d.shape[0] + 1, d.shape[1] + 1
    for a in range(rows):
        inv_h = 1.0 / (ey[a + 1] - ey[a])
        for b in range(cols):
            inv_w = 1.0 / (ex[b + 1] - ex[b])
            for c in range(2):
                d00 = d[a - 1, b - 1, c] if a > 0 and b > 0 else 0.0
                d01 = d[a - 1, b, c] if a > 0 and b < cols - 1 else 0.0
                d10 = d[a, b - 1, c] if a < rows - 1 and b > 0 else 0.0
                d11 = d[a, b, c] if a < rows - 1 and b < cols - 1 else 0.0
                tile = coef[a + 1, b + 1, c]
                tile[0] += d00
                tile[1] += (d01 - d00) * inv_w
                tile[2] += (d10 - d00) * inv_h
                tile[3] += (d11 - d10 - d01 + d00) * inv_w * inv_h


@_jit
def _grid_kernel(out_x, out_y, lbx, lby, lox, loy, lco, bx, by, ox, oy, co):  # noqa: E501
    """Fill (H, W) float32 maps with ``first(last(p))`` for every pixel p (see module doc).

    ``l*``: the patches of the op applied last (evaluated on the pixel grid); the others: the
    patches of the op applied before it.
    """
    height, width = out_x.shape
    ramp = np.arange(width + 1).astype(np.float32)
    i = j = 0  # the first op's cell, carried from run to run (the next one is close by)
    for y in range(height):
        w = y + 0.5
        jl = _cell(lby, w, 0)
        t = w - loy[jl]
        row_x = out_x[y]
        row_y = out_y[y]
        for il in range(lox.size):
            x0 = 0 if il == 0 else max(0, int(np.ceil(lbx[il - 1] - 0.5)))
            x1 = width if il == lox.size - 1 else min(width, int(np.ceil(lbx[il] - 0.5)))
            if x0 >= x1:
                continue
            # The last op along this run: edge coordinates (a + b * x) of pixel x's source.
            c = lco[jl, il]
            bx_ = c[0, 1] + c[0, 3] * t
            by_ = c[1, 1] + c[1, 3] * t
            ax_ = c[0, 0] + c[0, 2] * t + bx_ * (0.5 - lox[il]) + 0.5
            ay_ = c[1, 0] + c[1, 2] * t + by_ * (0.5 - lox[il]) + 0.5
            inv_bx = 1.0 / bx_ if bx_ != 0.0 else 0.0
            inv_by = 1.0 / by_ if by_ != 0.0 else 0.0
            x = x0
            while x < x1:
                u = ax_ + bx_ * x
                v = ay_ + by_ * x
                i = _cell(bx, u, i)
                j = _cell(by, v, j)
                # The run ends where that position leaves the first op's cell (j, i).
                end = x1
                if bx_ > 0.0 and i < bx.size:
                    end = _run_end(end, x, bx[i], ax_, bx_, inv_bx)
                elif bx_ < 0.0 and i > 0:
                    end = _run_end(end, x, bx[i - 1], ax_, bx_, inv_bx)
                if by_ > 0.0 and j < by.size:
                    end = _run_end(end, x, by[j], ay_, by_, inv_by)
                elif by_ < 0.0 and j > 0:
                    end = _run_end(end, x, by[j - 1], ay_, by_, inv_by)
                # The first op in that cell, as a quadratic in k = pixel - x.
                s0 = u - ox[i]
                t0 = v - oy[j]
                d = co[j, i]
                q0x = d[0, 0] + d[0, 1] * s0 + d[0, 2] * t0 + d[0, 3] * s0 * t0
                q1x = d[0, 1] * bx_ + d[0, 2] * by_ + d[0, 3] * (s0 * by_ + bx_ * t0)
                q2x = d[0, 3] * bx_ * by_
                q0y = d[1, 0] + d[1, 1] * s0 + d[1, 2] * t0 + d[1, 3] * s0 * t0
                q1y = d[1, 1] * bx_ + d[1, 2] * by_ + d[1, 3] * (s0 * by_ + bx_ * t0)
                q2y = d[1, 3] * bx_ * by_
                f0x, f1x, f2x = np.float32(q0x), np.float32(q1x), np.float32(q2x)
                f0y, f1y, f2y = np.float32(q0y), np.float32(q1y), np.float32(q2y)
                seg_x = row_x[x:end]
                seg_y = row_y[x:end]
                for k in range(end - x):
                    kk = ramp[k]  # a table lookup: int -> float conversion blocks SIMD
                    seg_x[k] = f0x + kk * (f1x + kk * f2x)
                    seg_y[k] = f0y + kk * (f1y + kk * f2y)
                x = end


@_jit
def _points_kernel(px, py, bx, by, ox, oy, co):
    """Replace the positions ``(px, py)`` (1-D float32, in place) by the patches' map there."""
    i = j = 0  # neighbouring positions are usually in the same cell: start there
    for n in range(px.size):
        u = px[n] + 0.5
        v = py[n] + 0.5
        i = _cell(bx, u, i)
        j = _cell(by, v, j)
        s = u - ox[i]
        t = v - oy[j]
        d = co[j, i]
        px[n] = d[0, 0] + d[0, 1] * s + d[0, 2] * t + d[0, 3] * s * t
        py[n] = d[1, 0] + d[1, 1] * s + d[1, 2] * t + d[1, 3] * s * t


def _require() -> None:
    if numba is None:
        raise RuntimeError("numba is not installed; use the NumPy path of augment.geometry.compose")


def evaluate_grid(height: int, width: int, chain: Sequence[Patches]) -> tuple[np.ndarray, ...]:
    """Map of a chain (from :func:`plan`) at every pixel.

    Returns:
        ``(map_x, map_y)``, float32 (H, W).
    """
    _require()
    # One block for both maps: freed and reused whole, so a loop of calls does not give pages
    # back to the system and fault them in again (which costs more than the kernel).
    map_x, map_y = np.empty((2, height, width), dtype=np.float32)
    last = chain[-1]
    before = chain[-2] if len(chain) > 1 else _IDENTITY
    _grid_kernel(map_x, map_y, *last, *before)
    for patches in reversed(chain[:-2]):
        _points_kernel(map_x.reshape(-1), map_y.reshape(-1), *patches)
    return map_x, map_y


def evaluate_at(
    chain: Sequence[Patches], x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Map of a chain at arbitrary positions ``(x, y)`` (pixel-index units, any shape).

    Returns:
        ``(map_x, map_y)``, float32 arrays of the positions' shape (new arrays).
    """
    _require()
    positions = np.empty((2, *np.shape(x)), dtype=np.float32)
    positions[0], positions[1] = x, y
    map_x, map_y = positions
    for patches in reversed(chain):
        _points_kernel(map_x.reshape(-1), map_y.reshape(-1), *patches)
    return map_x, map_y
