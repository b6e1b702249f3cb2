"""Random transforms: argument checks, parameter draws, left/right names, NumPy vs torch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxrseg.augment import transforms as T
from cxrseg.augment.geometry import gaussian_sigmas
from cxrseg.errors import InputError


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- bad arguments: one test each -----------------------------------------------------------


def test_random_distortion_refuses_negative_magnitude() -> None:
    with pytest.raises(InputError, match=r"magnitude=-2"):
        T.RandomDistortion(1.0, 4, 4, -2)


def test_random_distortion_refuses_non_integral_magnitude() -> None:
    with pytest.raises(InputError, match=r"magnitude=2\.5.*gaussian_distortion"):
        T.RandomDistortion(1.0, 4, 4, 2.5)


def test_random_distortion_accepts_integral_float_magnitude_as_int() -> None:
    op = T.RandomDistortion(1.0, 4, 4, 3.0)
    assert op.magnitude == 3 and isinstance(op.magnitude, int)


def test_bool_magnitude_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="magnitude=True"):
        T.RandomDistortion(1.0, 4, 4, True)


@pytest.mark.parametrize("probability", [-0.1, 1.5])
def test_probability_outside_unit_interval_is_refused(probability: float) -> None:
    with pytest.raises(InputError, match=rf"probability={probability}"):
        T.RandomDistortion(probability, 4, 4, 2)


def test_grid_of_one_tile_is_refused() -> None:
    with pytest.raises(InputError, match="grid_width=1"):
        T.RandomDistortion(1.0, 1, 4, 2)


def test_non_integral_grid_is_refused() -> None:
    with pytest.raises(InputError, match=r"grid_height=2\.5"):
        T.GaussianDistortion(1.0, 4, 2.5, 2.0)


def test_grid_larger_than_image_is_refused_with_the_sizes() -> None:
    op = T.RandomDistortion(1.0, 40, 4, 2)
    with pytest.raises(InputError, match=r"40 x 4 tiles .* 32 x 32 image"):
        op.sample_params(_rng(), 32, 32)


def test_unknown_corner_is_refused() -> None:
    with pytest.raises(InputError, match=r"corner='middle'.*'bell'"):
        T.GaussianDistortion(1.0, 4, 4, 2.0, corner="middle")


def test_unknown_method_is_refused() -> None:
    with pytest.raises(InputError, match=r"method='sideways'.*'in', 'out'"):
        T.GaussianDistortion(1.0, 4, 4, 2.0, method="sideways")


def test_non_positive_sdx_is_refused() -> None:
    with pytest.raises(InputError, match=r"sdx=0"):
        T.GaussianDistortion(1.0, 4, 4, 2.0, sdx=0)


def test_reversed_range_is_refused() -> None:
    with pytest.raises(InputError, match=r"min_factor=1\.3 is greater than max_factor=1\.1"):
        T.Zoom(1.0, 1.3, 1.1)


def test_rotation_beyond_90_degrees_is_refused() -> None:
    with pytest.raises(InputError, match=r"max_left_rotation=120"):
        T.Rotate(1.0, 120, 10)


def test_non_numeric_argument_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"min_gamma='low'"):
        T.Gamma(1.0, "low", 1.5)


# --- draws ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", sorted(T.TRANSFORMS.values(), key=lambda c: c.name))
def test_parameters_are_plain_json(cls: type) -> None:
    op = cls(1.0)
    params = op.sample_params(_rng(3), 48, 40)
    assert json.loads(json.dumps(params)) == params
    assert params["applied"] is True


def test_probability_zero_never_and_one_always_applies() -> None:
    never, always = T.Brightness(0.0), T.Brightness(1.0)
    rngs = [_rng(i) for i in range(200)]
    assert not any(never.sample_params(r, 8, 8)["applied"] for r in rngs)
    assert all(always.sample_params(_rng(i), 8, 8)["applied"] for i in range(200))


def test_probability_half_is_exact_not_augmentors_055() -> None:
    # Augmentor rounds its uniform draw to one decimal and compares with <=, so p=0.5 runs 55 %.
    # Over 20000 draws the standard error is 0.0035: 0.5 +- 0.02 is > 5 sigma from both.
    op = T.FlipTopBottom(0.5)
    rng = _rng(11)
    rate = np.mean([op.sample_params(rng, 8, 8)["applied"] for _ in range(20000)])
    assert abs(rate - 0.5) < 0.02


def test_not_applied_sample_records_no_numbers() -> None:
    assert T.Zoom(0.0, 0.9, 1.1).sample_params(_rng(), 16, 16) == {"applied": False}


def test_random_distortion_draws_integers_covering_the_whole_range() -> None:
    op = T.RandomDistortion(1.0, 5, 4, 2)
    draws = np.array([op.sample_params(_rng(i), 64, 64)["displacements"] for i in range(50)])
    assert draws.shape == (50, 3, 4, 2)
    assert np.issubdtype(draws.dtype, np.integer)
    assert set(np.unique(draws)) == {-2, -1, 0, 1, 2}


def test_gaussian_distortion_draws_scale_with_the_vertex_sigmas() -> None:
    op = T.GaussianDistortion(1.0, 6, 6, 10.0, corner="bell", method="in")
    sigmas = gaussian_sigmas(60, 60, 6, 6, 10.0, "bell", "in")
    draws = np.array([op.sample_params(_rng(i), 60, 60)["displacements"] for i in range(400)])
    z = draws / sigmas[None, :, :, None]
    assert abs(z.mean()) < 0.05
    assert abs(z.std() - 1.0) < 0.05


def test_elastic_records_a_seed_for_the_field() -> None:
    params = T.Elastic(1.0, 10.0, 3.0).sample_params(_rng(), 16, 16)
    assert params["alpha"] == 10.0 and params["sigma"] == 3.0 and isinstance(params["seed"], int)


def test_rotate_with_crop_leaves_no_empty_corner() -> None:
    op = T.Rotate(1.0, 30, 30)
    map_x, map_y = op.maps({"applied": True, "angle": 25.0}, 40, 60)
    # every output pixel samples inside the source image (up to half a pixel at the rim)
    assert map_x.min() >= -0.5 and map_x.max() <= 59.5
    assert map_y.min() >= -0.5 and map_y.max() <= 39.5


def test_rotate_without_crop_reaches_outside_the_image() -> None:
    map_x, _ = T.Rotate(1.0, 30, 30, crop=False).maps({"applied": True, "angle": 25.0}, 40, 60)
    assert map_x.min() < -1.0


# --- left/right names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "swapped"),
    [
        ("left_lung", "right_lung"),
        ("right_clavicle", "left_clavicle"),
        ("Lung Left", "Lung Right"),
        ("RIGHT_LUNG", "LEFT_LUNG"),
        ("LEft_lung", "Right_lung"),  # a capital initial stays capital; the rest follows it
        ("lEFT_lung", "right_lung"),
        ("heart", "heart"),
        ("cleft_palate", "cleft_palate"),
    ],
)
def test_swap_left_right_name(name: str, swapped: str) -> None:
    assert T.swap_left_right_name(name) == swapped
    assert T.mentions_left_right(name) == (name != swapped)


# --- intensity transforms: NumPy and torch agree --------------------------------------------

INTENSITY = [
    (T.Brightness(1.0), {"applied": True, "factor": 1.3}),
    (T.Contrast(1.0), {"applied": True, "factor": 0.7}),
    (T.Gamma(1.0), {"applied": True, "gamma": 1.6}),
    (T.GaussianNoise(1.0), {"applied": True, "std": 0.05, "seed": 7}),
    (T.Blur(1.0), {"applied": True, "sigma": 1.3}),
    (T.LocalContrast(1.0, sigma=3.0), {"applied": True, "amount": 0.8}),
    (T.Opacity(1.0), {"applied": True, "patches": [[0.4, 0.5, 0.2, 0.1, 0.7, 0.9]]}),
]


@pytest.mark.parametrize(("op", "params"), INTENSITY, ids=lambda v: getattr(v, "name", ""))
def test_intensity_numpy_and_torch_agree(op: T.IntensityTransform, params: dict) -> None:
    torch = pytest.importorskip("torch")
    image = _rng(1).random((24, 20), dtype=np.float32)
    expected = op.apply(image, params)
    got = op.apply_torch(torch.from_numpy(image)[None, None], [params])[0, 0].numpy()
    assert expected.dtype == np.float32
    assert expected.min() >= 0.0 and expected.max() <= 1.0
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_intensity_torch_leaves_samples_not_applied_unchanged() -> None:
    torch = pytest.importorskip("torch")
    images = torch.rand(2, 1, 8, 8)
    out = T.Gamma(1.0).apply_torch(images, [{"applied": False}, {"applied": True, "gamma": 2.0}])
    assert torch.equal(out[0], images[0])
    assert torch.allclose(out[1], images[1] ** 2)


@pytest.mark.parametrize(
    ("op", "params"),
    [
        (T.Brightness(1.0), {"applied": True, "factor": 1.0}),
        (T.Contrast(1.0), {"applied": True, "factor": 1.0}),
        (T.Gamma(1.0), {"applied": True, "gamma": 1.0}),
        (T.GaussianNoise(1.0), {"applied": True, "std": 0.0, "seed": 3}),
        (T.LocalContrast(1.0), {"applied": True, "amount": 0.0}),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_intensity_identity_parameters_give_the_image_back(
    op: T.IntensityTransform, params: dict
) -> None:
    image = _rng(2).random((16, 16), dtype=np.float32)
    np.testing.assert_allclose(op.apply(image, params), image, atol=1e-6)


def test_noise_is_the_same_field_for_the_same_seed() -> None:
    a = T.GaussianNoise.noise({"std": 0.1, "seed": 5}, 1, 8, 8)
    b = T.GaussianNoise.noise({"std": 0.1, "seed": 5}, 1, 8, 8)
    c = T.GaussianNoise.noise({"std": 0.1, "seed": 6}, 1, 8, 8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_opacity_pulls_its_patch_towards_the_level_and_leaves_far_pixels() -> None:
    image = np.full((40, 40), 0.2, np.float32)
    bright = {"applied": True, "patches": [[0.25, 0.5, 0.08, 0.08, 0.8, 0.9]]}
    out = T.Opacity(1.0).apply(image, bright)
    assert out[20, 10] == pytest.approx(0.2 + 0.8 * 0.7, abs=0.02)  # the centre, 80 % of the way
    assert out[20, 35] == pytest.approx(0.2, abs=1e-3)  # far away: untouched
    gas = {"applied": True, "patches": [[0.5, 0.8, 0.1, 0.1, 1.0, 0.0]]}
    assert T.Opacity(1.0).apply(np.full((40, 40), 0.6, np.float32), gas)[32, 20] < 0.05


@pytest.mark.parametrize(
    ("args", "match"),
    [({"min_level": 0.9, "max_level": 0.5}, "min_level"), ({"max_amount": 1.5}, "max_amount"),
     ({"max_count": 0}, "max_count"), ({"min_radius": 0.0}, "min_radius")],
)  # fmt: skip
def test_opacity_refuses_bad_arguments_naming_them(args: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        T.Opacity(1.0, **args)
