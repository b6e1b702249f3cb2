"""Pipeline: invariants of every spatial transform, replay, determinism, torch, YAML, bad input."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from cxrseg.augment import transforms as T
from cxrseg.augment.pipeline import Pipeline
from cxrseg.errors import InputError

SIZE = (40, 48)  # H, W: not square, so x/y mix-ups show

# Every spatial transform, with parameters that must leave the image unchanged (None for the
# flips, whose identity is "applied twice").
SPATIAL = [
    (T.RandomDistortion(1.0, 4, 5, 3), {"displacements": np.zeros((4, 3, 2), int).tolist()}),
    (
        T.GaussianDistortion(1.0, 5, 4, 4.0, "bell", "in"),
        {"displacements": np.zeros((3, 4, 2)).tolist()},
    ),
    (T.Elastic(1.0, 6.0, 3.0), {"alpha": 0.0, "sigma": 3.0, "seed": 1}),
    (T.Rotate(1.0, 20, 20), {"angle": 0.0}),
    (T.Zoom(1.0, 0.8, 1.25), {"factor": 1.0}),
    (T.Translate(1.0, 0.2, 0.2), {"x": 0.0, "y": 0.0}),
    (T.FlipLeftRight(1.0), None),
    (T.FlipTopBottom(1.0), None),
]
SPATIAL_IDS = [op.name for op, _ in SPATIAL]


def _blobs(seed: int, values: tuple[int, ...] = (0, 3, 7)) -> np.ndarray:
    """uint8 label mask (H, W) of a few rectangles with the given values."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(SIZE, dtype=np.uint8)
    for value in values[1:]:
        y, x = rng.integers(2, SIZE[0] - 16), rng.integers(2, SIZE[1] - 16)
        mask[y : y + 14, x : x + 14] = value
    return mask


