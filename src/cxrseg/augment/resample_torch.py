"""Resampling, torch twin: batches of tensors on any device through ``grid_sample``.

Same geometry as :mod:`cxrseg.augment.geometry`, as sampling grids: a grid is a float tensor
(N, H, W, 2) of source positions ``(x, y)`` normalised for
``torch.nn.functional.grid_sample(align_corners=False)``, i.e. ``x_norm = (2 * x + 1) / W - 1``
for a pixel-index position ``x``. Mesh and affine grids are built on the device itself, one set of
parameters per sample, so a GPU never waits for maps made on the CPU.

Images (N, C, H, W) are interpolated (bilinear or bicubic, a = -0.75 as in OpenCV); masks
(N, K, H, W) are sampled nearest, so every label value is one of the input's. Integer tensors
are sampled in floating point and converted back exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as TF

from cxrseg.augment.geometry.compose import _NEAR_IDENTITY, _affine_fit
from cxrseg.augment.geometry.maps import _check_size
from cxrseg.augment.geometry.mesh import _check_grid, _hat_weights

__all__ = [
    "affine_grid_batch",
    "affine_then",
    "compose_grids",
    "grid_to_maps",
    "maps_to_grid",
    "mesh_grid_batch",
    "warp_batch",
]

_MODES = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest"}
_PADDING = {"constant": "zeros", "reflect": "reflection"}


def _normalise(map_x: torch.Tensor, map_y: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return torch.stack(((2.0 * map_x + 1.0) / width - 1.0, (2.0 * map_y + 1.0) / height - 1.0), -1)


def maps_to_grid(map_x: object, map_y: object) -> torch.Tensor:
    """Turn pixel-index maps into a ``grid_sample`` grid.

    Args:
        map_x: Source x, (H, W) or (N, H, W); NumPy array or tensor.
        map_y: Source y, same shape.

    Returns:
        float32 tensor (N, H, W, 2) (N = 1 for 2-D maps) on the maps' device.
    """
    mx = torch.as_tensor(map_x, dtype=torch.float32)
    my = torch.as_tensor(map_y, dtype=torch.float32, device=mx.device)
    if mx.shape != my.shape or mx.ndim not in (2, 3):
        raise ValueError(
            f"map_x {tuple(mx.shape)} and map_y {tuple(my.shape)} must share one (H, W) or "
            "(N, H, W) shape."
        )
    if mx.ndim == 2:
        mx, my = mx[None], my[None]
    height, width = mx.shape[-2:]
    return _normalise(mx, my, height, width)


def grid_to_maps(grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`maps_to_grid`: pixel-index maps (N, H, W) from a grid (N, H, W, 2)."""
    _check_grid_tensor(grid)
    height, width = grid.shape[1:3]
    return ((grid[..., 0] + 1.0) * width - 1.0) / 2.0, ((grid[..., 1] + 1.0) * height - 1.0) / 2.0


