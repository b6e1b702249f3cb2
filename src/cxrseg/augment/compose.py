"""Composition of backward maps: one map for a chain of spatial ops, computed exactly.

Applying op ``A`` and then op ``B`` to an image gives ``out(p) = in(A(B(p)))``: the chain's map
is ``A``'s map evaluated at ``B``'s positions. Evaluating by plain bilinear interpolation of
``A``'s pixel samples would be off by up to a quarter of the slope change at each mesh tile
border (tile borders lie between pixel centres), so maps made by
:mod:`cxrseg.augment.functional` carry how they were made
(:class:`~cxrseg.augment.maps.MapPair`) and are evaluated exactly. Re-exported by
:mod:`cxrseg.augment.functional`.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from cxrseg.augment.maps import MapPair, Maps, _affine_at, _check_maps, _rows_and_cols, affine_map
from cxrseg.augment.mesh import mesh_displacement

__all__ = ["compose_affine", "compose_maps"]


def compose_affine(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Backward matrix of "apply ``first``, then ``second``" for two backward 2 x 3 matrices."""
    a, b = np.eye(3), np.eye(3)
    a[:2] = np.asarray(first, dtype=np.float64)
    b[:2] = np.asarray(second, dtype=np.float64)
    return np.einsum("ij,jk->ik", a, b)[:2]


#: Linear part closer than this to the identity: interpolate the displacement directly.
_NEAR_IDENTITY = 0.05


@lru_cache(maxsize=8)
def _affine_fit(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares operator (3, n) and flat indices (n,) of a sparse ~24 x 24 pixel sample."""
    step_y, step_x = max(1, height // 24), max(1, width // 24)
    ys, xs = np.mgrid[0:height:step_y, 0:width:step_x]
    design = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=1).astype(np.float64)
    pinv = np.linalg.pinv(design)
    index = np.ravel_multi_index((ys.ravel(), xs.ravel()), (height, width))
    pinv.flags.writeable = False
    index.flags.writeable = False
    return pinv, index


def compose_maps(first: Maps, second: Maps) -> Maps:
    """Map of "apply ``first``, then ``second``": ``first`` evaluated at ``second``'s positions.

    ``result(p) = first(second(p))``, so resampling an image once with the result equals
    resampling it with ``first`` and then with ``second``, without the blur of two
    interpolations. ``first`` is evaluated exactly where it says how it was made
    (:class:`MapPair` from this module): affine maps by their matrix, mesh maps by bilinear
    interpolation of their field sampled at the pixel edges (a grid that holds every vertex),
    compositions by re-association ``(A then B) then C = A then (B then C)``. Other maps (elastic
    fields, arrays from elsewhere) are split into their best-fitting affine part, applied
    exactly, and a residual interpolated bilinearly. OpenCV quantises positions to 1/32 px, so
    the result is within 0.05 px of one op after the other (the tests check it).

    Outside the image a mesh or residual field is continued from its border, so positions
    ``second`` sends outside still follow ``first``'s affine part.

    For long chains, fold from the end (``compose_maps(a, compose_maps(b, c))``): folding from
    the start gives the same maps but re-associates, which costs more compositions.

    Args:
        first: Map of the op applied first, float32 (H, W) pair.
        second: Map of the op applied next, same shape.

    Returns:
        ``(map_x, map_y)`` as a :class:`MapPair`, float32 (H, W).
    """
    fx, fy = _check_maps(first, "first")
    sx, sy = _check_maps(second, "second")
    if fx.shape != sx.shape:
        raise ValueError(
            f"cannot compose maps of shapes {fx.shape} and {sx.shape}; both ops must act on "
            "images of the same size."
        )
    matrix = getattr(first, "matrix", None)
    mesh = getattr(first, "mesh", None)
    parts = getattr(first, "parts", None)
    if parts is not None:
        return compose_maps(parts[0], compose_maps(parts[1], second))
    if matrix is not None:
        second_matrix = getattr(second, "matrix", None)
        if second_matrix is not None:
            return affine_map(fx.shape[0], fx.shape[1], compose_affine(matrix, second_matrix))
        if np.array_equal(matrix, np.eye(3)[:2]):
            return second if isinstance(second, MapPair) else MapPair(sx, sy)
        return MapPair(*_affine_at(matrix, sx, sy), parts=(first, second))
    if mesh is not None:
        rx, ry = _compose_mesh(mesh, sx, sy)
    else:
        rx, ry = _compose_generic(fx, fy, sx, sy)
    return MapPair(rx, ry, parts=(first, second))


def _compose_mesh(
    mesh: tuple[int, int, np.ndarray], sx: np.ndarray, sy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mesh displacement at arbitrary positions, exactly (up to OpenCV's 1/32 px)."""
    grid_width, grid_height, d = mesh
    height, width = sx.shape
    dx, dy = mesh_displacement(height, width, grid_width, grid_height, d, at_edges=True)
    # The edge grid starts at pixel-index -0.5, so grid index = position + 0.5.
    ux, uy = sx + np.float32(0.5), sy + np.float32(0.5)
    # Border vertices never move, so the field is 0 on the grid's rim and beyond: a constant
    # 0 border is exact (and OpenCV's constant border is the faster one).
    rx = cv2.remap(dx, ux, uy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    ry = cv2.remap(dy, ux, uy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    rx += sx
    ry += sy
    return rx, ry


def _compose_generic(
    fx: np.ndarray, fy: np.ndarray, sx: np.ndarray, sy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Any map at arbitrary positions: exact affine part plus an interpolated residual."""
    height, width = fx.shape
    pinv, index = _affine_fit(height, width)
    sample = np.stack([fx.ravel()[index], fy.ravel()[index]]).astype(np.float64)  # (2, n)
    matrix = np.einsum("kn,cn->ck", pinv, sample)  # (2, 3) best-fitting backward affine
    if float(np.abs(matrix[:, :2] - np.eye(2)).max()) < _NEAR_IDENTITY:
        # The displacement has a small slope: interpolating it directly is accurate.
        cols, rows = _rows_and_cols(height, width)
        rx = cv2.remap(fx - cols, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        ry = cv2.remap(fy - rows, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        rx += sx
        ry += sy
        return rx, ry
    ax, ay = affine_map(height, width, matrix)
    lin_x, lin_y = _affine_at(matrix, sx, sy)
    lin_x += cv2.remap(fx - ax, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    lin_y += cv2.remap(fy - ay, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return lin_x, lin_y