def _smooth_image(seed: int = 0) -> np.ndarray:
    """Smooth float32 (H, W) in [0, 1]: interpolation differences between backends stay small."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : SIZE[0], 0 : SIZE[1]].astype(np.float32)
    image = np.zeros(SIZE, dtype=np.float32)
    for _ in range(4):
        cy, cx, s = rng.uniform(0, SIZE[0]), rng.uniform(0, SIZE[1]), rng.uniform(6, 12)
        image += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))
    return (image / image.max()).astype(np.float32)


def _pipeline(op: T.RandomTransform, **settings: object) -> Pipeline:
    return Pipeline(seed=5, **settings).add(op)  # type: ignore[arg-type]


# --- invariants over every spatial transform ------------------------------------------------


@pytest.mark.parametrize(("op", "identity"), SPATIAL, ids=SPATIAL_IDS)
def test_mask_values_stay_a_subset_of_the_input_values(
    op: T.RandomTransform, identity: object
) -> None:
    pipeline = _pipeline(op)
    mask = _blobs(1)
    for index in range(3):
        _, out = pipeline(_smooth_image(), {"m": mask}, index=index)
        assert set(np.unique(out["m"])) <= {0, 3, 7}
        assert out["m"].dtype == np.uint8


@pytest.mark.parametrize(("op", "identity"), SPATIAL, ids=SPATIAL_IDS)
def test_image_equal_to_its_mask_stays_equal_to_the_warped_mask(
    op: T.RandomTransform, identity: object
) -> None:
    # With nearest interpolation an image that equals its mask must stay equal to it: this
    # fails as soon as the masks are warped with any other map than the image.
    pipeline = _pipeline(op, interpolation="nearest")
    mask = _blobs(2, values=(0, 1))
    for index in range(3):
        image, out = pipeline(mask.astype(np.float32), [mask], index=index)
        assert np.array_equal(image, out[0].astype(np.float32))


@pytest.mark.parametrize(("op", "identity"), SPATIAL, ids=SPATIAL_IDS)
def test_identity_parameters_give_the_input_back(op: T.RandomTransform, identity: object) -> None:
    image, mask = _smooth_image(), _blobs(3)
    if identity is None:  # a flip applied twice
        pipeline = Pipeline().add(op).add(op)
        params = [{"op": op.name, "applied": True}] * 2
    else:
        pipeline = Pipeline().add(op)
        params = [{"op": op.name, "applied": True, **identity}]  # type: ignore[dict-item]
    out_image, out_masks = pipeline.replay(image, {"m": mask}, params)
    np.testing.assert_allclose(out_image, image, atol=1e-5)
    assert np.array_equal(out_masks["m"], mask)


def test_intensity_transforms_never_touch_masks() -> None:
    pipeline = Pipeline().brightness(1, 0.5, 0.6).gaussian_noise(1, 0.1, 0.2).blur(1, 1, 2)
    mask = _blobs(4)
    image, out = pipeline(_smooth_image(), {"m": mask})
    assert np.array_equal(out["m"], mask)
    assert not np.allclose(image, _smooth_image())


# --- replay and determinism -----------------------------------------------------------------


def _full_pipeline(seed: int = 0) -> Pipeline:
    return (
        Pipeline(seed=seed)
        .random_distortion(1, 4, 4, 3)
        .rotate(0.7, 10, 10)
        .brightness(0.5, 0.8, 1.2)
        .gaussian_distortion(1, 4, 4, 3.0, "bell", "in")
        .gaussian_noise(0.5, 0.0, 0.05)
        .flip_left_right(0.5)
    )


def test_replay_of_recorded_parameters_gives_the_same_sample() -> None:
    pipeline, image = _full_pipeline(), _smooth_image()
    masks = {"left_lung": _blobs(5), "right_lung": _blobs(6)}
    out_image, out_masks, params = pipeline.apply_with_params(image, masks, index=4, epoch=2)
    recorded = json.loads(json.dumps(params))  # as stored in a manifest
    again_image, again_masks = pipeline.replay(image, masks, recorded)
    assert np.array_equal(again_image, out_image)
    assert all(np.array_equal(again_masks[k], out_masks[k]) for k in masks)


def test_same_seed_epoch_and_index_give_the_same_sample_in_any_order_or_thread() -> None:
    pipeline, image = _full_pipeline(), _smooth_image()
    in_order = [pipeline(image, index=i)[0] for i in range(6)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(lambda i: pipeline(image, index=i)[0], reversed(range(6))))
    assert all(np.array_equal(a, b) for a, b in zip(in_order, reversed(threaded), strict=True))


@pytest.mark.parametrize("change", ["index", "epoch", "seed"])
def test_index_epoch_and_seed_each_change_the_sample(change: str) -> None:
    image = _smooth_image()
    base = _full_pipeline(seed=1)(image, index=1, epoch=1)[0]
    args = {"index": 1, "epoch": 1}
    seed = 1
    if change == "seed":
        seed = 2
    else:
        args[change] = 2
    other = _full_pipeline(seed=seed)(image, **args)[0]
    assert not np.array_equal(base, other)


def test_appending_an_operation_keeps_the_earlier_draws() -> None:
    short = Pipeline(seed=3).random_distortion(1, 4, 4, 5).zoom(0.5, 0.9, 1.1)
    longer = Pipeline(seed=3).random_distortion(1, 4, 4, 5).zoom(0.5, 0.9, 1.1).blur(1, 1, 2)
    assert longer.sample_params(*SIZE, index=9)[:2] == short.sample_params(*SIZE, index=9)


def test_sample_cycles_through_pairs_with_the_sample_number_as_index() -> None:
    pairs = [(_smooth_image(i), {"m": _blobs(i)}) for i in range(3)]
    pipeline = _full_pipeline()
    samples = pipeline.sample(5, pairs)
    assert len(samples) == 5
    expected = pipeline(pairs[4 % 3][0], pairs[4 % 3][1], index=4)
    assert np.array_equal(samples[4][0], expected[0])
    assert np.array_equal(samples[4][1]["m"], expected[1]["m"])


def test_sample_from_an_empty_source_is_refused() -> None:
    with pytest.raises(InputError, match="empty dataset"):
        _full_pipeline().sample(2, [])


# --- containers, dtypes, left/right ---------------------------------------------------------


def test_dtypes_and_containers_come_back_as_given() -> None:
    pipeline = Pipeline().random_distortion(1, 4, 4, 2)
    image8 = (_smooth_image() * 255).astype(np.uint8)
    out8, masks = pipeline(image8, (_blobs(1) > 0, _blobs(2)))
    assert out8.dtype == np.uint8 and isinstance(masks, tuple)
    assert masks[0].dtype == np.bool_ and masks[1].dtype == np.uint8
    out16, none = pipeline((_smooth_image() * 65535).astype(np.uint16))
    assert out16.dtype == np.uint16 and none is None


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_images_that_only_move_match_the_float_route(dtype: type) -> None:
    """Resampled in their own dtype (no float round trip), within one grey level of it."""
    pipeline = Pipeline(seed=2, fill=0.4).random_distortion(1, 4, 4, 3).rotate(1, 15, 15)
    scale = np.iinfo(dtype).max
    image = np.round(_smooth_image(3) * scale).astype(dtype)
    out, _ = pipeline(image, index=1)
    via_float, _ = pipeline(image.astype(np.float32) / scale, index=1)
    assert out.dtype == dtype
    assert np.abs(out.astype(float) - np.round(via_float * scale)).max() <= 1


def test_horizontal_flip_swaps_left_and_right_masks() -> None:
    left, right, heart = _blobs(1, (0, 1)), _blobs(2, (0, 1)), _blobs(3, (0, 1))
    masks = {"left_lung": left, "heart": heart, "right_lung": right}
    _, out = Pipeline().flip_left_right(1)(_smooth_image(), masks)
    assert list(out) == list(masks)
    assert np.array_equal(out["left_lung"], right[:, ::-1])
    assert np.array_equal(out["right_lung"], left[:, ::-1])
    assert np.array_equal(out["heart"], heart[:, ::-1])


def test_horizontal_flip_on_a_list_only_flips() -> None:
    left, right = _blobs(1, (0, 1)), _blobs(2, (0, 1))
    _, out = Pipeline().flip_left_right(1)(_smooth_image(), [left, right])
    assert np.array_equal(out[0], left[:, ::-1]) and np.array_equal(out[1], right[:, ::-1])


def test_flip_without_swap_refuses_left_right_names() -> None:
    pipeline = Pipeline().flip_left_right(0.0, swap_left_right=False)
    masks = {"left_lung": _blobs(1), "right_lung": _blobs(2)}
    with pytest.raises(InputError, match=r"swap_left_right=False would mislabel.*left_lung"):
        pipeline(_smooth_image(), masks)


def test_flip_refuses_a_side_without_its_partner() -> None:
    with pytest.raises(InputError, match=r"\['left_lung'\] have no partner \['right_lung'\]"):
        Pipeline().flip_left_right(1)(_smooth_image(), {"left_lung": _blobs(1)})


# --- bad input ------------------------------------------------------------------------------


def test_masks_of_another_size_are_refused() -> None:
    with pytest.raises(
        InputError, match=r"mask 'm' has shape \(40, 40\) but the image is \(40, 48\)"
    ):
        Pipeline().zoom(1, 1, 1.1)(_smooth_image(), {"m": np.zeros((40, 40), np.uint8)})


def test_float_masks_are_refused() -> None:
    with pytest.raises(InputError, match=r"float32.*threshold"):
        Pipeline().zoom(1, 1, 1.1)(_smooth_image(), [np.zeros(SIZE, np.float32)])


def test_float_image_outside_unit_range_is_refused() -> None:
    with pytest.raises(InputError, match=r"values in \[.*, 255\].*image / 255"):
        Pipeline()(_smooth_image() * 255)


def test_grid_larger_than_the_image_is_refused_when_called() -> None:
    with pytest.raises(InputError, match="grid of 60 x 4 tiles"):
        Pipeline().random_distortion(1, 60, 4, 2)(_smooth_image())


def test_negative_index_is_refused() -> None:
    with pytest.raises(InputError, match="index=-1"):
        Pipeline()(_smooth_image(), index=-1)


def test_parameters_of_another_pipeline_are_refused() -> None:
    params = Pipeline().zoom(1, 1, 1.2).sample_params(*SIZE)
    with pytest.raises(InputError, match=r"\['zoom'\] do not fit .*\['rotate'\]"):
        Pipeline().rotate(1, 5, 5).replay(_smooth_image(), None, params)


def test_unknown_interpolation_is_refused() -> None:
    with pytest.raises(InputError, match="interpolation='lanczos'"):
        Pipeline(interpolation="lanczos")


# --- saving ---------------------------------------------------------------------------------


def _every_op() -> Pipeline:
    return (
        Pipeline(seed=42, interpolation="bicubic", border="reflect", fill=0.25)
        .random_distortion(0.9, 5, 4, 6)
        .gaussian_distortion(0.8, 4, 5, 3.5, "ul", "out", 0.4, 0.6, 0.1, 0.2)
        .elastic(0.3, 12.5, 2.5)
        .rotate(0.25, 7, 3.5, crop=False)
        .zoom(0.5, 0.85, 1.15)
        .translate(0.5, 0.05, 0.1)
        .flip_left_right(0.5)
        .flip_top_bottom(0.1)
        .brightness(0.5, 0.9, 1.1)
        .contrast(0.5, 0.7, 1.3)
        .gamma(0.5, 0.8, 1.2)
        .gaussian_noise(0.5, 0.01, 0.02)
        .blur(0.5, 0.3, 0.9)
        .local_contrast(0.5, -0.5, 0.5, 4.0)
        .opacity(0.5, 0.0, 0.2, 0.9, 0.05, 0.1, 2)
    )


def test_yaml_round_trip_is_exact(tmp_path: Path) -> None:
    pipeline = _every_op()
    path = pipeline.save_yaml(tmp_path / "pipeline.yaml")
    loaded = Pipeline.from_yaml(path)
    assert loaded == pipeline
    assert loaded.to_dict() == pipeline.to_dict()
    assert loaded.sample_params(*SIZE, index=3) == pipeline.sample_params(*SIZE, index=3)
    assert len(loaded) == len(T.TRANSFORMS)


def test_yaml_with_an_unknown_op_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("seed: 0\noperations:\n  - op: sharpen\n    probability: 1\n")
    with pytest.raises(InputError, match=r"p\.yaml: operation #0 has unknown op 'sharpen'.*zoom"):
        Pipeline.from_yaml(path)


def test_yaml_with_a_wrong_argument_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("operations:\n  - op: zoom\n    probability: 1\n    factor: 2\n")
    with pytest.raises(InputError, match=r"\(zoom\) has arguments .*min_factor"):
        Pipeline.from_yaml(path)


def test_unknown_pipeline_key_is_refused() -> None:
    with pytest.raises(InputError, match=r"unknown pipeline keys \['ops'\]"):
        Pipeline.from_dict({"ops": []})


# --- torch backend --------------------------------------------------------------------------


def _batch(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([_smooth_image(i) for i in range(n)])
    masks = np.stack([np.stack([_blobs(i, (0, 1)), _blobs(i + 10, (0, 1))]) for i in range(n)])
    return images, masks


TORCH_PIPELINES = {
    "random_distortion": lambda: Pipeline(seed=1).random_distortion(0.75, 4, 4, 3),
    "composed": lambda: Pipeline(seed=2).rotate(1, 10, 10).zoom(1, 0.9, 1.1).flip_left_right(0.5),
    "affine_mesh_affine": lambda: (
        Pipeline(seed=4, border="reflect")
        .rotate(1, 10, 10)
        .random_distortion(1, 4, 4, 3)
        .flip_left_right(0.5)
    ),
    "bicubic_elastic": lambda: Pipeline(seed=5, interpolation="bicubic").elastic(1, 8.0, 4.0),
    "mixed": lambda: (
        Pipeline(seed=3)
        .gaussian_distortion(1, 4, 4, 3.0, "bell", "in")
        .brightness(1, 0.8, 1.2)
        .translate(1, 0.1, 0.1)
        .gamma(1, 0.8, 1.2)
        .blur(0.5, 0.5, 1.0)
        .gaussian_noise(0.5, 0.0, 0.02)
        .local_contrast(1, 0.0, 0.5, 3.0)
    ),
}


@pytest.mark.parametrize("name", list(TORCH_PIPELINES))
def test_numpy_and_torch_backends_agree(name: str) -> None:
    torch = pytest.importorskip("torch")
    pipeline = TORCH_PIPELINES[name]()
    images, masks = _batch()
    out_images, out_masks = pipeline.batch(
        torch.from_numpy(images[:, None]), torch.from_numpy(masks), indices=[5, 6, 7, 8]
    )
    for i, index in enumerate([5, 6, 7, 8]):
        image, listed = pipeline(images[i], list(masks[i]), index=index)
        assert np.abs(out_images[i, 0].numpy() - image).mean() < 2e-3
        assert np.abs(out_images[i, 0].numpy() - image).max() < 0.05
        differing = (out_masks[i].numpy() != np.stack(listed)).mean()
        assert differing <= 0.001


def test_batch_does_not_depend_on_the_batch_size() -> None:
    torch = pytest.importorskip("torch")
    pipeline = TORCH_PIPELINES["mixed"]()
    images, masks = (torch.from_numpy(a) for a in _batch())
    whole, whole_masks = pipeline.batch(images[:, None], masks, epoch=1)
    for i in range(4):
        one, one_masks = pipeline.batch(
            images[i : i + 1, None], masks[i : i + 1], indices=[i], epoch=1
        )
        assert torch.allclose(one[0], whole[i], atol=1e-6)
        assert torch.equal(one_masks[0], whole_masks[i])


def test_batch_swaps_named_left_right_channels() -> None:
    torch = pytest.importorskip("torch")
    images, masks = (torch.from_numpy(a) for a in _batch(1))
    _, out = (
        Pipeline()
        .flip_left_right(1)
        .batch(images[:, None], masks, labels=["left_lung", "right_lung"])
    )
    assert torch.equal(out[0, 0], masks[0, 1].flip(-1))
    assert torch.equal(out[0, 1], masks[0, 0].flip(-1))


def test_batch_refuses_float_masks() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(InputError, match="probabilities"):
        Pipeline().zoom(1, 1, 1.1).batch(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
