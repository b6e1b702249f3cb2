"""Quality flags: ranges learned from training cases, each flag, and flags through predict."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from cxrseg.cli import app
from cxrseg.phantom import make_phantom
from cxrseg.quality import (
    MIN_APPEARANCE_CASES,
    check_image,
    check_prediction,
    check_structures,
    header_flags,
    learn_ranges,
    structure_features,
    uncertain_fraction,
)
from inference_builders import make_checkpoint

SIDE = 96


def lungs(phantom) -> np.ndarray:
    return ((phantom.masks["left_lung"] > 0) | (phantom.masks["right_lung"] > 0)).astype(np.uint8)


@pytest.fixture(scope="module")
def phantoms():
    return [make_phantom(seed, SIDE) for seed in range(MIN_APPEARANCE_CASES + 10)]


@pytest.fixture(scope="module")
def ranges(phantoms):
    samples = [(p.image, {"lungs": lungs(p), "left_lung": p.masks["left_lung"],
                          "right_lung": p.masks["right_lung"]}) for p in phantoms]  # fmt: skip
    return learn_ranges(samples)


def codes(flags) -> set[str]:
    return {flag.code for flag in flags}


def test_learned_ranges_hold_every_training_case(phantoms, ranges):
    spans = ranges["structures"]["lungs"]
    for phantom in phantoms:
        feats = structure_features(lungs(phantom))
        assert all(spans[k][0] <= feats[k] <= spans[k][1] for k in ("area", "pieces", "cy"))
    assert spans["pieces"] == [2.0, 2.0]
    assert "left_lung|right_lung" in ranges["pairs"]
    assert json.loads(json.dumps(ranges)) == ranges  # stored in the checkpoint as JSON


def test_a_plausible_prediction_has_no_flags(phantoms, ranges):
    held_out = make_phantom(1000, SIDE)
    masks = {"lungs": lungs(held_out)}
    assert check_prediction(held_out.image, masks, ranges) == []


def test_few_training_cases_learn_no_appearance_model(phantoms):
    few = learn_ranges([(p.image, {"lungs": lungs(p)}) for p in phantoms[:5]])
    assert few["appearance"] is None
    assert check_image(np.random.default_rng(0).random((SIDE, SIDE)), few) == []


@pytest.mark.parametrize(
    ("image", "code"),
    [
        (np.full((SIDE, SIDE), 0.5, np.float32), "blank_image"),
        (np.random.default_rng(0).random((40, 40)), "image_too_small"),
        (np.random.default_rng(0).random((300, 100)), "elongated_image"),
        (np.random.default_rng(0).random((SIDE, SIDE)), "not_chest_radiograph"),
    ],
)
def test_inputs_that_are_not_chest_films_are_flagged(ranges, image, code):
    assert code in codes(check_image(image.astype(np.float32), ranges))


def test_an_inverted_phantom_does_not_look_like_a_chest_film(ranges):
    assert "not_chest_radiograph" in codes(check_image(1.0 - make_phantom(7, SIDE).image, ranges))


def test_mask_flags(ranges):
    phantom = make_phantom(1001, SIDE)
    both = lungs(phantom)
    one = phantom.masks["left_lung"].astype(np.uint8)
    assert "area_out_of_range" in codes(check_structures({"lungs": np.zeros_like(both)}, ranges))
    assert "lung_missing" in codes(check_structures({"lungs": one}, ranges))
    framed = both.copy()
    framed[:, :6] = 1
    assert "touches_border" in codes(check_structures({"lungs": framed}, ranges))
    sliver = np.zeros_like(both)
    sliver[40:46, 20:24] = 1  # a right lung of 24 pixels beside a whole left one
    pair = {"left_lung": phantom.masks["left_lung"], "right_lung": sliver}
    assert "asymmetric" in codes(check_structures(pair, ranges))


def test_unsure_probabilities_are_low_confidence():
    sure = np.zeros((2, 32, 32), np.float32)
    sure[0], sure[1, 8:24, 8:24], sure[0, 8:24, 8:24] = 1.0, 1.0, 0.0
    unsure = np.full((2, 32, 32), 0.5, np.float32)
    assert uncertain_fraction(sure) == 0.0
    assert uncertain_fraction(unsure) == 1.0
    assert "low_confidence" in codes(check_prediction(np.full((64, 64), 0.5), {}, None, unsure))


@pytest.mark.parametrize(
    ("modality", "body_part", "flagged"),
    [("CR", "CHEST", False), ("DX", None, False), ("CT", "CHEST", True), ("DX", "LEG", True)],
)
def test_dicom_header_flags(modality, body_part, flagged):
    assert bool(header_flags(modality, body_part)) == flagged


# --- through prediction ---


@pytest.fixture(scope="module")
def model(tmp_path_factory, ranges) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("m") / "best", labels=("lungs",), size=32,
                           quality=ranges)  # fmt: skip


def test_predict_records_flags_for_every_case_and_warns(model, tmp_path):
    from PIL import Image

    from test_io import make_dicom

    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray((make_phantom(3, SIDE).image * 255).astype(np.uint8)).save(inputs / "film.png")
    Image.fromarray(np.full((SIDE, SIDE), 128, np.uint8)).save(inputs / "blank.png")
    leg = (make_phantom(4, SIDE).image * 4095).astype(np.uint16)
    make_dicom(inputs / "leg.dcm", leg, BodyPartExamined="LEG")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", str(model), str(inputs), "--out", str(out),
                                      "--overlays", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((out / "predictions.json").read_text())
    flags = {case["id"]: codes_of(case["flags"]) for case in record["cases"]}
    assert set(flags) == {"film", "blank", "leg"}
    assert "blank_image" in flags["blank"] and "dicom_not_chest" in flags["leg"]
    flagged = [case_id for case_id, found in flags.items() if found]
    assert f"{len(flagged)} of 3 prediction(s) flagged" in " ".join(result.output.split())
    assert "warning blank: blank_image" in " ".join(result.output.split())
    overlay = cv2.imread(str(out / "overlays" / "blank.png"))
    assert tuple(overlay[0, SIDE // 2]) == (0, 0, 255)  # BGR red frame


def codes_of(flags: list[dict[str, str]]) -> set[str]:
    assert all(flag["message"] for flag in flags)
    return {flag["code"] for flag in flags}


def test_evaluate_shows_the_flags_of_predict(model, tmp_path):
    from cxrseg.evaluation import evaluate
    from cxrseg.phantom import write_phantom_dataset

    ids = write_phantom_dataset(tmp_path / "data", 2, size=SIDE, seed=9)
    (tmp_path / "pred").mkdir()
    result = CliRunner().invoke(app, ["predict", str(model), str(tmp_path / "data" / "images"),
                                      "--out", str(tmp_path / "pred"), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    record["cases"][0]["flags"] = [{"code": "low_confidence", "message": "unsure"}]
    record["cases"][1]["flags"] = []  # the random model's own flags replaced by known ones
    (tmp_path / "pred" / "predictions.json").write_text(json.dumps(record))
    evaluated = evaluate(tmp_path / "pred", tmp_path / "data", tmp_path / "E", worst=1)
    rows = (tmp_path / "E" / "cases.csv").read_text().splitlines()
    assert rows[0].endswith(",flags") and rows[1].endswith(",low_confidence")
    assert evaluated.flags[ids[0]][0]["code"] == "low_confidence"
    page = (tmp_path / "E" / "report.html").read_text()
    assert "1 of 2 cases flagged" in page and "low_confidence: unsure" in page


def test_trained_checkpoints_store_the_ranges(tmp_path):
    from cxrseg.phantom import write_phantom_dataset
    from cxrseg.training import TrainConfig, train

    write_phantom_dataset(tmp_path / "data", 6, size=48, seed=2)
    config = TrainConfig(size=32, epochs=1, batch_size=2, model_kwargs={"depth": 2,
                         "base_channels": 4}, augmentation=None)  # fmt: skip
    train(tmp_path / "data", tmp_path / "run", config)
    meta = json.loads((tmp_path / "run" / "best" / "model.json").read_text())
    assert set(meta["quality"]["structures"]) == set(meta["labels"])
    assert meta["quality"]["n_cases"] == meta["dataset"]["train"]
