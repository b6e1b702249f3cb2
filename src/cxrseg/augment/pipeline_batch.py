"""Pipeline, batch path: ``Pipeline.batch`` on torch tensors, geometry on their device.

Parameters are drawn on the CPU from the same per-sample generators as ``Pipeline.__call__``
(small: numbers, displacements, matrices); runs of consecutive spatial operations become one
sampling grid per sample and one ``grid_sample`` call for the batch. Mesh distortions and
affine transforms (merged into one matrix per run, as in the NumPy path) are built on the
tensors' device and composed there, each evaluated exactly at the positions of the ops after
it; elastic fields are made on the CPU, as in the NumPy path, and moved. Intensity operations
run vectorised in torch. uint8/uint16 images come back in their dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from cxrseg.augment import geometry as F
from cxrseg.augment import transforms as T
from cxrseg.augment.base import Params, RandomTransform
from cxrseg.augment.resample_torch import (
    affine_grid_batch,
    affine_then,
    compose_grids,
    maps_to_grid,
    mesh_grid_batch,
    warp_batch,
)
from cxrseg.errors import InputError

if TYPE_CHECKING:
    from cxrseg.augment.pipeline import Pipeline

__all__ = ["apply_batch"]


def _check_tensors(images: object, masks: object) -> None:
    if (
        not isinstance(images, torch.Tensor)
        or images.ndim != 4
        or not (images.is_floating_point() or images.dtype in _integer_scales())
    ):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        dtype = images.dtype if isinstance(images, torch.Tensor) else None
        raise InputError(
            f"images must be a float, uint8 or uint16 tensor (N, C, H, W), got {shape} {dtype}.",
            hint="stack float images in [0, 1] (or uint8/uint16 images) as (N, C, H, W).",
        )
    if masks is None:
        return
    if not isinstance(masks, torch.Tensor) or masks.ndim != 4:
        raise InputError(
            "masks must be a tensor (N, K, H, W) or None.",
            hint="stack the masks of each image along dimension 1.",
        )
    n, _, h, w = images.shape
    if (masks.shape[0], masks.shape[2], masks.shape[3]) != (n, h, w):
        raise InputError(
            f"masks have shape {tuple(masks.shape)} but images are {tuple(images.shape)}.",
            hint="give masks the same N, H and W as the images.",
        )
    if masks.is_floating_point():
        raise InputError(
            f"masks have dtype {masks.dtype}; masks must hold integer labels, not probabilities.",
            hint="threshold them first, e.g. (masks > 0.5).to(torch.uint8).",
        )


def _integer_scales() -> dict[torch.dtype, int]:
    """Integer image dtypes and the value that stands for 1.0, as in the NumPy path."""
    return {torch.uint8: 255, torch.uint16: 65535}


def _segments(ops: Sequence[RandomTransform], positions: list[int]) -> list[list[int]]:
    """``positions`` split into runs of affine ops and single other ops."""
    segments: list[list[int]] = []
    for j in positions:
        affine_run = bool(segments) and isinstance(ops[segments[-1][-1]], T.AffineTransform)
        if isinstance(ops[j], T.AffineTransform) and affine_run:
            segments[-1].append(j)
        else:
            segments.append([j])
    return segments


def _segment_matrices(
    ops: Sequence[RandomTransform],
    params: list[list[Params]],
    segment: list[int],
    height: int,
    width: int,
) -> np.ndarray:
    """Backward matrices (N, 2, 3) of a run of affine ops; identity where none applied."""
    matrices = np.zeros((len(params), 2, 3))
    for i, p in enumerate(params):
        matrix = np.eye(3)[:2]
        for j in segment:
            op = ops[j]
            if p[j]["applied"] and isinstance(op, T.AffineTransform):
                matrix = F.compose_affine(matrix, op.matrix(p[j], height, width))
        matrices[i] = matrix
    return matrices


def _field_grid(
    op: RandomTransform,
    segment: list[int],
    params: list[list[Params]],
    height: int,
    width: int,
    device: torch.device,
) -> torch.Tensor:
    """Grid (N, H, W, 2) of a map-only op (elastic), made on the CPU as in the NumPy path."""
    if not isinstance(op, T.SpatialTransform):
        raise TypeError(f"{op.name} is not a spatial transform.")
    (j,) = segment
    grids = []
    for p in params:
        maps = op.maps(p[j], height, width) if p[j]["applied"] else F.identity_map(height, width)
        grids.append(maps_to_grid(*maps))
    return torch.cat(grids).to(device)


def _group_grid(
    pipeline: Pipeline,
    group: list[int],
    params: list[list[Params]],
    height: int,
    width: int,
    device: torch.device,
) -> torch.Tensor | None:
    """One grid (N, H, W, 2) for the consecutive spatial ops ``group``; None if none applied.

    As in the NumPy path, the chain is evaluated from its last op back: each earlier op is
    evaluated exactly at the positions of the ones after it (affine runs, merged into one
    matrix per sample, by :func:`~cxrseg.augment.resample_torch.affine_then`; meshes by
    ``mesh_grid_batch(base=...)``), and only other maps (elastic fields) are interpolated
    (:func:`~cxrseg.augment.resample_torch.compose_grids`).
    """
    ops = pipeline.operations
    used = [j for j in group if any(p[j]["applied"] for p in params)]
    grid: torch.Tensor | None = None
    for segment in reversed(_segments(ops, used)):
        first = ops[segment[0]]
        if isinstance(first, T.AffineTransform):
            matrices = torch.from_numpy(_segment_matrices(ops, params, segment, height, width))
            if grid is None:
                grid = affine_grid_batch(height, width, matrices, device)
            else:
                grid = affine_then(matrices, grid)
        elif isinstance(first, T.RandomDistortion | T.GaussianDistortion):
            (j,) = segment
            shape = (len(params), first.grid_height - 1, first.grid_width - 1, 2)
            displacements = np.zeros(shape, dtype=np.float32)
            for i, p in enumerate(params):
                if p[j]["applied"]:
                    displacements[i] = np.asarray(p[j]["displacements"], dtype=np.float32)
            d = torch.from_numpy(displacements).to(device)
            grid = mesh_grid_batch(
                height, width, first.grid_width, first.grid_height, d, device, base=grid
            )
        else:
            g = _field_grid(first, segment, params, height, width, device)
            grid = g if grid is None else compose_grids(g, grid)
    return grid


def apply_batch(
    pipeline: Pipeline,
    images: torch.Tensor,
    masks: torch.Tensor | None = None,
    *,
    indices: Sequence[int] | None = None,
    epoch: int = 0,
    labels: Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``pipeline`` on a batch; see :meth:`cxrseg.augment.pipeline.Pipeline.batch`."""
    _check_tensors(images, masks)
    n, _, height, width = images.shape
    indices = list(range(n)) if indices is None else list(indices)
    if len(indices) != n:
        raise InputError(
            f"got {len(indices)} indices for a batch of {n} images.",
            hint="give one sample index per image.",
        )
    if labels is not None:
        labels = [str(name) for name in labels]
        k = 0 if masks is None else masks.shape[1]
        if len(labels) != k:
            raise InputError(
                f"got {len(labels)} labels for {k} mask channels.",
                hint="name every mask channel once, in order.",
            )
        pipeline.check_mask_names(labels)
    params = [pipeline.sample_params(height, width, index=i, epoch=epoch) for i in indices]
    # Integer images are resampled in their own dtype while they only move (as in the NumPy
    # path) and scaled to [0, 1] floats for intensity ops.
    scale = _integer_scales().get(images.dtype)
    native = scale is not None and not any(
        p[j]["applied"] and isinstance(op, T.IntensityTransform)
        for p in params
        for j, op in enumerate(pipeline.operations)
    )
    x, m = images, masks
    if scale is not None and not native:
        x = images.float() / scale
    fill = round(pipeline.fill * scale) if native and scale is not None else pipeline.fill
    group: list[int] = []

    def flush() -> None:
        nonlocal x, m
        grid = _group_grid(pipeline, group, params, height, width, images.device)
        if grid is not None:
            x, m = warp_batch(
                x,
                m,
                grid,
                interpolation=pipeline.interpolation,
                border=pipeline.border,
                fill=fill,
            )
        group.clear()

    for j, op in enumerate(pipeline.operations):
        if isinstance(op, T.SpatialTransform):
            group.append(j)
        elif isinstance(op, T.IntensityTransform):
            flush()
            x = op.apply_torch(x, [p[j] for p in params])
    flush()
    if scale is not None and not native:
        x = (x * scale).round_().clamp_(0, scale).to(images.dtype)
    if m is not None and labels is not None:
        m = _swap_channels(m, params, pipeline, labels)
    return x, m


def _swap_channels(
    masks: torch.Tensor, params: list[list[Params]], pipeline: Pipeline, labels: list[str]
) -> torch.Tensor:
    """Swap left/right channels of the samples flipped left-right an odd number of times."""
    flips = [j for j, op in enumerate(pipeline.operations) if isinstance(op, T.FlipLeftRight)]
    order = [labels.index(T.swap_left_right_name(name)) for name in labels]
    out = masks.clone()
    for i, p in enumerate(params):
        if sum(p[j]["applied"] for j in flips) % 2 == 1:
            out[i] = masks[i, order]
    return out
