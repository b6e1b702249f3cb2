"""Offline augmentation to disk: layout, manifest, replay, workers, resume, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxrseg.augment.pipeline import Pipeline
from cxrseg.augment_offline import augment_dataset, read_manifest, replay_record
from cxrseg.data.loading import resize_pair
from cxrseg.errors import InputError

PHANTOMS = {"n": 3, "size": 64, "seed": 0}  # the conftest fixture's dataset

SIZE = 48
STRUCTURES = ("left_lung", "right_lung", "heart", "left_clavicle", "right_clavicle")


def _pipeline(seed: int = 0) -> Pipeline:
    return (
        Pipeline(seed=seed).random_distortion(1, 4, 4, 3).flip_left_right(0.5).gamma(0.5, 0.8, 1.2)
    )


def _files(out: Path) -> dict[str, bytes]:
    """Every output file except the manifest, by relative path."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "manifest.jsonl"
    }


def _run(data: Path, out: Path, n: int = 6, **kwargs: object) -> object:
    args: dict[str, object] = {"pipeline": _pipeline(), "size": SIZE, **kwargs}
    return augment_dataset(data, out, n, **args)  # type: ignore[arg-type]


def test_writes_the_standard_layout_with_a_manifest(phantoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "aug"
    summary = _run(phantoms, out, n=4)
    ids = [f"phantom_000{k % 3 + 1}_aug{k:05d}" for k in range(4)]
    assert sorted(p.stem for p in (out / "images").iterdir()) == sorted(ids)
    for structure in STRUCTURES:
        assert sorted(p.stem for p in (out / "masks" / structure).iterdir()) == sorted(ids)
    records = read_manifest(out / "manifest.jsonl")
    assert [r["id"] for r in records] == ids
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert {r["seed"] for r in records} == {0} and {r["epoch"] for r in records} == {0}
    assert Pipeline.from_yaml(out / "pipeline.yaml") == _pipeline()
    assert summary.written == 4 and summary.skipped == 0  # type: ignore[attr-defined]


def test_written_files_are_the_replayed_manifest_samples(phantoms: Path, tmp_path: Path) -> None:
    from cxrseg.data import discover
    from cxrseg.io import read_image, read_mask

    out = tmp_path / "aug"
    _run(phantoms, out, n=3)
    dataset, pipeline = discover(phantoms), Pipeline.from_yaml(out / "pipeline.yaml")
    for record in read_manifest(out / "manifest.jsonl"):
        image, masks = replay_record(record, dataset, pipeline)
        written, _ = read_image(out / "images" / f"{record['id']}.png")
        assert image.shape == (SIZE, SIZE)
        assert np.abs(written - image).max() <= 0.5 / 255 + 1e-6
        for name, mask in masks.items():
            assert np.array_equal(
                read_mask(out / "masks" / name / f"{record['id']}.png"), mask * 255
            )


def test_output_does_not_depend_on_the_number_of_workers(phantoms: Path, tmp_path: Path) -> None:
    _run(phantoms, tmp_path / "one", workers=1)
    _run(phantoms, tmp_path / "two", workers=2)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    one = (tmp_path / "one" / "manifest.jsonl").read_text()
    assert one == (tmp_path / "two" / "manifest.jsonl").read_text()


def test_input_folder_is_never_written(phantoms: Path, tmp_path: Path) -> None:
    before = _files(phantoms)
    _run(phantoms, tmp_path / "aug", n=2)
    assert _files(phantoms) == before


def test_interrupted_run_continues_without_duplicates(phantoms: Path, tmp_path: Path) -> None:
    reference, out = tmp_path / "reference", tmp_path / "resumed"
    _run(phantoms, reference)
    _run(phantoms, out)
    # Simulate a crash: the last sample's image never got renamed into place and its manifest
    # line is half written; an atomic_write temporary file was left behind.
    manifest = out / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    last = json.loads(lines[-1])
    (out / "images" / f"{last['id']}.png").unlink()
    manifest.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:25])
    (out / "images" / f".{last['id']}.png.tmp-dead.png").write_bytes(b"partial")

    summary = _run(phantoms, out)

    assert summary.written == 1 and summary.skipped == 5  # type: ignore[attr-defined]
    assert len(list((out / "images").iterdir())) == 6
    assert _files(out) == _files(reference)
    assert manifest.read_text() == (reference / "manifest.jsonl").read_text()


