"""OpenCV resampling: invariants over every spatial transform, dtypes, borders, containers."""

from __future__ import annotations

import numpy as np
import pytest

from cxrseg.augment import geometry as F
from cxrseg.augment.resample_cv import remap, warp
from cxrseg.errors import InputError

H, W = 48, 56


def spatial_maps() -> dict[str, F.Maps]:
    """One map per spatial transform, with visible (non-identity) parameters."""
    rng = np.random.default_rng(0)
    mesh = F.mesh_map(H, W, 4, 3, rng.integers(-5, 6, (2, 3, 2)))
    gauss = F.mesh_map(
        H, W, 5, 5, rng.normal(0, 1, (4, 4, 2)) * F.gaussian_sigmas(H, W, 5, 5, 6)[..., None]
    )
    rotation = F.affine_map(H, W, F.affine_matrix(H, W, rotation=20, scale=1.1))
    return {
        "mesh": mesh,
        "gaussian": gauss,
        "elastic": F.elastic_map(H, W, 20.0, 4.0, seed=1),
        "rotation": rotation,
        "shear": F.affine_map(H, W, F.affine_matrix(H, W, shear=15)),
        "translate": F.affine_map(H, W, F.affine_matrix(H, W, translate=(3.5, -2.25))),
        "flip": F.flip_map(H, W, horizontal=True, vertical=True),
        "chain": F.compose_maps(mesh, rotation),
    }


IDENTITY_MAPS = {
    "mesh": F.mesh_map(H, W, 4, 3, np.zeros((2, 3, 2))),
    "elastic": F.elastic_map(H, W, 0.0, 4.0, seed=1),
    "affine": F.affine_map(H, W, F.affine_matrix(H, W)),
    "flip": F.flip_map(H, W),
}
MAPS = spatial_maps()


def smooth(dtype=np.float32) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    image = 0.5 + 0.4 * np.sin(x / 7.0) * np.cos(y / 9.0)
    if np.dtype(dtype).kind == "f":
        return image.astype(dtype)
    return np.round(image * np.iinfo(dtype).max).astype(dtype)


def labels() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    out = np.zeros((H, W), np.uint8)
    out[(x - 20) ** 2 + (y - 24) ** 2 < 120] = 3
    out[(x - 40) ** 2 + (y - 20) ** 2 < 60] = 7
    return out


@pytest.mark.parametrize("name", sorted(MAPS))
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.bool_])
def test_mask_values_are_a_subset_of_the_input(name, dtype):
    mask = labels().astype(dtype)
    _, (out,) = warp(smooth(), [mask], MAPS[name])
    assert out.dtype == mask.dtype
    assert set(np.unique(out)) <= set(np.unique(mask)) | {dtype(0)}


@pytest.mark.parametrize("name", sorted(MAPS))
def test_image_equal_to_its_mask_stays_equal(name):
    mask = labels() * 30
    image, (out,) = warp(mask, [mask], MAPS[name], interpolation="nearest")
    np.testing.assert_array_equal(image, out)


@pytest.mark.parametrize("name", sorted(MAPS))
def test_bilinear_image_differs_from_its_mask_only_on_edges(name):
    mask = (labels() > 0).astype(np.uint8) * 255
    image, (out,) = warp(mask, [mask], MAPS[name])
    differ = (image > 127) != (out > 127)
    edges = np.zeros_like(differ)
    for axis in (0, 1):
        step = np.diff(out.astype(int), axis=axis) != 0
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        edges[tuple(lo)] |= step
        edges[tuple(hi)] |= step
    assert not (differ & ~edges).any()


@pytest.mark.parametrize("name", sorted(IDENTITY_MAPS))
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_identity_parameters_give_the_input_back(name, interpolation):
    image = smooth(np.uint16)
    out, (mask,) = warp(image, [labels()], IDENTITY_MAPS[name], interpolation=interpolation)
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(mask, labels())


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_dtype_and_range_are_kept(dtype, interpolation):
    image = smooth(dtype)
    if np.dtype(dtype).kind == "u":
        image[::5, ::3] = np.iinfo(dtype).max  # hard edges make bicubic overshoot
    else:
        image[::5, ::3] = 1.0 if np.dtype(dtype).kind == "f" else 0
    out = remap(image, *MAPS["mesh"], interpolation=interpolation, border="reflect")
    assert out.dtype == image.dtype
    assert out.min() >= image.min() and out.max() <= image.max()


