"""Tests of cxrseg.phantom: determinism, mask geometry, image range, dataset writer and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from cxrseg.cli import app
from cxrseg.errors import InputError
from cxrseg.io import read_image, read_mask
from cxrseg.phantom import STRUCTURES, Phantom, make_phantom, write_phantom_dataset

SEEDS = range(6)
SIZES = [32, 64, 256, (48, 96), (96, 48)]


@pytest.fixture(scope="module")
def phantom_samples() -> list[Phantom]:
    return [make_phantom(seed, 128) for seed in SEEDS]


def _centroid_x(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[1].mean())


# --- determinism ---


def test_same_seed_gives_bit_identical_phantom() -> None:
    a, b = make_phantom(7, 96), make_phantom(7, 96)
    assert a.image.tobytes() == b.image.tobytes()
    assert all(np.array_equal(a.masks[name], b.masks[name]) for name in STRUCTURES)


def test_different_seeds_give_different_images_and_masks() -> None:
    a, b = make_phantom(1, 96), make_phantom(2, 96)
    assert not np.array_equal(a.image, b.image)
    assert not np.array_equal(a.masks["left_lung"], b.masks["left_lung"])


def test_one_seed_gives_the_same_anatomy_at_every_size() -> None:
    small, large = make_phantom(3, 128), make_phantom(3, 256)
    for name in ("left_lung", "right_lung", "heart"):
        down = cv2.resize(large.masks[name], (128, 128), interpolation=cv2.INTER_NEAREST)
        overlap = 2 * (down & small.masks[name]).sum() / (down.sum() + small.masks[name].sum())
        assert overlap > 0.9, name


# --- image ---


@pytest.mark.parametrize("size", SIZES)
def test_image_is_float32_in_unit_range_with_requested_shape(size: int | tuple[int, int]) -> None:
    phantom = make_phantom(0, size)
    shape = (size, size) if isinstance(size, int) else size
    assert phantom.image.dtype == np.float32
    assert phantom.image.shape == shape
    assert phantom.image.min() >= 0.0 and phantom.image.max() <= 1.0


def test_lungs_are_darker_than_the_heart(phantom_samples: list[Phantom]) -> None:
    for p in phantom_samples:
        lungs = (p.masks["left_lung"] | p.masks["right_lung"]).astype(bool)
        assert p.image[lungs].mean() < p.image[p.masks["heart"].astype(bool)].mean() - 0.1


def test_image_has_contrast_not_a_flat_field(phantom_samples: list[Phantom]) -> None:
    for p in phantom_samples:
        low, high = np.percentile(p.image, [5, 95])
        assert high - low > 0.5


# --- masks ---


@pytest.mark.parametrize("size", SIZES)
def test_masks_are_binary_uint8_and_non_empty(size: int | tuple[int, int]) -> None:
    for seed in SEEDS:
        phantom = make_phantom(seed, size)
        assert list(phantom.masks) == list(STRUCTURES)
        for name, mask in phantom.masks.items():
            assert mask.dtype == np.uint8 and mask.shape == phantom.image.shape, name
            assert set(np.unique(mask)) == {0, 1}, (seed, name)


@pytest.mark.parametrize("size", [32, 64, (48, 96), 128])
def test_each_lung_is_one_connected_component(size: int | tuple[int, int]) -> None:
    for seed in SEEDS:
        phantom = make_phantom(seed, size)
        for name in ("left_lung", "right_lung"):
            _, count = ndimage.label(phantom.masks[name])  # 4-connectivity, as SciPy defaults
            assert count == 1, (seed, name)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_each_clavicle_overlaps_its_own_lung(size: int) -> None:
    for seed in SEEDS:
        m = make_phantom(seed, size).masks
        assert (m["left_clavicle"] & m["left_lung"]).any(), seed
        assert (m["right_clavicle"] & m["right_lung"]).any(), seed


def test_lungs_do_not_overlap_the_heart(phantom_samples: list[Phantom]) -> None:
    for p in phantom_samples:
        assert not (p.masks["left_lung"] & p.masks["heart"]).any()
        assert not (p.masks["right_lung"] & p.masks["heart"]).any()


def test_heart_borders_the_left_lung(phantom_samples: list[Phantom]) -> None:
    for p in phantom_samples:
        grown = ndimage.binary_dilation(p.masks["heart"], iterations=2)
        assert (grown & p.masks["left_lung"].astype(bool)).any()


def test_patient_left_is_on_the_image_right(phantom_samples: list[Phantom]) -> None:
    for p in phantom_samples:
        middle = p.image.shape[1] / 2
        assert _centroid_x(p.masks["left_lung"]) > middle
        assert _centroid_x(p.masks["left_clavicle"]) > middle
        assert _centroid_x(p.masks["right_lung"]) < middle
        assert _centroid_x(p.masks["right_clavicle"]) < middle


def test_stacked_masks_follow_structures_order(phantom_samples: list[Phantom]) -> None:
    p = phantom_samples[0]
    stacked = p.stacked_masks()
    assert stacked.shape == (len(STRUCTURES), *p.image.shape)
    assert np.array_equal(stacked[STRUCTURES.index("heart")], p.masks["heart"])


# --- bad arguments ---


@pytest.mark.parametrize(
    ("seed", "size", "error"),
    [
        (-1, 64, ValueError),
        (1.5, 64, TypeError),
        (True, 64, TypeError),
        (0, 16, ValueError),
        (0, (64, 31), ValueError),
        (0, "64", TypeError),
        (0, (64, 64, 1), TypeError),
    ],
)
def test_make_phantom_refuses_bad_arguments(seed: object, size: object, error: type) -> None:
    with pytest.raises(error):
        make_phantom(seed, size)  # type: ignore[arg-type]


# --- dataset writer ---


def test_dataset_has_standard_layout_and_readable_masks(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    ids = write_phantom_dataset(
        tmp_path, 3, size=64, seed=5, progress=lambda d, t: calls.append((d, t))
    )
    assert ids == ["phantom_0001", "phantom_0002", "phantom_0003"]
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [f"{i}.png" for i in ids]
    assert calls[-1] == (3, 3)
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["name"] == "cxrseg-phantom" and meta["structures"] == list(STRUCTURES)
    assert set(meta["labels"]) == set(STRUCTURES)
    assert meta["seed"] == 5 and meta["size"] == [64, 64]

    expected = make_phantom(meta["case_seeds"]["phantom_0002"], 64)
    for name in STRUCTURES:
        mask = read_mask(tmp_path / "masks" / name / "phantom_0002.png")
        assert np.array_equal(mask, expected.masks[name] * 255), name
    image, info = read_image(tmp_path / "images" / "phantom_0002.png")
    assert info.bit_depth == 8
    assert np.abs(image - expected.image).max() <= 0.5 / 255 + 1e-6


def test_dataset_is_reproducible_from_its_seed(tmp_path: Path) -> None:
    write_phantom_dataset(tmp_path / "a", 2, size=48, seed=9)
    write_phantom_dataset(tmp_path / "b", 2, size=48, seed=9)
    write_phantom_dataset(tmp_path / "c", 2, size=48, seed=10)
    image = {name: (tmp_path / name / "images" / "phantom_0002.png").read_bytes() for name in "abc"}
    assert image["a"] == image["b"]
    assert image["a"] != image["c"]


def test_dataset_refuses_a_folder_with_images(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    keep = tmp_path / "images" / "mine.png"
    keep.write_bytes(b"not a phantom")
    with pytest.raises(InputError, match="overwrite"):
        write_phantom_dataset(tmp_path, 1, size=32)
    assert keep.read_bytes() == b"not a phantom"
    assert not (tmp_path / "dataset.json").exists()


def test_dataset_overwrite_writes_and_deletes_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    keep = tmp_path / "images" / "mine.png"
    keep.write_bytes(b"keep me")
    write_phantom_dataset(tmp_path, 1, size=32, overwrite=True)
    assert keep.read_bytes() == b"keep me"
    assert (tmp_path / "images" / "phantom_0001.png").is_file()


@pytest.mark.parametrize(("n", "error"), [(0, ValueError), (2.0, TypeError)])
def test_dataset_refuses_bad_counts(tmp_path: Path, n: object, error: type) -> None:
    with pytest.raises(error):
        write_phantom_dataset(tmp_path, n, size=32)  # type: ignore[arg-type]
    assert not (tmp_path / "images").exists()


def test_dataset_is_discovered_by_cxrseg_data(tmp_path: Path) -> None:
    from cxrseg.data import discover

    write_phantom_dataset(tmp_path, 2, size=32)
    dataset = discover(tmp_path)
    assert sorted(dataset.structures) == sorted(STRUCTURES)
    assert [case.case_id for case in dataset.cases] == ["phantom_0001", "phantom_0002"]
    assert not [p for p in dataset.problems if p.severity == "error"]


# --- command line ---


def test_cli_writes_layout_and_suggests_inspect(tmp_path: Path) -> None:
    out = tmp_path / "ph"
    result = CliRunner().invoke(
        app, ["phantom", "--out", str(out), "-n", "2", "--size", "40x32", "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    assert "cxrseg inspect" in result.output
    for name in STRUCTURES:
        assert (out / "masks" / name / "phantom_0002.png").is_file()
    image, _ = read_image(out / "images" / "phantom_0001.png")
    assert image.shape == (40, 32)


def test_cli_refuses_a_non_empty_target(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["phantom", "--out", str(tmp_path), "-n", "1", "--size", "32"]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--overwrite" in result.output


@pytest.mark.parametrize("size", ["abc", "16", "32x"])
def test_cli_refuses_a_bad_size(tmp_path: Path, size: str) -> None:
    result = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path), "--size", size])
    assert result.exit_code == 2
    assert not (tmp_path / "images").exists()
