"""cxrseg.evaluation (scores, files, HTML report) on phantom data with perturbed predictions."""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cxrseg.cli import app
from cxrseg.data import discover, load_case
from cxrseg.evaluation import CaseResult, EvaluationResult, MismatchError, evaluate
from cxrseg.evaluation.html import COLORS, box_plot_svg, render_report, triptych
from cxrseg.io import read_mask, write_mask
from cxrseg.metrics import segmentation_metrics
from cxrseg.phantom import STRUCTURES, write_phantom_dataset

N_CASES = 6
KERNEL = np.ones((5, 5), np.uint8)


def perturb(structure: str, index: int, mask: np.ndarray) -> np.ndarray:
    """The prediction of case ``index`` (0-based): some structures dilated, eroded or missed."""
    if structure == "heart" and index in (0, 1):
        return cv2.dilate(mask, KERNEL)
    if structure == "left_lung" and index == 2:
        return cv2.erode(mask, KERNEL)
    if structure == "right_clavicle" and index == 3:
        return np.zeros_like(mask)  # missed: Dice 0, distances undefined
    return mask


def write_predictions(data: Path, pred: Path, ids: list[str]) -> None:
    for structure in STRUCTURES:
        for index, case_id in enumerate(ids):
            mask = read_mask(data / "masks" / structure / f"{case_id}.png")
            write_mask(
                pred / "masks" / structure / f"{case_id}.png", perturb(structure, index, mask)
            )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("evaluation")
    ids = write_phantom_dataset(root / "data", N_CASES, size=64, seed=3)
    write_predictions(root / "data", root / "pred", ids)
    return root / "data", root / "pred", ids


