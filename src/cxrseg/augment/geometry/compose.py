"""Geometry: one exact map for a chain of spatial ops (composition of backward maps).

Applying op ``A`` and then op ``B`` to an image gives ``out(p) = in(A(B(p)))``: the chain's map
is ``A``'s map evaluated at ``B``'s positions. Evaluating by plain bilinear interpolation of
``A``'s pixel samples would be off by up to a quarter of the slope change at each mesh tile
border (tile borders lie between pixel centres), so maps made by
:mod:`cxrseg.augment.geometry` carry how they were made
(:class:`~cxrseg.augment.geometry.maps.MapPair`) and are evaluated exactly.

Chains of mesh and affine ops are evaluated in one pass by the numba kernels of
:mod:`cxrseg.augment.geometry.kernels` (:func:`chain_map`); without numba the same maps come from
NumPy/OpenCV, one op at a time. Re-exported by :mod:`cxrseg.augment.geometry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from cxrseg.augment.geometry.maps import (
    MapPair,
    Maps,
    MeshSpec,
    Step,
    _affine_at,
    _check_maps,
    _check_size,
    _rows_and_cols,
    affine_map,
    compose_affine,
    identity_map,
)
from cxrseg.augment.geometry.mesh import _mesh_args, mesh_displacement

__all__ = ["chain_map", "compose_maps"]

Described = np.ndarray | MeshSpec
"""A step known by its parameters: a backward 2 x 3 matrix or a :class:`MeshSpec`."""


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


def _described(maps: object) -> tuple[Described, ...] | None:
    """The steps a map was made from (matrices and meshes, in order), or None if unknown."""
    chain = getattr(maps, "chain", None)
    if chain is not None:
        return tuple(chain)
    matrix = getattr(maps, "matrix", None)
    if matrix is not None:
        return (matrix,)
    mesh = getattr(maps, "mesh", None)
    if mesh is not None:
        return (MeshSpec(*mesh),)
    return None


def _check_step(step: object, height: int, width: int, index: int) -> Described | Maps:
    if isinstance(step, MeshSpec):
        _, _, gw, gh, d = _mesh_args(height, width, *step)
        if d is step.displacements:  # already float32: keep the caller's array writable
            d = d.copy()
        d.flags.writeable = False
        return MeshSpec(gw, gh, d)
    if isinstance(step, np.ndarray) and step.shape == (2, 3):
        if not np.isfinite(step).all():
            raise ValueError(f"step #{index} is an affine matrix with NaN or infinity.")
        return step.astype(np.float64)
    if isinstance(step, tuple | list) and len(step) == 2:
        mx, my = _check_maps(tuple(step), f"step #{index}")
        if mx.shape != (height, width):
            raise ValueError(
                f"step #{index} is a map of shape {mx.shape}; the chain is for ({height}, "
                f"{width}) images."
            )
        return step if _described(step) is not None else MapPair(mx, my)  # type: ignore[return-value]
    raise TypeError(
        f"step #{index} is a {type(step).__name__}; give a backward 2 x 3 matrix (numpy "
        "array), a MeshSpec or a (map_x, map_y) pair."
    )


def chain_map(height: int, width: int, steps: Sequence[Step]) -> MapPair:
    """Map of several ops applied one after the other, in one pass where possible.

    Matrices and meshes are evaluated together, exactly and without making a full-size map per
    op (:mod:`cxrseg.augment.geometry.kernels`); other maps (elastic fields) join by
    :func:`compose_maps`. ``chain_map(h, w, [a, b, c])`` equals
    ``compose_maps(a, compose_maps(b, c))`` for the maps of those steps.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        steps: In the order applied: backward 2 x 3 affine matrices (numpy arrays, e.g. from
            :func:`~.maps.affine_matrix`), :class:`MeshSpec` (Augmentor's mesh
            distortions) or ``(map_x, map_y)`` pairs of (H, W) arrays.

    Returns:
        ``(map_x, map_y)`` as a :class:`MapPair`, float32 (H, W); the identity for no steps.

    Raises:
        ValueError: For a mesh or map that does not fit the size, or a non-finite matrix.
        TypeError: For a step of another kind.
    """
    height, width = _check_size(height, width)
    checked = [_check_step(step, height, width, i) for i, step in enumerate(steps)]
    pieces: list[Maps] = []
    run: list[Described] = []
    for step in checked:
        described = (step,) if isinstance(step, MeshSpec | np.ndarray) else _described(step)
        if described is not None:
            run.extend(described)
            continue
        if run:
            pieces.append(_run_map(height, width, run))
            run = []
        pieces.append(step)  # type: ignore[arg-type]
    if run or not pieces:
        pieces.append(_run_map(height, width, run))
    result = pieces[-1]
    for piece in reversed(pieces[:-1]):
        result = compose_maps(piece, result)
    return result if isinstance(result, MapPair) else MapPair(*result)


def _run_map(height: int, width: int, run: Sequence[Described]) -> MapPair:
    """Map of matrices and meshes applied in order (numba kernel, or one op at a time)."""
    matrices = [step for step in run if isinstance(step, np.ndarray)]
    if len(matrices) == len(run):
        matrix = np.eye(3)[:2]
        for step in matrices:
            matrix = compose_affine(matrix, step)
        return affine_map(height, width, matrix)  # type: ignore[return-value]
    mesh = run[0] if len(run) == 1 else None
    # lazy: start-up time (the kernels import numba, about a second)
    from cxrseg.augment.geometry import kernels

    if kernels.available():
        maps = kernels.evaluate_grid(height, width, kernels.plan(height, width, run))
    else:
        maps = _described_at(run, height, width, *identity_map(height, width))
    return MapPair(*maps, mesh=mesh, chain=tuple(run))  # type: ignore[arg-type]


def _described_at(
    steps: Sequence[Described], height: int, width: int, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy/OpenCV path: the steps' map at (H, W) positions ``(x, y)``, the last step first."""
    for step in reversed(steps):
        if isinstance(step, MeshSpec):
            x, y = _compose_mesh(step, height, width, x, y)
        else:
            x, y = _affine_at(step, x, y)
    return x, y


