"""``Pipeline.batch``: the pipeline's samples on torch tensors, geometry on their device.

Parameters are drawn on the CPU from the same per-sample generators as ``Pipeline.__call__``;
runs of consecutive spatial operations become one sampling grid per sample and one
``grid_sample`` call for the batch; intensity operations run vectorised in torch. When a run is
a single mesh distortion (the Augmentor case), the grid is built from the displacements
directly on the device; otherwise the composed maps are built with NumPy and moved there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cxrseg.augment import transforms as T
from cxrseg.augment.base import Params
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


def _group_grid(
    pipeline: Pipeline,
    group: list[int],
    params: list[list[Params]],
    height: int,
    width: int,
    device: torch.device,
) -> torch.Tensor | None:
    """Sampling grid (N, H, W, 2) for the spatial operations ``group``, or None if none applied."""
    import torch

    from cxrseg.augment import functional as F
    from cxrseg.augment.torch_backend import maps_to_grid, mesh_grid_batch

    ops = pipeline.operations
    applied = [[j for j in group if p[j]["applied"]] for p in params]
    used = {j for js in applied for j in js}
    if not used:
        return None
    if len(used) == 1 and all(len(js) <= 1 for js in applied):
        (j,) = used
        op = ops[j]
        if isinstance(op, T.RandomDistortion | T.GaussianDistortion):
            shape = (len(params), op.grid_height - 1, op.grid_width - 1, 2)
            displacements = np.zeros(shape, dtype=np.float32)
            for i, p in enumerate(params):
                if p[j]["applied"]:
                    displacements[i] = np.asarray(p[j]["displacements"], dtype=np.float32)
            d = torch.from_numpy(displacements).to(device)
            return mesh_grid_batch(height, width, op.grid_width, op.grid_height, d, device)
    grids = []
    for p, js in zip(params, applied, strict=True):
        maps = F.identity_map(height, width) if not js else None
        for j in js:
            step = ops[j].maps(p[j], height, width)  # type: ignore[attr-defined]
            maps = step if maps is None else F.compose_maps(maps, step)
        grids.append(torch.as_tensor(maps_to_grid(*maps)).reshape(height, width, 2))
    return torch.stack(grids).to(device)


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
        pipeline._check_sides(labels)
    if pipeline.border != "constant" or pipeline.fill != 0.0:
        raise InputError(
            f"Pipeline.batch supports border='constant' with fill=0, not border="
            f"{pipeline.border!r}, fill={pipeline.fill!r}.",
            hint="use the default border for tensors, or augment NumPy arrays with the pipeline.",
        )
    params = [pipeline.sample_params(height, width, index=i, epoch=epoch) for i in indices]
    x, m = images, masks
    group: list[int] = []

    def flush() -> None:
        nonlocal x, m
        grid = _group_grid(pipeline, group, params, height, width, images.device)
        if grid is not None:
            x, m = warp_batch(x, m, grid.to(x.dtype), interpolation=pipeline.interpolation)
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
