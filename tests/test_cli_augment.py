"""``cxrseg augment`` end to end on a tiny phantom dataset."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from cxrseg.cli import app

PHANTOMS = {"n": 2, "size": 64, "seed": 1}  # the conftest fixture's dataset

runner = CliRunner()


def _augment(data: Path, out: Path, *extra: str, n: int = 4) -> object:
    args = ["augment", str(data), "--out", str(out), "-n", str(n), "--size", "48", *extra]
    return runner.invoke(app, args)


def _images(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "images").iterdir())}


def test_random_distortion_run_writes_samples_manifest_and_pipeline(
    phantoms: Path, tmp_path: Path
) -> None:
    out = tmp_path / "aug"
    result = _augment(phantoms, out, "--random-distortion", "4", "4", "3", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert "4 samples written, 0 already there" in result.output
    assert len(_images(out)) == 4
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["seed"] for line in lines] == [7] * 4
    saved = yaml.safe_load((out / "pipeline.yaml").read_text())
    assert saved["seed"] == 7
    assert saved["operations"] == [
        {
            "op": "random_distortion",
            "probability": 1.0,
            "grid_width": 4,
            "grid_height": 4,
            "magnitude": 3,
        }
    ]


def test_gaussian_distortion_options_reach_the_pipeline(phantoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "aug"
    result = _augment(phantoms, out, "--gaussian-distortion", "4", "5", "2.5", "ul", "out", n=2)
    assert result.exit_code == 0, result.output
    (op,) = yaml.safe_load((out / "pipeline.yaml").read_text())["operations"]
    assert (op["op"], op["grid_width"], op["grid_height"], op["magnitude"]) == (
        "gaussian_distortion",
        4,
        5,
        2.5,
    )
    assert (op["corner"], op["method"]) == ("ul", "out")


def test_pipeline_file_is_used_and_a_rerun_writes_nothing(phantoms: Path, tmp_path: Path) -> None:
    from cxrseg.augment.pipeline import Pipeline

    spec = Pipeline(seed=3).rotate(1, 5, 5).brightness(0.5, 0.9, 1.1).save_yaml(tmp_path / "p.yaml")
    out = tmp_path / "aug"
    first = _augment(phantoms, out, "--pipeline", str(spec))
    again = _augment(phantoms, out, "--pipeline", str(spec))
    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    assert "0 samples written, 4 already there" in again.output
    assert Pipeline.from_yaml(out / "pipeline.yaml") == Pipeline.from_yaml(spec)


def test_interrupted_run_resumes_to_the_uninterrupted_result(
    phantoms: Path, tmp_path: Path
) -> None:
    flags = ("--random-distortion", "4", "4", "3", "--workers", "2")
    assert _augment(phantoms, tmp_path / "ref", *flags, n=6).exit_code == 0
    out = tmp_path / "aug"
    assert _augment(phantoms, out, *flags, n=6).exit_code == 0
    manifest = out / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    for line in lines[-2:]:  # the last two samples were lost in the crash
        sample = json.loads(line)["id"]
        (out / "images" / f"{sample}.png").unlink()
    manifest.write_text("\n".join(lines[:-2]) + "\n")

    result = _augment(phantoms, out, *flags, n=6)

    assert result.exit_code == 0, result.output
    assert "2 samples written, 4 already there" in result.output
    assert _images(out) == _images(tmp_path / "ref")
    assert manifest.read_text() == (tmp_path / "ref" / "manifest.jsonl").read_text()


def test_no_augmentation_chosen_is_an_error(phantoms: Path, tmp_path: Path) -> None:
    result = _augment(phantoms, tmp_path / "aug")
    assert result.exit_code == 2
    assert "choose the augmentation" in result.output


def test_pipeline_file_and_distortion_flags_together_are_an_error(
    phantoms: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text("operations: []\n")
    result = _augment(
        phantoms, tmp_path / "aug", "--pipeline", str(spec), "--random-distortion", "4", "4", "3"
    )
    assert result.exit_code == 2
    assert "not both" in result.output


def test_negative_magnitude_is_an_error_naming_the_value(phantoms: Path, tmp_path: Path) -> None:
    result = _augment(phantoms, tmp_path / "aug", "--random-distortion", "4", "4", "-3")
    assert result.exit_code == 2
    assert "magnitude=-3" in result.output
    assert not (tmp_path / "aug").exists()


def test_unknown_corner_is_an_error(phantoms: Path, tmp_path: Path) -> None:
    result = _augment(
        phantoms, tmp_path / "aug", "--gaussian-distortion", "4", "4", "3", "top", "in"
    )
    assert result.exit_code == 2
    assert "corner='top'" in result.output


def test_output_inside_the_input_is_an_error(phantoms: Path) -> None:
    result = _augment(phantoms, phantoms / "aug", "--random-distortion", "4", "4", "3")
    assert result.exit_code == 2
    assert "inside the input dataset" in result.output
    assert not (phantoms / "aug").exists()


def test_empty_dataset_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    result = _augment(tmp_path / "data", tmp_path / "aug", "--random-distortion", "4", "4", "3")
    assert result.exit_code == 2
    assert "no image files" in result.output