@pytest.fixture(scope="module")
def evaluated(
    dataset: tuple[Path, Path, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> EvaluationResult:
    data, pred, _ = dataset
    return evaluate(pred, data, tmp_path_factory.mktemp("report") / "out", worst=3)


@pytest.fixture
def pred_copy(dataset: tuple[Path, Path, list[str]], tmp_path: Path) -> Path:
    """A prediction folder the test may change."""
    return Path(shutil.copytree(dataset[1], tmp_path / "pred"))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def value(cell: str) -> float:
    return math.nan if cell == "" else float(cell)


def test_csv_values_match_metrics_computed_directly(dataset, evaluated):
    data, pred, ids = dataset
    rows = read_csv(evaluated.out / "cases.csv")
    reference = discover(data)
    expected = {}
    for case_id in ids:
        _, ref_masks = load_case(reference.case(case_id), reference)
        pred_masks = {s: read_mask(pred / "masks" / s / f"{case_id}.png") for s in STRUCTURES}
        expected[case_id] = segmentation_metrics(pred_masks, ref_masks)
    assert len(rows) == N_CASES * len(STRUCTURES)
    for row in rows:
        for metric in ("dice", "jaccard", "hd95", "mcd"):
            want = expected[row["id"]][row["structure"]][metric]
            got = value(row[metric])
            assert got == want or (math.isnan(got) and math.isnan(want)), (row, metric)


def test_perturbed_cases_score_below_one_and_others_exactly_one(dataset, evaluated):
    _, _, ids = dataset
    dice = {
        (r["id"], r["structure"]): float(r["dice"]) for r in read_csv(evaluated.out / "cases.csv")
    }
    changed = {
        (ids[0], "heart"),
        (ids[1], "heart"),
        (ids[2], "left_lung"),
        (ids[3], "right_clavicle"),
    }
    assert all(dice[key] < 1.0 for key in changed)
    assert all(score == 1.0 for key, score in dice.items() if key not in changed)


def test_summary_statistics_match_numpy(evaluated):
    rows = read_csv(evaluated.out / "cases.csv")
    summary = json.loads((evaluated.out / "summary.json").read_text())["summary"]
    for structure in STRUCTURES:
        for metric in ("dice", "jaccard", "hd95", "mcd"):
            values = np.array([value(r[metric]) for r in rows if r["structure"] == structure])
            kept = values[~np.isnan(values)]
            stats = summary[structure][metric]
            assert stats["n"] == kept.size and stats["n_nan"] == np.isnan(values).sum()
            assert stats["mean"] == pytest.approx(kept.mean())
            assert stats["median"] == pytest.approx(np.median(kept))
            assert stats["std"] == pytest.approx(kept.std())
            assert stats["p05"] == pytest.approx(np.percentile(kept, 5))


def test_missed_structure_counts_as_nan_distance(dataset, evaluated):
    _, _, ids = dataset
    row = next(
        r
        for r in read_csv(evaluated.out / "cases.csv")
        if r["id"] == ids[3] and r["structure"] == "right_clavicle"
    )
    summary = json.loads((evaluated.out / "summary.json").read_text())
    assert (row["dice"], row["hd95"], row["mcd"]) == ("0.0", "", "")
    assert summary["summary"]["right_clavicle"]["hd95"]["n_nan"] == 1
    assert "empty" in summary["empty_mask_rule"].lower()


def test_summary_records_paths_version_and_worst_order(dataset, evaluated):
    data, pred, _ = dataset
    summary = json.loads((evaluated.out / "summary.json").read_text())
    means = {case.case_id: case.mean_dice for case in evaluated.cases}
    worst = summary["worst_cases"]["ids"]
    assert summary["references"] == str(data.resolve())
    assert summary["predictions"] == str(pred.resolve())
    assert summary["cxrseg_version"]
    assert [means[i] for i in worst] == sorted(means.values())[:3]


def test_missing_prediction_ids_are_listed_by_name(dataset, pred_copy, tmp_path):
    data, _, ids = dataset
    for structure in STRUCTURES:
        (pred_copy / "masks" / structure / f"{ids[4]}.png").unlink()
    with pytest.raises(MismatchError, match=ids[4]) as info:
        evaluate(pred_copy, data, tmp_path / "out")
    assert info.value.missing_predictions == [ids[4]]
    assert not (tmp_path / "out").exists()


def test_extra_prediction_ids_are_listed_by_name(dataset, pred_copy, tmp_path):
    data, _, ids = dataset
    for structure in STRUCTURES:
        src = pred_copy / "masks" / structure / f"{ids[0]}.png"
        shutil.copy(src, src.with_name("ghost_case.png"))
    with pytest.raises(MismatchError, match="ghost_case") as info:
        evaluate(pred_copy, data, tmp_path / "out")
    assert info.value.missing_references == ["ghost_case"]


def test_partial_prediction_is_listed_with_the_missing_structure(dataset, pred_copy, tmp_path):
    data, _, ids = dataset
    (pred_copy / "masks" / "heart" / f"{ids[2]}.png").unlink()
    with pytest.raises(MismatchError, match=rf"{ids[2]} \(no prediction of heart\)"):
        evaluate(pred_copy, data, tmp_path / "out")


def test_allow_missing_evaluates_the_common_ids_and_lists_the_rest(dataset, pred_copy, tmp_path):
    data, _, ids = dataset
    for structure in STRUCTURES:
        (pred_copy / "masks" / structure / f"{ids[4]}.png").unlink()
    result = evaluate(pred_copy, data, tmp_path / "out", allow_missing=True)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [case.case_id for case in result.cases] == ids[:4] + ids[5:]
    assert result.missing_predictions == summary["missing_predictions"] == [ids[4]]


def test_a_structure_on_one_side_only_is_left_out_and_listed(dataset, pred_copy, tmp_path):
    data, _, _ = dataset
    shutil.rmtree(pred_copy / "masks" / "heart")
    result = evaluate(pred_copy, data, tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "heart" not in result.structures
    assert summary["structure_map"]["not_evaluated"]["references"] == ["heart"]


def test_structures_option_evaluates_the_common_ones_with_a_warning(
    dataset, pred_copy, tmp_path, caplog
):
    data, _, _ = dataset
    shutil.rmtree(pred_copy / "masks" / "heart")
    with caplog.at_level(logging.WARNING, logger="cxrseg.pairing"):
        result = evaluate(pred_copy, data, tmp_path / "out", structures=["left_lung", "Right Lung"])
    assert result.structures == ["left_lung", "right_lung"]
    assert {r["structure"] for r in read_csv(tmp_path / "out" / "cases.csv")} == {
        "left_lung",
        "right_lung",
    }
    assert "heart" in caplog.text


def test_structure_absent_on_one_side_is_refused(dataset, pred_copy, tmp_path):
    data, _, _ = dataset
    shutil.rmtree(pred_copy / "masks" / "heart")
    with pytest.raises(MismatchError, match="cannot evaluate 'heart'"):
        evaluate(pred_copy, data, tmp_path / "out", structures=["heart"])


def test_size_mismatch_is_listed_by_case_and_structure(dataset, pred_copy, tmp_path):
    data, _, ids = dataset
    path = pred_copy / "masks" / "heart" / f"{ids[1]}.png"
    write_mask(path, cv2.resize(read_mask(path), (32, 32), interpolation=cv2.INTER_NEAREST))
    with pytest.raises(MismatchError, match=f"{ids[1]}/heart: prediction 32x32, image 64x64"):
        evaluate(pred_copy, data, tmp_path / "out")


@pytest.mark.parametrize("where", ["pred", "pred/report", "data", "data/masks/heart/out"])
def test_output_folder_inside_an_input_is_refused(dataset, where, tmp_path):
    data, pred, _ = dataset
    out = {"pred": pred, "data": data}[where.split("/")[0]].joinpath(*where.split("/")[1:])
    with pytest.raises(ValueError, match="output folder is"):
        evaluate(pred, data, out)
    assert not (out / "cases.csv").exists()


def test_mm_metrics_use_the_reference_pixel_spacing(dataset, tmp_path):
    data, pred, ids = dataset
    spaced = Path(shutil.copytree(data, tmp_path / "data"))
    for case_id in ids:  # 0.5 mm pixels, stored as 50.8 dpi
        path = spaced / "images" / f"{case_id}.png"
        Image.open(path).save(path, dpi=(25.4 / 0.5, 25.4 / 0.5))
    result = evaluate(pred, spaced, tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "cases.csv")
    assert result.metrics[-2:] == ["hd95_mm", "mcd_mm"]
    for row in rows:
        if row["hd95"]:
            assert float(row["hd95_mm"]) == pytest.approx(0.5 * float(row["hd95"]))


def test_flat_prediction_folder_is_the_single_reference_structure(dataset, tmp_path):
    data, pred, ids = dataset
    single = tmp_path / "single"
    shutil.copytree(data / "images", single / "images")
    shutil.copytree(data / "masks" / "heart", single / "masks" / "heart")
    shutil.copytree(pred / "masks" / "heart", tmp_path / "flat" / "masks")
    result = evaluate(tmp_path / "flat", single, tmp_path / "out")
    assert result.structures == ["heart"]
    assert result.summary["heart"]["dice"]["n"] == len(ids)


@pytest.mark.parametrize("layout", ["structure_folders", "dataset_copy", "mask_suffix"])
def test_other_prediction_layouts_give_the_same_csv(dataset, evaluated, layout, tmp_path):
    data, pred, _ = dataset
    other = tmp_path / "pred"
    if layout == "structure_folders":  # PRED/<structure>/<id>.png, no masks/ level
        shutil.copytree(pred / "masks", other)
    elif layout == "dataset_copy":  # images/ + masks/: a full dataset
        shutil.copytree(pred, other)
        shutil.copytree(data / "images", other / "images")
    else:  # <id>_mask.png names
        for path in (pred / "masks").rglob("*.png"):
            target = other / path.relative_to(pred).with_name(f"{path.stem}_mask.png")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    evaluate(other, data, tmp_path / "out", worst=0)
    assert (tmp_path / "out" / "cases.csv").read_bytes() == (
        evaluated.out / "cases.csv"
    ).read_bytes()


def test_folder_without_predictions_is_refused_with_the_expected_layout(dataset, tmp_path):
    data, _, _ = dataset
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    with pytest.raises(ValueError, match="no predicted masks found.*masks/<structure>/<id>.png"):
        evaluate(tmp_path / "empty", data, tmp_path / "out")


def test_bad_arguments_are_refused(dataset, tmp_path):
    data, pred, _ = dataset
    with pytest.raises(TypeError, match="list of names"):
        evaluate(pred, data, tmp_path / "out", structures="heart")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers"):
        evaluate(pred, data, tmp_path / "out", workers=0)
    with pytest.raises(ValueError, match="prediction folder not found"):
        evaluate(tmp_path / "nothing", data, tmp_path / "out")


def test_results_do_not_depend_on_workers(dataset, evaluated, tmp_path):
    data, pred, _ = dataset
    result = evaluate(pred, data, tmp_path / "out", workers=1, worst=0)
    assert (tmp_path / "out" / "cases.csv").read_bytes() == (
        evaluated.out / "cases.csv"
    ).read_bytes()
    assert result.summary == evaluated.summary


# --- the HTML report ---


def test_report_is_self_contained_and_escapes_names():
    row = {"dice": 0.5, "jaccard": 0.3, "hd95": 2.0, "mcd": 1.0}
    stats = {"mean": 0.5, "median": 0.5, "std": 0.0, "p05": 0.5, "n": 1, "n_nan": 0}
    result = EvaluationResult(
        cases=[CaseResult("a<b>&c", {"<s>": row}, None)],
        structures=["<s>"],
        metrics=list(row),
        summary={"<s>": dict.fromkeys(row, stats)},
        predictions=Path("<pred>"),
        references=Path("ref"),
        out=Path("out"),
    )
    page = render_report(result, {"a<b>&c": "data:image/png;base64,AA=="})
    assert "a&lt;b&gt;&amp;c" in page and "&lt;s&gt;" in page
    assert "<b>&c" not in page and "<s>" not in page
    assert "https://" not in page and 'src="http' not in page


def test_report_lists_worst_cases_in_order_with_thumbnails(evaluated):
    page = (evaluated.out / "report.html").read_text(encoding="utf-8")
    worst = [case.case_id for case in evaluated.worst(3)]
    positions = [page.index(f'alt="{case_id}: image') for case_id in worst]
    assert positions == sorted(positions)
    assert page.count('<img class="thumb" src="data:image/png;base64,') == 3


def test_box_plot_is_valid_svg_with_one_box_per_nonempty_group():
    svg = box_plot_svg({"a": [0.1, 0.5, 0.9, 0.4], "b": [math.nan], "c<": [2.0, 3.0]}, title="x")
    root = ET.fromstring(svg)
    rects = root.findall(".//{http://www.w3.org/2000/svg}rect")
    assert len(rects) == 2
    assert "c&lt;" in svg


def test_triptych_draws_reference_green_and_prediction_red():
    image = np.full((40, 40), 0.5, np.float32)
    ref = {"s": np.zeros((40, 40), np.uint8)}
    ref["s"][5:20, 5:20] = 1
    pred = {"s": np.zeros((40, 40), np.uint8)}
    pred["s"][22:35, 22:35] = 1
    pixels = triptych(image, ref, pred, side=40)
    panel = [pixels[:, i * 44 : i * 44 + 40] for i in range(3)]
    assert pixels.shape == (40, 128, 3)
    assert (panel[0] == 128).all()
    assert tuple(panel[1][5, 10]) == COLORS["reference"]
    assert tuple(panel[2][22, 28]) == COLORS["prediction"]
    assert tuple(panel[2][5, 10]) == COLORS["reference"]


# --- command line ---


def test_cli_writes_the_report_and_prints_the_summary(dataset, tmp_path):
    data, pred, _ = dataset
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", str(pred), str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "heart" in result.stdout and "report.html" in result.stdout
    assert all((out / name).is_file() for name in ("cases.csv", "summary.json", "report.html"))


def test_cli_exits_1_on_mismatched_ids(dataset, pred_copy, tmp_path):
    data, _, ids = dataset
    for structure in STRUCTURES:
        (pred_copy / "masks" / structure / f"{ids[0]}.png").unlink()
    args = ["evaluate", str(pred_copy), str(data), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert ids[0] in result.stderr
    allowed = CliRunner().invoke(app, [*args, "--allow-missing"])
    assert allowed.exit_code == 0 and ids[0] in allowed.stderr


def test_cli_exits_2_when_out_is_inside_an_input(dataset):
    data, pred, _ = dataset
    result = CliRunner().invoke(app, ["evaluate", str(pred), str(data), "--out", str(pred / "r")])
    assert result.exit_code == 2
    assert "inside the input folder" in result.stderr
