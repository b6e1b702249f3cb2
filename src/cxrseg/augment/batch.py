"""``Pipeline.batch``: the pipeline's samples on torch tensors, geometry on their device.

Parameters are drawn on the CPU from the same per-sample generators as ``Pipeline.__call__``
(small: numbers, displacements, matrices); runs of consecutive spatial operations become one
sampling grid per sample and one ``grid_sample`` call for the batch. Mesh distortions and
affine transforms (merged into one matrix per run, as in the NumPy path) are built on the
tensors' device and composed there; elastic fields are made on the CPU, as in the NumPy path,
and moved. Intensity operations run vectorised in torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cxrseg.augment import transforms as T
from cxrseg.augment.base import Params, RandomTransform
from cxrseg.errors import InputError

if TYPE_CHECKING:
    import torch

    from cxrseg.augment.pipeline import Pipeline

__all__ = ["apply_batch"]


def _check_tensors(images: object, masks: object) -> None:
    import torch

    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputError(
            f"images must be a float tensor (N, C, H, W), got {shape}.",
            hint="stack float images in [0, 1] as (N, C, H, W).",
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
    from cxrseg.augment import functional as F

    matrices = np.zeros((len(params), 2, 3))
    for i, p in enumerate(params):
        matrix = np.eye(3)[:2]
        for j in segment:
            op = ops[j]
            if p[j]["applied"] and isinstance(op, T.AffineTransform):
                matrix = F.compose_affine(matrix, op.matrix(p[j], height, width))
        matrices[i] = matrix
    return matrices


def _affine_then(matrices: np.ndarray, grid: torch.Tensor) -> torch.Tensor:
    """Grid of "affine ``matrices`` (N, 2, 3), then ``grid``": the matrices applied exactly to
    the grid's positions (as ``functional.compose_maps`` does for an affine first map)."""
    import torch

    from cxrseg.augment.torch_backend import grid_to_maps, maps_to_grid

    map_x, map_y = grid_to_maps(grid)
    m = torch.from_numpy(matrices).to(grid.device, torch.float32)[:, :, :, None, None]
    x = m[:, 0, 0] * map_x + m[:, 0, 1] * map_y + m[:, 0, 2]
    y = m[:, 1, 0] * map_x + m[:, 1, 1] * map_y + m[:, 1, 2]
    return maps_to_grid(x, y)


def _segment_grid(
    ops: Sequence[RandomTransform],
    params: list[list[Params]],
    segment: list[int],
    height: int,
    width: int,
    device: torch.device,
) -> torch.Tensor:
    """Grid (N, H, W, 2) of one segment; samples that skip every op get the identity."""
    import torch

    from cxrseg.augment import functional as F
    from cxrseg.augment.torch_backend import affine_grid_batch, maps_to_grid, mesh_grid_batch

    first = ops[segment[0]]
    if isinstance(first, T.AffineTransform):
        matrices = _segment_matrices(ops, params, segment, height, width)
        return affine_grid_batch(height, width, torch.from_numpy(matrices), device)
    (j,) = segment
    if isinstance(first, T.RandomDistortion | T.GaussianDistortion):
        shape = (len(params), first.grid_height - 1, first.grid_width - 1, 2)
        displacements = np.zeros(shape, dtype=np.float32)
        for i, p in enumerate(params):
            if p[j]["applied"]:
                displacements[i] = np.asarray(p[j]["displacements"], dtype=np.float32)
        d = torch.from_numpy(displacements).to(device)
        return mesh_grid_batch(height, width, first.grid_width, first.grid_height, d, device)
    if not isinstance(first, T.SpatialTransform):
        raise TypeError(f"{first.name} is not a spatial transform.")
    grids = []  # other fields (elastic) are made on the CPU, as in the NumPy path
    for p in params:
        maps = first.maps(p[j], height, width) if p[j]["applied"] else F.identity_map(height, width)
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

    Runs of affine ops become one matrix per sample, as in the NumPy path; a leading matrix is
    applied exactly to the next grid's positions, other segments are composed on the device
    with :func:`cxrseg.augment.torch_backend.compose_grids`.
    """
    import torch

    from cxrseg.augment.torch_backend import affine_grid_batch, compose_grids

    ops = pipeline.operations
    used = [j for j in group if any(p[j]["applied"] for p in params)]
    grid: torch.Tensor | None = None
    leading: np.ndarray | None = None  # affine matrices applied before any grid
    for segment in _segments(ops, used):
        if grid is None and isinstance(ops[segment[0]], T.AffineTransform):
            leading = _segment_matrices(ops, params, segment, height, width)
            continue
        g = _segment_grid(ops, params, segment, height, width, device)
        if leading is not None:
            g, leading = _affine_then(leading, g), None
        grid = g if grid is None else compose_grids(grid, g)
    if leading is not None:
        grid = affine_grid_batch(height, width, torch.from_numpy(leading), device)
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
    from cxrseg.augment.torch_backend import warp_batch

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
    x, m = images, masks
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
                fill=pipeline.fill,
            )
        group.clear()

    for j, op in enumerate(pipeline.operations):
        if isinstance(op, T.SpatialTransform):
            group.append(j)
        elif isinstance(op, T.IntensityTransform):
            flush()
            x = op.apply_torch(x, [p[j] for p in params])
    flush()
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
