"""torch backend: same geometry as NumPy, batched with per-sample grids, same resampled values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrseg.augment import geometry as F
from cxrseg.augment import resample_torch as B
from cxrseg.augment.resample_cv import remap

H, W = 40, 52


def smooth(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    fx, fy = rng.uniform(5, 9, 2)
    return (0.5 + 0.4 * np.sin(x / fx) * np.cos(y / fy)).astype(np.float32)


def labels() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    out = np.zeros((H, W), np.uint8)
    out[(x - 18) ** 2 + (y - 20) ** 2 < 100] = 2
    out[(x - 38) ** 2 + (y - 15) ** 2 < 50] = 5
    return out


def mesh_displacements(n: int) -> np.ndarray:
    return np.random.default_rng(n).normal(0, 3, (n, 3, 4, 2)).astype(np.float32)


def test_maps_to_grid_and_back_is_lossless():
    maps = F.elastic_map(H, W, 8.0, 3.0, seed=0)
    map_x, map_y = B.grid_to_maps(B.maps_to_grid(*maps))
    assert B.maps_to_grid(*maps).shape == (1, H, W, 2)
    np.testing.assert_allclose(map_x[0].numpy(), maps[0], atol=1e-4)
    np.testing.assert_allclose(map_y[0].numpy(), maps[1], atol=1e-4)


def test_mesh_grid_batch_matches_mesh_map_per_sample():
    d = mesh_displacements(3)
    grid = B.mesh_grid_batch(H, W, 5, 4, torch.from_numpy(d))
    for i in range(3):
        expected = B.maps_to_grid(*F.mesh_map(H, W, 5, 4, d[i]))[0]
        torch.testing.assert_close(grid[i], expected, atol=1e-6, rtol=0)


def test_affine_grid_batch_matches_affine_map_per_sample():
    matrices = [F.affine_matrix(H, W, rotation=a, scale=s) for a, s in ((10, 1.0), (-25, 1.3))]
    grid = B.affine_grid_batch(H, W, torch.tensor(np.stack(matrices)))
    for i, matrix in enumerate(matrices):
        expected = B.maps_to_grid(*F.affine_map(H, W, matrix))[0]
        torch.testing.assert_close(grid[i], expected, atol=1e-5, rtol=0)


def test_compose_grids_matches_compose_maps_for_smooth_fields():
    first = F.elastic_map(H, W, 6.0, 4.0, seed=2)
    second = F.affine_map(H, W, F.affine_matrix(H, W, rotation=12))
    got = B.grid_to_maps(B.compose_grids(B.maps_to_grid(*first), B.maps_to_grid(*second)))
    want = F.compose_maps(first, second)
    inside = (second[0] >= 0) & (second[0] <= W - 1) & (second[1] >= 0) & (second[1] <= H - 1)
    error = np.hypot(got[0][0].numpy() - want[0], got[1][0].numpy() - want[1])
    assert error[inside].max() < 0.01


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("border", ["constant", "reflect"])
def test_numpy_and_torch_backends_agree(interpolation, border):
    d = mesh_displacements(2)
    images = np.stack([smooth(0), smooth(1)])
    masks = np.stack([labels(), labels()[::-1].copy()])
    grid = B.mesh_grid_batch(H, W, 5, 4, torch.from_numpy(d))
    out, out_masks = B.warp_batch(
        torch.from_numpy(images)[:, None],
        torch.from_numpy(masks)[:, None],
        grid,
        interpolation=interpolation,
        border=border,
        fill=0.2,
    )
    for i in range(2):
        maps = F.mesh_map(H, W, 5, 4, d[i])
        ref = remap(images[i], *maps, interpolation=interpolation, border=border, fill=0.2)
        ref_mask = remap(masks[i], *maps, interpolation="nearest", border=border)
        assert np.abs(out[i, 0].numpy() - ref).max() < 1e-3
        assert np.mean(out_masks[i, 0].numpy() == ref_mask) > 0.999


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_masks_keep_dtype_and_values(dtype):
    masks = torch.from_numpy(labels()).to(dtype)[None, None].repeat(2, 3, 1, 1)
    grid = B.mesh_grid_batch(H, W, 5, 4, torch.from_numpy(mesh_displacements(2) * 3))
    _, out = B.warp_batch(torch.rand(2, 1, H, W), masks, grid)
    assert out is not None and out.dtype == dtype
    assert set(out.unique().tolist()) <= set(masks.unique().tolist())


def test_image_equal_to_its_mask_stays_equal():
    mask = torch.from_numpy(labels())[None, None].repeat(3, 1, 1, 1)
    grid = B.mesh_grid_batch(H, W, 5, 4, torch.from_numpy(mesh_displacements(3) * 2))
    out, out_mask = B.warp_batch(mask, mask, grid, interpolation="nearest")
    torch.testing.assert_close(out, out_mask)


def test_integer_images_keep_dtype_and_range_with_bicubic():
    image = torch.from_numpy(labels().astype(np.uint8) * 50)[None, None]
    grid = B.mesh_grid_batch(H, W, 5, 4, torch.from_numpy(mesh_displacements(1) * 2))
    out, _ = B.warp_batch(image, None, grid, interpolation="bicubic")
    assert out.dtype == torch.uint8
    assert int(out.max()) <= int(image.max())


def test_identity_grid_gives_the_input_back():
    images = torch.rand(2, 3, H, W)
    grid = B.mesh_grid_batch(H, W, 5, 4, torch.zeros(2, 3, 4, 2))
    out, _ = B.warp_batch(images, None, grid, interpolation="bicubic")
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_one_grid_is_shared_by_the_whole_batch():
    images = torch.rand(4, 1, H, W)
    grid = B.maps_to_grid(*F.flip_map(H, W, horizontal=True))
    out, _ = B.warp_batch(images, None, grid)
    torch.testing.assert_close(out, images.flip(-1), atol=1e-5, rtol=0)


def test_grid_count_must_match_the_batch():
    grid = B.mesh_grid_batch(H, W, 5, 4, torch.zeros(2, 3, 4, 2))
    with pytest.raises(ValueError, match="2 samples for 3 images"):
        B.warp_batch(torch.rand(3, 1, H, W), None, grid)


def test_unknown_interpolation_is_refused():
    grid = B.maps_to_grid(*F.identity_map(H, W))
    with pytest.raises(ValueError, match="interpolation='area'"):
        B.warp_batch(torch.rand(1, 1, H, W), None, grid, interpolation="area")


def test_wrong_displacement_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(N, 3, 4, 2\)"):
        B.mesh_grid_batch(H, W, 5, 4, torch.zeros(2, 4, 4, 2))


def test_mesh_grid_with_base_matches_compose_maps():
    d = np.random.default_rng(9).integers(-6, 7, (2, 3, 4, 2)).astype(np.float32)
    gauss = mesh_displacements(2)
    base = B.mesh_grid_batch(H, W, 5, 4, torch.from_numpy(gauss))
    grid = B.mesh_grid_batch(H, W, 5, 4, torch.from_numpy(d), base=base)
    got_x, got_y = B.grid_to_maps(grid)
    for i in range(2):
        want = F.compose_maps(F.mesh_map(H, W, 5, 4, d[i]), F.mesh_map(H, W, 5, 4, gauss[i]))
        assert np.abs(got_x[i].numpy() - want[0]).max() < 1e-3
        assert np.abs(got_y[i].numpy() - want[1]).max() < 1e-3


def test_compose_grids_follows_the_affine_part_outside_the_image_like_compose_maps():
    rotation = F.affine_map(H, W, F.affine_matrix(H, W, rotation=25, scale=1.1))
    field = F.elastic_map(H, W, 3.0, 4.0, seed=7)
    ident_x, ident_y = F.identity_map(H, W)
    # A map with a strong affine part that says nothing of how it was made.
    first = (rotation[0] + field[0] - ident_x, rotation[1] + field[1] - ident_y)
    second = F.affine_map(H, W, F.affine_matrix(H, W, scale=0.7))  # samples well outside
    want = F.compose_maps(first, second)
    got = B.grid_to_maps(B.compose_grids(B.maps_to_grid(*first), B.maps_to_grid(*second)))
    error = np.hypot(got[0][0].numpy() - want[0], got[1][0].numpy() - want[1])
    assert error.max() < 0.02


def _pipeline_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return smooth(seed), np.roll(labels(), 3 * seed, axis=1)


def test_pipeline_batch_matches_numpy_for_distortion_rotate_elastic():
    from cxrseg.augment.pipeline import Pipeline

    pipeline = Pipeline(seed=3).random_distortion(1, 4, 4, 5).rotate(1, 20, 20).elastic(1, 8, 4)
    pairs = [_pipeline_pair(i) for i in range(3)]
    images = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
    masks = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None]
    out, out_masks = pipeline.batch(images, masks)
    for i, (image, mask) in enumerate(pairs):
        ref, (ref_mask,) = pipeline(image, [mask], index=i)
        # Everywhere, the border ring included: each op is evaluated exactly in both paths.
        assert np.abs(out[i, 0].numpy() - ref).max() < 1e-3
        assert np.mean(out_masks[i, 0].numpy() != ref_mask) <= 0.001


@pytest.mark.parametrize("intensity", [False, True])
def test_pipeline_batch_of_uint8_images_keeps_the_dtype(intensity):
    from cxrseg.augment.pipeline import Pipeline

    pipeline = Pipeline(seed=4).random_distortion(1, 4, 4, 5).rotate(1, 15, 15)
    if intensity:
        pipeline.brightness(1, 0.8, 1.2)
    pairs = [_pipeline_pair(i) for i in range(2)]
    images = [np.round(p[0] * 255).astype(np.uint8) for p in pairs]
    out, _ = pipeline.batch(torch.from_numpy(np.stack(images))[:, None])
    assert out.dtype == torch.uint8
    for i, image in enumerate(images):
        ref, _ = pipeline(image, None, index=i)
        assert np.abs(out[i, 0].numpy().astype(int) - ref).max() <= 1