def test_rerun_with_more_samples_only_adds_the_new_ones(phantoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "aug"
    _run(phantoms, out, n=2)
    summary = _run(phantoms, out, n=4)
    assert summary.written == 2 and summary.skipped == 2  # type: ignore[attr-defined]
    assert [r["index"] for r in read_manifest(out / "manifest.jsonl")] == [0, 1, 2, 3]


def test_rerun_with_another_seed_is_refused(phantoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "aug"
    _run(phantoms, out, n=1)
    with pytest.raises(InputError, match=r"another pipeline or seed.*new --out"):
        _run(phantoms, out, n=1, seed=1)


def test_rerun_with_another_size_is_refused(phantoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "aug"
    _run(phantoms, out, n=1)
    with pytest.raises(InputError, match=r"other settings \{'size': 48\}"):
        _run(phantoms, out, n=1, size=32)


def test_output_inside_the_input_is_refused(phantoms: Path) -> None:
    with pytest.raises(InputError, match="inside the input dataset.*outside the dataset"):
        _run(phantoms, phantoms / "augmented", n=1)
    assert not (phantoms / "augmented").exists()


def test_unrelated_non_empty_output_is_refused(phantoms: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty and holds no earlier augment run"):
        _run(phantoms, tmp_path, n=1)


def test_empty_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    with pytest.raises(InputError, match="no image"):
        _run(tmp_path / "data", tmp_path / "aug", n=1)


def test_grid_larger_than_the_output_size_is_refused_before_writing(
    phantoms: Path, tmp_path: Path
) -> None:
    pipeline = Pipeline().random_distortion(1, 60, 4, 2)
    with pytest.raises(InputError, match="grid of 60 x 4 tiles"):
        augment_dataset(phantoms, tmp_path / "aug", 1, pipeline=pipeline, size=SIZE)
    assert not (tmp_path / "aug").exists()


def test_bad_resize_mode_is_refused(phantoms: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="resize='crop'.*squash, letterbox"):
        _run(phantoms, tmp_path / "aug", n=1, resize="crop")


def test_sixteen_bit_sources_give_sixteen_bit_samples(tmp_path: Path) -> None:
    from cxrseg.io import read_image_info, write_image, write_mask

    data = tmp_path / "data"
    image = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    write_image(data / "images" / "a.png", image, bit_depth=16)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    write_mask(data / "masks" / "lungs" / "a.png", mask)
    augment_dataset(data, tmp_path / "aug", 1, pipeline=_pipeline(), size=32)
    assert read_image_info(tmp_path / "aug" / "images" / "a_aug00000.png").bit_depth == 16


# --- resizing -------------------------------------------------------------------------------


def test_squash_ignores_the_aspect_ratio() -> None:
    image = np.ones((20, 40), np.float32)
    out, masks = resize_pair(image, {"m": np.ones((20, 40), np.uint8)}, 16, "squash")
    assert out.shape == (16, 16) and masks["m"].shape == (16, 16)
    assert out.min() == pytest.approx(1.0) and set(np.unique(masks["m"])) == {1}


def test_letterbox_keeps_the_aspect_ratio_and_pads_with_zero() -> None:
    image = np.ones((20, 40), np.float32)
    mask = np.full((20, 40), 3, np.uint8)
    out, masks = resize_pair(image, {"m": mask}, 16, "letterbox")
    assert out.shape == (16, 16)
    # 20 x 40 -> 8 x 16 content, 4 rows of padding above and below
    assert np.all(out[:4] == 0) and np.all(out[12:] == 0) and np.allclose(out[4:12], 1.0)
    assert np.array_equal(masks["m"] > 0, out > 0.5)
    assert set(np.unique(masks["m"])) == {0, 3}


# --- real data ------------------------------------------------------------------------------

REAL = Path(__file__).parents[2] / "shared" / "data" / "montgomery"


@pytest.mark.realdata
@pytest.mark.skipif(not REAL.is_dir(), reason="real data ../shared/data/montgomery is absent")
def test_real_montgomery_cases_augment(tmp_path: Path) -> None:
    from cxrseg.data import discover

    dataset = discover(REAL)
    dataset.cases = dataset.cases[:2]
    out = tmp_path / "aug"
    augment_dataset(dataset, out, 2, pipeline=_pipeline(), size=64)
    records = read_manifest(out / "manifest.jsonl")
    assert [r["source_id"] for r in records] == ["MCUCXR_0001_0", "MCUCXR_0002_0"]
    assert len(list((out / "masks" / "foreground").iterdir())) == 2
