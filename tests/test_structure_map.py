"""Structure mapping: the rules of cxrseg.structure_map, and `predict --model lungs` then
`evaluate` unchanged on a JSRT-like, a Montgomery-layout and a one-mask standard dataset."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cxrseg.cli import app
from cxrseg.evaluation import MismatchError, evaluate
from cxrseg.io import read_mask, write_mask
from cxrseg.phantom import write_phantom_dataset
from cxrseg.structure_map import StructureMapError, map_structures, parse_map

SCR = ["heart", "left_lung", "right_lung", "left_clavicle", "right_clavicle"]


# --- the rules ---


def test_same_names_pair_and_the_rest_is_listed():
    mapping = map_structures(["left_lung", "right_lung"], SCR)
    assert mapping.pairs == {"left_lung": ("left_lung",), "right_lung": ("right_lung",)}
    assert mapping.unmatched_references == ["heart", "left_clavicle", "right_clavicle"]


def test_lungs_is_the_union_of_both_lungs():
    mapping = map_structures(["lungs"], SCR)
    assert mapping.pairs == {"lungs": ("left_lung", "right_lung")}
    assert mapping.rules == {"lungs": "union"}


def test_a_one_structure_reference_is_the_single_predicted_structure():
    assert map_structures(["lungs"], ["foreground"]).pairs == {"lungs": ("foreground",)}


def test_several_predicted_structures_do_not_guess_a_single_reference():
    with pytest.raises(StructureMapError, match="predictions have lungs, heart.*foreground"):
        map_structures(["lungs", "heart"], ["foreground"])


def test_the_error_names_both_sides_and_suggests_a_map():
    with pytest.raises(StructureMapError) as info:
        map_structures(["lungs"], ["lung_left", "lung_right", "cor"])
    assert "predictions have lungs, references have lung_left, lung_right, cor" in str(info.value)
    assert info.value.hint is not None
    assert "--map lungs=lung_left+lung_right" in info.value.hint


def test_an_explicit_map_wins_and_is_checked():
    mapping = map_structures(
        ["lungs"], ["lung_left", "lung_right"], parse_map(["lungs=lung_left+lung_right"])
    )
    assert mapping.pairs == {"lungs": ("lung_left", "lung_right")}
    with pytest.raises(StructureMapError, match="'heart' not in the references"):
        map_structures(["lungs"], ["lung_left"], {"lungs": ["heart"]})
    with pytest.raises(StructureMapError, match="'heart' is not predicted"):
        map_structures(["lungs"], ["lung_left"], {"heart": ["lung_left"]})


@pytest.mark.parametrize("entry", ["lungs", "=a", "lungs=", "lungs=+"])
def test_a_malformed_map_entry_is_refused(entry):
    with pytest.raises(StructureMapError, match="PRED=REF"):
        parse_map([entry])


# --- the chain on three layouts ---


@pytest.fixture(scope="module")
def jsrt_phantoms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("map")
    ids = write_phantom_dataset(root / "jsrt", 3, size=96, seed=5)
    return root / "jsrt", ids


def lungs_of(data: Path, case_id: str) -> np.ndarray:
    left = read_mask(data / "masks" / "left_lung" / f"{case_id}.png")
    right = read_mask(data / "masks" / "right_lung" / f"{case_id}.png")
    return ((left > 0) | (right > 0)).astype(np.uint8) * 255


def montgomery_layout(data: Path, out: Path, ids: list[str]) -> Path:
    """Montgomery's public layout: CXR_png/ with ManualMask/leftMask/ and rightMask/."""
    (out / "CXR_png").mkdir(parents=True)
    for case_id in ids:
        shutil.copy(data / "images" / f"{case_id}.png", out / "CXR_png" / f"{case_id}.png")
        for side, folder in (("left_lung", "leftMask"), ("right_lung", "rightMask")):
            mask = read_mask(data / "masks" / side / f"{case_id}.png")
            write_mask(out / "ManualMask" / folder / f"{case_id}.png", mask)
    return out


def one_mask_layout(data: Path, out: Path, ids: list[str]) -> Path:
    shutil.copytree(data / "images", out / "images")
    for case_id in ids:
        write_mask(out / "masks" / f"{case_id}.png", lungs_of(data, case_id))
    return out


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def predicted(jsrt_phantoms, tmp_path_factory) -> Path:
    data, _ = jsrt_phantoms
    out = tmp_path_factory.mktemp("pred") / "P"
    result = CliRunner().invoke(
        app,
        ["predict", "--model", "lungs", str(data / "images"), "--out", str(out), "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("layout", ["jsrt", "montgomery", "one_mask"])
def test_predict_lungs_then_evaluate_works_unchanged(jsrt_phantoms, predicted, layout, tmp_path):
    data, ids = jsrt_phantoms
    reference = {
        "jsrt": lambda: data,
        "montgomery": lambda: montgomery_layout(data, tmp_path / "mc", ids),
        "one_mask": lambda: one_mask_layout(data, tmp_path / "std", ids),
    }[layout]()
    result = CliRunner().invoke(
        app, ["evaluate", str(predicted), str(reference), "--out", str(tmp_path / "E")]
    )
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "E" / "cases.csv")
    assert [(r["id"], r["structure"]) for r in rows] == [(i, "lungs") for i in ids]
    summary = json.loads((tmp_path / "E" / "summary.json").read_text())
    expected = {
        "jsrt": ["left_lung", "right_lung"],
        "montgomery": ["left_lung", "right_lung"],
        "one_mask": ["foreground"],
    }
    assert summary["structure_map"]["pairs"] == {"lungs": expected[layout]}
    page = (tmp_path / "E" / "report.html").read_text(encoding="utf-8")
    assert f"lungs = {' + '.join(expected[layout])}" in page


def test_the_union_is_what_is_scored(jsrt_phantoms, tmp_path):
    """Predictions equal to left ∪ right score Dice 1 against the SCR-like reference."""
    data, ids = jsrt_phantoms
    for case_id in ids:
        write_mask(tmp_path / "P" / "masks" / "lungs" / f"{case_id}.png", lungs_of(data, case_id))
    result = evaluate(tmp_path / "P", data, tmp_path / "E", worst=0)
    assert [case.metrics["lungs"]["dice"] for case in result.cases] == [1.0] * len(ids)


def test_evaluate_map_option_and_the_suggestion_when_nothing_pairs(jsrt_phantoms, tmp_path):
    data, ids = jsrt_phantoms
    for case_id in ids:
        write_mask(
            tmp_path / "P" / "masks" / "lung_fields" / f"{case_id}.png", lungs_of(data, case_id)
        )
    with pytest.raises(MismatchError, match="predictions have lung_fields"):
        evaluate(tmp_path / "P", data, tmp_path / "E0")
    failed = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "P"), str(data), "--out", str(tmp_path / "E1")]
    )
    assert failed.exit_code == 1
    assert "--map lung_fields=left_lung+right_lung" in " ".join(failed.output.split())
    mapped = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(tmp_path / "P"),
            str(data),
            "--out",
            str(tmp_path / "E2"),
            "--map",
            "lung_fields=left_lung+right_lung",
        ],
    )
    assert mapped.exit_code == 0, mapped.output
    assert {r["dice"] for r in read_rows(tmp_path / "E2" / "cases.csv")} == {"1.0"}