def test_uint16_keeps_its_full_range():
    image = smooth(np.uint16)
    out = remap(image, *MAPS["rotation"], interpolation="bicubic", border="reflect")
    assert out.max() > 0.8 * np.iinfo(np.uint16).max


def test_rgb_channels_are_warped_like_single_images():
    rgb = np.stack([smooth(np.uint8), labels() * 30, 255 - smooth(np.uint8)], axis=2)
    out = remap(rgb, *MAPS["elastic"])
    assert out.shape == rgb.shape
    np.testing.assert_array_equal(out[..., 1], remap(rgb[..., 1].copy(), *MAPS["elastic"]))


def test_more_than_four_channels_are_supported():
    stack = np.stack([smooth() * k for k in range(6)], axis=2)
    out = remap(stack, *MAPS["rotation"])
    np.testing.assert_allclose(out[..., 5], remap(stack[..., 5].copy(), *MAPS["rotation"]))


def test_constant_border_uses_the_fill_value():
    shift = F.affine_map(H, W, F.affine_matrix(H, W, translate=(4, 0)))
    out = remap(smooth(), *shift, fill=0.25)
    np.testing.assert_array_equal(out[:, :4], 0.25)


def test_reflect_border_mirrors_about_the_edge():
    image = smooth()
    shift = F.affine_map(H, W, F.affine_matrix(H, W, translate=(4, 0)))
    out = remap(image, *shift, border="reflect")
    np.testing.assert_allclose(out[:, :4], image[:, 3::-1], atol=1e-6)


def test_masks_follow_reflect_border_too():
    image = labels()
    shift = F.affine_map(H, W, F.affine_matrix(H, W, translate=(0, 6)))
    out, (mask,) = warp(image, [image], shift, border="reflect", interpolation="nearest")
    np.testing.assert_array_equal(out, mask)


def test_mask_containers_come_back_as_given():
    mask = labels()
    _, as_dict = warp(smooth(), {"heart": mask, "lung": mask > 0}, MAPS["flip"])
    _, as_tuple = warp(smooth(), (mask,), MAPS["flip"])
    _, none = warp(smooth(), None, MAPS["flip"])
    assert list(as_dict) == ["heart", "lung"] and as_dict["lung"].dtype == np.bool_
    assert isinstance(as_tuple, tuple) and none is None


def test_many_masks_match_one_at_a_time():
    masks = [labels() * k for k in range(1, 7)]
    _, together = warp(smooth(), masks, MAPS["gaussian"])
    for mask, out in zip(masks, together, strict=True):
        np.testing.assert_array_equal(out, remap(mask, *MAPS["gaussian"], interpolation="nearest"))


def test_mask_of_another_size_is_named_in_the_error():
    with pytest.raises(InputError, match="'heart'"):
        warp(smooth(), {"heart": np.zeros((H + 1, W), np.uint8)}, MAPS["flip"])


def test_mask_that_is_not_an_array_is_named_by_its_position():
    with pytest.raises(TypeError, match="mask #1 must be a numpy array"):
        warp(smooth(), [labels(), labels().tolist()], MAPS["flip"])


def test_unknown_interpolation_is_refused():
    with pytest.raises(ValueError, match="interpolation='lanczos'"):
        remap(smooth(), *MAPS["flip"], interpolation="lanczos")


def test_interpolating_int32_images_is_refused_with_a_fix():
    with pytest.raises(TypeError, match="float32"):
        remap(labels().astype(np.int32), *MAPS["flip"])


def test_fill_outside_the_dtype_is_refused():
    with pytest.raises(ValueError, match="fill=300"):
        remap(smooth(np.uint8), *MAPS["flip"], fill=300)
