"""Tests of cxrseg.inference: preprocessing, Predictor, test-time flips, model files, paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrseg import __version__
from cxrseg.augment import transforms as T
from cxrseg.errors import InputError
from cxrseg.inference import (
    ModelInfo,
    Predictor,
    expand_inputs,
    locate_model,
    mirror_name,
    predict_paths,
)
from cxrseg.inference.model_file import SUPPORTED_FORMAT_VERSION
from cxrseg.inference.preprocess import content_box, normalize, prepare, restore
from cxrseg.io import read_image, read_mask
from cxrseg.postprocess import PostprocessConfig
from cxrseg.training.checkpoint import FORMAT_VERSION
from cxrseg.training.dataset import normalize_batch
from inference_builders import (
    LABELS,
    SIZE,
    FakeBackend,
    make_checkpoint,
    positional_lungs,
    rewrite_json,
    write_inputs,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best")


@pytest.fixture(scope="module")
def predictor(checkpoint: Path) -> Predictor:
    return Predictor.from_checkpoint(checkpoint, device="cpu")


def info(mode: str = "softmax", labels=LABELS, **kwargs) -> ModelInfo:
    return ModelInfo(tuple(labels), mode, SIZE, "squash", "zscore", **kwargs)


def blob_image(rows: slice, cols: slice, shape=(SIZE, SIZE)) -> np.ndarray:
    image = np.full(shape, 0.2, np.float32)
    image[rows, cols] = 0.9
    return image


# --- preprocessing -------------------------------------------------------------------------


def test_numpy_normalisation_matches_training() -> None:
    batch = np.random.default_rng(1).random((3, 1, 20, 24), dtype=np.float32)
    for method in ("zscore", "unit"):
        expected = normalize_batch(torch.from_numpy(batch), method).numpy()
        np.testing.assert_allclose(normalize(batch, method), expected, rtol=1e-5, atol=1e-5)


def test_letterbox_content_box_is_where_the_image_lands() -> None:
    image = np.ones((30, 60), np.float32)
    placed = prepare(image, SIZE, "letterbox")
    top, bottom, left, right = content_box(image.shape, SIZE, "letterbox")
    rows, cols = np.nonzero(placed)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (top, bottom, left, right)


def test_restore_inverts_letterbox_onto_the_original_grid() -> None:
    ramp = np.tile(np.linspace(0, 1, 60, dtype=np.float32), (30, 1))
    back = restore(prepare(ramp, 64, "letterbox"), ramp.shape, "letterbox")
    assert back.shape == ramp.shape
    assert np.abs(back - ramp).max() < 0.05


# --- Predictor -----------------------------------------------------------------------------


@pytest.mark.parametrize("resize", ["squash", "letterbox"])
def test_masks_come_back_at_the_original_size(tmp_path: Path, resize: str) -> None:
    predictor = Predictor.from_checkpoint(make_checkpoint(tmp_path, resize=resize), device="cpu")
    for shape in [(70, 90), (45, 33), (SIZE, SIZE)]:
        image = np.random.default_rng(0).random(shape, dtype=np.float32)
        result = predictor.predict(image, probabilities=True)
        assert set(result.masks) == set(LABELS)
        assert all(m.shape == shape and m.dtype == np.uint8 for m in result.masks.values())
        assert result.probabilities is not None
        assert all(p.shape == shape for p in result.probabilities.values())


def test_softmax_masks_are_the_argmax_of_the_restored_probabilities(predictor) -> None:
    image = np.random.default_rng(2).random((50, 41), dtype=np.float32)
    result = predictor.predict(image, probabilities=True)
    probs = np.stack([result.probabilities[n] for n in LABELS])
    full = np.concatenate([1.0 - probs.sum(axis=0, keepdims=True), probs])
    ordered = np.sort(full, axis=0)
    clear = ordered[-1] - ordered[-2] > 1e-4  # away from ties
    expected = full.argmax(axis=0)
    for k, name in enumerate(LABELS, start=1):
        np.testing.assert_array_equal(result.masks[name][clear], (expected == k)[clear])
    assert (sum(result.masks.values()) <= 1).all()


def test_a_batch_gives_the_same_masks_as_single_images(predictor) -> None:
    rng = np.random.default_rng(3)
    images = [rng.random((40, 36), dtype=np.float32), rng.random((33, 60), dtype=np.float32)]
    batched = predictor.predict_batch(images)
    for image, result in zip(images, batched, strict=True):
        single = predictor.predict(image)
        for name in LABELS:
            np.testing.assert_array_equal(result.masks[name], single.masks[name])


def test_horizontal_flip_swaps_left_and_right_before_averaging() -> None:
    # A bright blob on the image's right side is the patient's left lung for this network.
    image = blob_image(slice(8, 20), slice(20, 28))
    plain = Predictor(FakeBackend(positional_lungs), info(), postprocess=False)
    flipped = Predictor(FakeBackend(positional_lungs), info(), tta=True, postprocess=False)
    p0 = plain.predict(image, probabilities=True)
    p1 = flipped.predict(image, probabilities=True)
    assert p1.probabilities is not None and p0.probabilities is not None
    assert p1.masks["left_lung"][8:20, 20:28].all() and not p1.masks["right_lung"].any()
    np.testing.assert_allclose(p1.probabilities["left_lung"], p0.probabilities["left_lung"],
                               atol=1e-6)  # fmt: skip


def test_flip_averaging_follows_the_formula_for_every_flip() -> None:
    rng = np.random.default_rng(4)
    weights = rng.normal(size=(4, 1, 1)).astype(np.float32)
    ramp = np.linspace(-2, 2, SIZE, dtype=np.float32)
    bias = rng.normal(size=(4, 1, 1)).astype(np.float32) * ramp  # position-dependent

    def network(batch: np.ndarray) -> np.ndarray:
        return batch * weights[None] + bias[None]

    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    image = rng.random((SIZE, SIZE), dtype=np.float32)
    x = normalize(image[None, None], "zscore")
    swap = [0, 2, 1, 3]  # background, left_lung <-> right_lung, heart
    h = np.flip(softmax(network(np.flip(x, -1))), -1)[:, swap]
    v = np.flip(softmax(network(np.flip(x, -2))), -2)
    hv = np.flip(softmax(network(np.flip(x, (-2, -1)))), (-2, -1))[:, swap]
    expected = (softmax(network(x)) + h + v + hv) / 4
    tta = Predictor(FakeBackend(network), info(), tta=["hflip", "vflip", "hvflip"])
    np.testing.assert_allclose(tta.network_probabilities([image]), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "mirrored"),
    [("left_lung", "right_lung"), ("lung_right", "lung_left"), ("Left Lung", "Right Lung"),
     ("heart", "heart"), ("leftover", "leftover")],
)  # fmt: skip
def test_mirror_name_swaps_sides_only_as_words(name: str, mirrored: str) -> None:
    assert mirror_name(name) == mirrored


def test_prediction_and_augmentation_swap_sides_alike() -> None:
    # test-time flips must rename channels exactly as training flips renamed the masks
    for name in ("LEft_lung", "Right Lung", "LUNG_LEFT", "lEFT_lung", "heart"):
        assert mirror_name(name) == T.swap_left_right_name(name)


def test_sigmoid_masks_threshold_each_structure_and_may_overlap() -> None:
    def network(batch: np.ndarray) -> np.ndarray:
        return np.concatenate([batch * 4, batch * 4 - 1], axis=1)

    image = blob_image(slice(5, 15), slice(5, 15))
    model = Predictor(FakeBackend(network), info("sigmoid", ["lungs", "heart"]), threshold=0.5)
    result = model.predict(image, probabilities=True)
    assert result.probabilities is not None
    for name in ("lungs", "heart"):
        np.testing.assert_array_equal(result.masks[name], result.probabilities[name] > 0.5)
    assert (result.masks["lungs"] & result.masks["heart"]).any()


def test_checkpoint_postprocessing_is_applied_unless_turned_off() -> None:
    image = blob_image(slice(4, 10), slice(18, 30))
    image[20:24, 26:29] = 0.9  # a second, smaller left_lung blob
    post = {"left_lung": PostprocessConfig(keep_components=1).to_dict()}
    model_info = info(postprocessing=post)
    kept = Predictor(FakeBackend(positional_lungs), model_info).predict(image).masks
    raw = Predictor(FakeBackend(positional_lungs), model_info, postprocess=False)
    raw_masks = raw.predict(image).masks
    assert raw_masks["left_lung"][20:24, 26:29].all()
    assert not kept["left_lung"][20:24, 26:29].any()
    assert kept["left_lung"][4:10, 18:30].all()


def test_postprocessing_for_an_unknown_structure_is_refused() -> None:
    with pytest.raises(ValueError, match="lungs"):
        Predictor(FakeBackend(positional_lungs), info(), postprocess={"lungs": {}})


def test_a_colour_or_flat_array_is_refused_with_the_fix(predictor) -> None:
    with pytest.raises(ValueError, match=r"\(H, W\).*read_image"):
        predictor.predict(np.zeros((20, 20, 3), np.float32))


# --- model files ---------------------------------------------------------------------------


def test_supported_format_version_is_the_checkpoint_format() -> None:
    assert SUPPORTED_FORMAT_VERSION == FORMAT_VERSION


def test_a_run_folder_resolves_to_its_best_checkpoint(tmp_path: Path) -> None:
    make_checkpoint(tmp_path / "run" / "best")
    found = locate_model(tmp_path / "run")
    assert found.kind == "checkpoint"
    assert found.path == tmp_path / "run" / "best" / "model.json"


def test_a_folder_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="best/model.json"):
        locate_model(tmp_path)


@pytest.mark.parametrize("changes", [{"cxrseg_version": "99.0.0"}, {"format_version": 99}])
def test_a_model_from_a_newer_cxrseg_asks_for_an_upgrade(tmp_path: Path, changes) -> None:
    folder = make_checkpoint(tmp_path / "ckpt")
    rewrite_json(folder / "model.json", **changes)
    with pytest.raises(InputError, match="upgrade cxrseg"):
        Predictor.from_checkpoint(folder, device="cpu")


def test_a_model_from_a_newer_minor_version_predicts_with_a_warning(tmp_path, caplog) -> None:
    folder = make_checkpoint(tmp_path / "ckpt")
    newer_minor = f"{__version__.split('.')[0]}.999.0"
    rewrite_json(folder / "model.json", cxrseg_version=newer_minor)
    predictor = Predictor.from_checkpoint(folder, device="cpu")
    assert predictor.labels == tuple(LABELS)
    assert newer_minor in caplog.text


def test_metadata_without_an_input_size_names_the_entry(tmp_path: Path) -> None:
    folder = make_checkpoint(tmp_path / "ckpt")
    rewrite_json(folder / "model.json", input_size=None)
    with pytest.raises(InputError, match="input_size"):
        Predictor.from_checkpoint(folder)


# --- files in, standard layout out ---------------------------------------------------------


def test_standard_layout_keeps_each_input_size(tmp_path: Path, predictor) -> None:
    shapes = write_inputs(tmp_path / "in")
    summary = predict_paths(predictor, [tmp_path / "in"], tmp_path / "out")
    assert summary.written == ["a8", "b16", "c"] and not summary.failed
    for case_id, shape in shapes.items():
        for name in LABELS:
            mask = read_mask(tmp_path / "out" / "masks" / name / f"{case_id}.png")
            assert mask.shape == shape and set(np.unique(mask)) <= {0, 255}
    record = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [c["id"] for c in record["cases"]] == summary.written


def test_label_map_holds_the_structure_numbers(tmp_path: Path, predictor) -> None:
    write_inputs(tmp_path / "in")
    predict_paths(predictor, [tmp_path / "in" / "a8.png"], tmp_path / "masks")
    predict_paths(predictor, [tmp_path / "in" / "a8.png"], tmp_path / "labels", label_map=True)
    labels = read_mask(tmp_path / "labels" / "labels" / "a8.png")
    assert labels.max() <= len(LABELS)
    for k, name in enumerate(LABELS, start=1):
        mask = read_mask(tmp_path / "masks" / "masks" / name / "a8.png")
        np.testing.assert_array_equal(labels == k, mask > 0)


def test_probabilities_and_overlays_are_written(tmp_path: Path, predictor) -> None:
    write_inputs(tmp_path / "in")
    predict_paths(predictor, [tmp_path / "in" / "b16.png"], tmp_path / "out",
                  save_probabilities=True, overlays=True)  # fmt: skip
    prob, prob_info = read_image(tmp_path / "out" / "probabilities" / "heart" / "b16.png")
    assert prob.shape == (45, 33) and prob_info.bit_depth == 16
    overlay, overlay_info = read_image(tmp_path / "out" / "overlays" / "b16.png")
    assert overlay.shape == (45, 33) and overlay_info.channels == 3


def test_an_unreadable_file_is_listed_and_the_others_processed(tmp_path: Path, predictor) -> None:
    write_inputs(tmp_path / "in")
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    summary = predict_paths(predictor, [tmp_path / "in"], tmp_path / "out")
    assert [p.name for p, _ in summary.failed] == ["broken.png"]
    assert summary.written == ["a8", "b16", "c"]


def test_non_images_in_folders_are_skipped_and_missing_paths_fail(
    tmp_path: Path, predictor
) -> None:
    write_inputs(tmp_path / "in")
    (tmp_path / "in" / "notes.txt").write_text("x")
    summary = predict_paths(predictor, [tmp_path / "in", tmp_path / "nope.png"], tmp_path / "o")
    assert [p.name for p in summary.skipped] == ["notes.txt"]
    assert [p.name for p, _ in summary.failed] == ["nope.png"]


def test_globs_expand_in_natural_order(tmp_path: Path) -> None:
    for name in ("c10.png", "c2.png", "c1.png"):
        (tmp_path / name).write_bytes(b"")
    found = expand_inputs([str(tmp_path / "c*.png")])
    assert [p.name for p in found.files] == ["c1.png", "c2.png", "c10.png"]


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_an_output_folder_overlapping_an_input_folder_is_refused(
    tmp_path: Path, predictor, where: str
) -> None:
    inputs = tmp_path / "data" / "in"
    write_inputs(inputs)
    before = sorted(p.name for p in inputs.iterdir())
    out = {"same": inputs, "inside": inputs / "pred", "around": tmp_path / "data"}[where]
    with pytest.raises(InputError, match="--out"):
        predict_paths(predictor, [inputs], out)
    assert sorted(p.name for p in inputs.iterdir()) == before


def test_an_output_folder_holding_an_input_file_is_refused(tmp_path: Path, predictor) -> None:
    write_inputs(tmp_path / "in")
    with pytest.raises(InputError, match="overwrite"):
        predict_paths(predictor, [tmp_path / "in" / "a8.png"], tmp_path)


def test_two_inputs_with_one_id_are_refused_naming_both(tmp_path: Path, predictor) -> None:
    write_inputs(tmp_path / "in")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a8.png").write_bytes((tmp_path / "in" / "a8.png").read_bytes())
    with pytest.raises(InputError, match=r"in/a8\.png.*other/a8\.png"):
        predict_paths(predictor, [tmp_path / "in", tmp_path / "other"], tmp_path / "out")


def test_a_label_map_of_overlapping_structures_is_refused(tmp_path: Path) -> None:
    model = Predictor(FakeBackend(positional_lungs), info("sigmoid", ["lungs", "heart"]))
    write_inputs(tmp_path / "in")
    with pytest.raises(InputError, match="label map"):
        predict_paths(model, [tmp_path / "in"], tmp_path / "out", label_map=True)