def compose_maps(first: Maps, second: Maps) -> Maps:
    """Map of "apply ``first``, then ``second``": ``first`` evaluated at ``second``'s positions.

    ``result(p) = first(second(p))``, so resampling an image once with the result equals
    resampling it with ``first`` and then with ``second``, without the blur of two
    interpolations. ``first`` is evaluated exactly where it says how it was made
    (:class:`MapPair` from this module): affine maps by their matrix, mesh maps and chains of
    them analytically (:mod:`.kernels`; without numba, by bilinear interpolation
    of the mesh field sampled at the pixel edges, a grid that holds every vertex), compositions
    by re-association ``(A then B) then C = A then (B then C)``. Other maps (elastic fields,
    arrays from elsewhere) are split into their best-fitting affine part, applied exactly, and
    a residual interpolated bilinearly. The result is within 0.05 px of one op after the other
    (the tests check it).

    Outside the image a mesh or residual field is continued from its border, so positions
    ``second`` sends outside still follow ``first``'s affine part.

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
    parts = getattr(first, "parts", None)
    if parts is not None:
        return compose_maps(parts[0], compose_maps(parts[1], second))
    steps = _described(first)
    if steps is None:
        return MapPair(*_compose_generic(fx, fy, sx, sy), parts=(first, second))
    identity = np.eye(2, 3)
    if len(steps) == 1 and isinstance(steps[0], np.ndarray) and np.array_equal(steps[0], identity):
        return second if isinstance(second, MapPair) else MapPair(sx, sy)
    if _described(second) is not None:
        return chain_map(fx.shape[0], fx.shape[1], [first, second])
    height, width = fx.shape
    # lazy: start-up time (the kernels import numba, about a second)
    from cxrseg.augment.geometry import kernels

    if kernels.available():
        maps = kernels.evaluate_at(kernels.plan(height, width, steps), sx, sy)
    else:
        maps = _described_at(steps, height, width, sx, sy)
    return MapPair(*maps, parts=(first, second))


def _compose_mesh(
    mesh: MeshSpec, height: int, width: int, sx: np.ndarray, sy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mesh map of (H, W) images at (H, W) positions, exactly (up to OpenCV's 1/32 px)."""
    grid_width, grid_height, d = mesh
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