def _pixel_axes(
    height: int, width: int, device: torch.device | str | None, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    cols = torch.arange(width, device=device, dtype=dtype).view(1, 1, width)
    rows = torch.arange(height, device=device, dtype=dtype).view(1, height, 1)
    return cols, rows


def mesh_grid_batch(
    height: int,
    width: int,
    grid_width: int,
    grid_height: int,
    displacements: torch.Tensor,
    device: torch.device | str | None = None,
    base: torch.Tensor | None = None,
) -> torch.Tensor:
    """Grids of Augmentor-convention mesh distortions, one per sample, built on ``device``.

    Per sample this equals :func:`cxrseg.augment.geometry.mesh_map` (bilinear in each tile).
    With ``base``, the mesh is evaluated exactly at ``base``'s positions instead: the grid of
    "this mesh, then ``base``", as :func:`cxrseg.augment.geometry.compose_maps` computes it.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        grid_width: Tile columns.
        grid_height: Tile rows.
        displacements: (N, grid_height - 1, grid_width - 1, 2) vertex offsets (dx, dy) in px.
        device: Where to build the grid; default the displacements' device.
        base: Optional (N, H, W, 2) grid of the op applied after this mesh.

    Returns:
        float32 tensor (N, H, W, 2).
    """
    height, width = _check_size(height, width)
    grid_width = _check_grid(width, grid_width, "grid_width", "width")
    grid_height = _check_grid(height, grid_height, "grid_height", "height")
    d = torch.as_tensor(displacements)
    device = d.device if device is None else torch.device(device)
    d = d.to(device=device, dtype=torch.float32)
    expected = (grid_height - 1, grid_width - 1, 2)
    if d.ndim != 4 or tuple(d.shape[1:]) != expected:
        raise ValueError(
            f"displacements have shape {tuple(d.shape)}; expected (N, {expected[0]}, "
            f"{expected[1]}, 2), one (dx, dy) per interior vertex and sample."
        )
    at_edges = base is not None
    wy = torch.from_numpy(_hat_weights(height, grid_height, at_edges).copy()).to(device)
    wx = torch.from_numpy(_hat_weights(width, grid_width, at_edges).copy()).to(device)
    field = wy @ d.permute(0, 3, 1, 2) @ wx.T  # (N, 2, h, w) displacement in pixels
    # Pixel offsets to normalised ones: x_norm changes by 2 / W per pixel.
    to_norm = torch.tensor([2.0 / width, 2.0 / height], device=device)
    if base is None:
        identity = _identity_grid(height, width, device, torch.float32)
        return torch.addcmul(identity, field.permute(0, 2, 3, 1), to_norm)
    _check_grid_tensor(base)
    if tuple(base.shape) != (d.shape[0], height, width, 2):
        raise ValueError(
            f"base grid is {tuple(base.shape)}; expected ({d.shape[0]}, {height}, {width}, 2)."
        )
    base = base.to(device=device, dtype=torch.float32)
    # The field is sampled at the pixel edges: a (H + 1, W + 1) grid that holds every vertex,
    # so bilinear interpolation of it is exact. With align_corners=True its index is
    # (g + 1) * W / 2 = position + 0.5 for base's normalised g: no rescaling needed.
    shift = TF.grid_sample(field, base, mode="bilinear", padding_mode="zeros", align_corners=True)
    return torch.addcmul(base, shift.permute(0, 2, 3, 1), to_norm)


def _identity_grid(
    height: int, width: int, device: torch.device | str | None, dtype: torch.dtype
) -> torch.Tensor:
    """Normalised grid (1, H, W, 2) of the identity map."""
    cols, rows = _pixel_axes(height, width, device, dtype)
    return _normalise(cols.expand(1, height, width), rows.expand(1, height, width), height, width)


def affine_grid_batch(
    height: int,
    width: int,
    matrices: torch.Tensor,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Grids of backward affine matrices in pixel units (see ``functional.affine_matrix``).

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        matrices: (N, 2, 3) backward (output -> source) matrices, one per sample.
        device: Where to build the grid; default the matrices' device.

    Returns:
        float32 tensor (N, H, W, 2).
    """
    height, width = _check_size(height, width)
    m = torch.as_tensor(matrices)
    device = m.device if device is None else torch.device(device)
    m = m.to(device=device, dtype=torch.float32)
    if m.ndim != 3 or tuple(m.shape[1:]) != (2, 3):
        raise ValueError(f"matrices have shape {tuple(m.shape)}; give (N, 2, 3) backward matrices.")
    map_x, map_y = _affine_at(m, *_pixel_axes(height, width, device, torch.float32))
    return _normalise(map_x, map_y, height, width)


def _check_grid_tensor(grid: torch.Tensor) -> None:
    if not isinstance(grid, torch.Tensor) or grid.ndim != 4 or grid.shape[-1] != 2:
        shape = tuple(grid.shape) if isinstance(grid, torch.Tensor) else type(grid).__name__
        raise ValueError(f"grid is {shape}; give a float tensor (N, H, W, 2).")


def compose_grids(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Grid of "apply ``first``, then ``second``": ``first`` sampled at ``second``'s positions.

    As :func:`cxrseg.augment.geometry.compose_maps` does for a map it knows nothing about
    (e.g. an elastic field), per sample: the best-fitting affine part of ``first`` (least
    squares on the same sparse pixel sample) is applied exactly at ``second``'s positions and
    only the residual is interpolated bilinearly, continued from the border outside the image;
    a first map whose linear part is within 0.05 of the identity is interpolated directly.
    So positions ``second`` sends outside the image still follow ``first``'s affine part.

    Args:
        first: (N, H, W, 2) grid of the op applied first.
        second: (N, H, W, 2) grid of the op applied next.

    Returns:
        (N, H, W, 2) grid.
    """
    _check_grid_tensor(first)
    _check_grid_tensor(second)
    if first.shape != second.shape:
        raise ValueError(f"cannot compose grids {tuple(first.shape)} and {tuple(second.shape)}.")
    n, height, width = first.shape[:3]
    second = second.to(first.dtype)
    fx, fy = grid_to_maps(first)  # (N, H, W) pixel units
    pinv, index = _affine_fit(height, width)
    flat = torch.tensor(index, device=first.device)
    sample = torch.stack((fx.reshape(n, -1)[:, flat], fy.reshape(n, -1)[:, flat]), 1)
    fit = torch.einsum("kp,ncp->nck", torch.tensor(pinv, device=first.device), sample.double())
    eye = torch.eye(2, 3, dtype=fit.dtype, device=fit.device)
    near = (fit[:, :, :2] - eye[:, :2]).abs().amax(dim=(1, 2)) < _NEAR_IDENTITY
    matrices = torch.where(near[:, None, None], eye, fit).to(first.dtype)
    # The residual of first from its affine part, interpolated at second's positions ...
    ax, ay = _affine_at(matrices, *_pixel_axes(height, width, first.device, first.dtype))
    residual = torch.stack((fx - ax, fy - ay), 1)  # (N, 2, H, W)
    sampled = TF.grid_sample(
        residual, second, mode="bilinear", padding_mode="border", align_corners=False
    )
    # ... plus the affine part there, exactly.
    sx, sy = grid_to_maps(second)
    lx, ly = _affine_at(matrices, sx, sy)
    return maps_to_grid(lx + sampled[:, 0], ly + sampled[:, 1])


def _affine_at(
    matrices: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward matrices (N, 2, 3) applied to positions ``x``, ``y`` broadcast to (N, H, W)."""
    m = matrices[:, :, :, None, None]
    map_x = m[:, 0, 0] * x + m[:, 0, 1] * y + m[:, 0, 2]
    map_y = m[:, 1, 0] * x + m[:, 1, 1] * y + m[:, 1, 2]
    return map_x, map_y


def affine_then(matrices: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Grid of "affine ``matrices`` (N, 2, 3), then ``grid``": the matrices applied exactly at
    the grid's positions (as ``functional.compose_maps`` does for an affine first map)."""
    _check_grid_tensor(grid)
    m = torch.as_tensor(matrices).to(device=grid.device, dtype=torch.float32)
    return maps_to_grid(*_affine_at(m, *grid_to_maps(grid)))


def _working_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return dtype
    if dtype in (torch.int32, torch.int64, torch.uint32, torch.uint64):
        return torch.float64  # exact for every label value a mask can reasonably hold
    return torch.float32


def _sample(
    x: torch.Tensor, grid: torch.Tensor, mode: str, border: str, fill: float
) -> torch.Tensor:
    grid = grid.to(dtype=x.dtype, device=x.device)
    if grid.shape[0] == 1 and x.shape[0] != 1:
        grid = grid.expand(x.shape[0], -1, -1, -1)
    if border == "constant" and fill != 0:
        out = TF.grid_sample(x - fill, grid, mode=mode, padding_mode="zeros", align_corners=False)
        return out + fill
    return TF.grid_sample(x, grid, mode=mode, padding_mode=_PADDING[border], align_corners=False)


def _warp_images(
    images: torch.Tensor, grid: torch.Tensor, mode: str, border: str, fill: float
) -> torch.Tensor:
    dtype = images.dtype
    if dtype == torch.bool or torch.is_complex(images):
        raise TypeError(f"cannot interpolate images of dtype {dtype}; convert them to float32.")
    x = images.to(_working_dtype(dtype))
    out = _sample(x, grid, mode, border, fill)
    if mode == "bicubic":  # overshoot stays within each sample's input range, as in NumPy
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        if border == "constant":
            lo, hi = lo.clamp(max=fill), hi.clamp(min=fill)
        out = torch.maximum(torch.minimum(out, hi), lo)
    if dtype.is_floating_point:
        return out
    out = out.round_()
    if mode == "bicubic" or fill != 0:  # only these can leave the input's range
        info = torch.iinfo(dtype)
        out = out.clamp_(info.min, info.max)
    return out.to(dtype)


def warp_batch(
    images: torch.Tensor,
    masks: torch.Tensor | None,
    grid: torch.Tensor,
    interpolation: str = "bilinear",
    border: str = "constant",
    fill: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Resample a batch of images and masks with per-sample grids.

    Args:
        images: (N, C, H, W) tensor, float or integer (integers are rounded and saturated back).
        masks: (N, K, H, W) label tensor of any dtype (bool included), or None.
        grid: (N, H', W', 2) or (1, H', W', 2) grid from this module.
        interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"`` for the images.
        border: ``"constant"`` (images ``fill``, masks 0) or ``"reflect"`` (both).
        fill: Image value outside the source with ``border="constant"``.

    Returns:
        ``(images, masks)`` of shapes (N, C, H', W') and (N, K, H', W'), input dtypes, on the
        images' device. Bicubic results are clipped per sample to the input's value range (and
        ``fill``).
    """
    if interpolation not in _MODES:
        raise ValueError(
            f"interpolation={interpolation!r} is unknown; use one of {sorted(_MODES)}."
        )
    if border not in _PADDING:
        raise ValueError(f"border={border!r} is unknown; use 'constant' or 'reflect'.")
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images are {shape}; give a tensor (N, C, H, W).")
    _check_grid_tensor(grid)
    if grid.shape[0] not in (1, images.shape[0]):
        raise ValueError(
            f"grid has {grid.shape[0]} samples for {images.shape[0]} images; give one grid per "
            "image or a single grid for all."
        )
    out_images = _warp_images(images, grid, _MODES[interpolation], border, float(fill))
    if masks is None:
        return out_images, None
    if not isinstance(masks, torch.Tensor) or masks.ndim != 4:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"masks are {shape}; give a tensor (N, K, H, W) or None.")
    if masks.shape[0] != images.shape[0] or masks.shape[2:] != images.shape[2:]:
        raise ValueError(
            f"masks {tuple(masks.shape)} do not match images {tuple(images.shape)}; give one "
            "(K, H, W) stack per image, of the image's height and width."
        )
    m = masks.to(device=images.device)
    sampled = _sample(m.to(_working_dtype(m.dtype)), grid, "nearest", border, 0.0)
    out_masks = sampled > 0.5 if m.dtype == torch.bool else sampled.to(m.dtype)
    return out_images, out_masks
