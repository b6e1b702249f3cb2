"""Scoring: pair predictions with references, compute metrics per case, write CSV/JSON/HTML.

The files written are described in :mod:`cxrseg.evaluation`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from cxrseg._version import __version__
from cxrseg.data import Case, Dataset, discover
from cxrseg.errors import InputError
from cxrseg.evaluation.html import triptych_data_uri, write_report
from cxrseg.evaluation.results import (
    EMPTY_MASK_RULE,
    METRICS,
    MM_METRICS,
    UNITS,
    CaseResult,
    EvaluationResult,
)
from cxrseg.io import atomic_write, parse_json, write_json
from cxrseg.metrics import segmentation_metrics, summarize
from cxrseg.pairing import MismatchError, Pairing, listing

__all__ = ["evaluate", "read_flags"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def evaluate(
    pred_root: str | Path,
    data: str | Path | Dataset,
    out: str | Path,
    *,
    structures: Sequence[str] | None = None,
    structure_map: Mapping[str, Sequence[str]] | None = None,
    allow_missing: bool = False,
    worst: int = 24,
    progress: Progress | None = None,
    workers: int = 2,
) -> EvaluationResult:
    """Compare predicted masks with reference masks and write the CSV, JSON and HTML report.

    Args:
        pred_root: Prediction folder (``PRED/masks/<structure>/<id>.png``, see the module doc).
        data: Reference dataset folder, or a :class:`~cxrseg.data.Dataset` from ``discover``.
        out: Output folder; must not be one of the input folders or lie inside one.
        structures: Structures to evaluate, named as predicted; default every predicted
            structure that pairs with reference structures (:mod:`cxrseg.structure_map`).
        structure_map: Explicit pairs ``{predicted: [reference, ...]}`` (``--map``); the
            prediction is compared with the union of the references.
        allow_missing: Evaluate the ids found on both sides and list the others, instead of
            raising :class:`MismatchError`.
        worst: Number of worst cases shown with overlays in the report.
        progress: Optional ``progress(done, total)`` callback.
        workers: Threads reading and scoring cases (the results do not depend on it).

    Returns:
        The per-case metrics, the summary and where the files were written.

    Raises:
        MismatchError: Ids (unless ``allow_missing``) or sizes differ, or no structure pairs;
            the message lists them by name.
        InputError: Missing folders, an output folder inside an input, unreadable files.
        ValueError: ``worst`` below 0 or ``workers`` below 1.
    """
    _check_arguments(structures, worst, workers)
    pred_root, out = Path(pred_root), Path(out)
    ref = data if isinstance(data, Dataset) else discover(data)
    ref_root = ref.root if ref.root is not None else ref.cases[0].image.parent
    _check_out(out, [pred_root, ref_root, *ref.input_dirs])
    pair = Pairing.match(pred_root, ref, structures, allow_missing, structure_map)
    _check_out(out, pair.pred.folders)
    cases = [ref.case(case_id) for case_id in pair.case_ids]
    n_worst = min(worst, len(cases))
    total = len(cases) + n_worst
    report = progress or (lambda done, total: None)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        spacings = _check_sizes(pool, pair, cases, pred_root)
        report(0, total)
        scored: list[CaseResult] = []
        for case_result in pool.map(partial(_score, pair), cases, spacings):
            scored.append(case_result)
            report(len(scored), total)
        result = _result(scored, pair, pred_root, ref_root, out)
        _write_csv(out / "cases.csv", result)
        _write_summary(out / "summary.json", result, ref, n_worst)
        thumbnails: dict[str, str] = {}
        for case_id, uri in pool.map(partial(_thumbnail, pair), result.worst(n_worst)):
            thumbnails[case_id] = uri
            report(len(scored) + len(thumbnails), total)

    write_report(out / "report.html", result, thumbnails)
    logger.info("evaluated %d cases; report in %s", len(scored), out)
    return result


def _check_arguments(structures: Sequence[str] | None, worst: int, workers: int) -> None:
    if isinstance(structures, str):
        raise TypeError(
            f"structures must be a list of names, got the string {structures!r}; "
            f"pass {structures.split(',')!r}"
        )
    if isinstance(worst, bool) or not isinstance(worst, int) or worst < 0:
        raise ValueError(f"worst must be an integer >= 0, got {worst!r}; e.g. worst=24")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}; e.g. workers=2")


def _check_sizes(
    pool: ThreadPoolExecutor, pair: Pairing, cases: list[Case], pred_root: Path
) -> list[tuple[float, float] | None]:
    """Pixel spacing of every case; every prediction of another size than its image, raised."""
    headers = list(pool.map(pair.header, cases))
    bad_sizes = [line for _, lines in headers for line in lines]
    if bad_sizes:
        raise MismatchError(
            f"{len(bad_sizes)} predictions differ in size from their image: {listing(bad_sizes)}",
            path=pred_root,
            hint="restore predictions to the image size (cxrseg predict does) or predict "
            "from these images.",
            size_mismatches=bad_sizes,
        )
    return [spacing for spacing, _ in headers]


def _result(
    scored: list[CaseResult], pair: Pairing, pred_root: Path, ref_root: Path, out: Path
) -> EvaluationResult:
    with_mm = any(case_result.spacing is not None for case_result in scored)
    metric_names = [*METRICS, *(MM_METRICS if with_mm else ())]
    return EvaluationResult(
        cases=scored,
        structures=pair.names,
        metrics=metric_names,
        summary=_summarize(scored, pair.names, metric_names),
        predictions=pred_root,
        references=ref_root,
        out=out,
        missing_predictions=pair.missing_predictions,
        missing_references=pair.missing_references,
        structure_map=pair.structure_map.to_dict(),
        flags=read_flags(pred_root, [case.case_id for case in scored]),
    )


def _check_out(out: Path, inputs: Iterable[Path]) -> None:
    target = out.resolve()
    for folder in dict.fromkeys(p.resolve() for p in inputs):
        if target == folder or target.is_relative_to(folder):
            where = "an input folder" if target == folder else f"inside the input folder {folder}"
            raise InputError(
                f"the output folder is {where}; the report would be written among the inputs",
                path=out,
                hint="choose an output folder outside the prediction and reference folders, "
                "e.g. --out report next to them.",
            )


def _score(pair: Pairing, case: Case, spacing: tuple[float, float] | None) -> CaseResult:
    """Metrics of one case (mm metrics NaN when the spacing is unknown)."""
    _, ref_masks, pred_masks = pair.load(case)
    metrics = segmentation_metrics(pred_masks, ref_masks, spacing)
    if spacing is None:
        for row in metrics.values():
            row.update(dict.fromkeys(MM_METRICS, math.nan))
    return CaseResult(case.case_id, metrics, spacing)


def _thumbnail(pair: Pairing, case_result: CaseResult) -> tuple[str, str]:
    """Case id and triptych data URI of a scored case."""
    image, ref_masks, pred_masks = pair.load(pair.ref.case(case_result.case_id))
    return case_result.case_id, triptych_data_uri(image, ref_masks, pred_masks)


def read_flags(pred_root: Path, case_ids: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    """Quality flags of ``case_ids`` from ``PRED/predictions.json`` (``cxrseg predict``).

    Returns an empty mapping when the file is absent, unreadable or holds no flags (predictions
    made elsewhere, or by an older cxrseg).
    """
    path = pred_root / "predictions.json"
    try:
        record = parse_json(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        logger.warning("cannot read the quality flags in %s: %s", path, exc)
        return {}
    wanted = set(case_ids)
    flags: dict[str, list[dict[str, str]]] = {}
    for case in record.get("cases", []) if isinstance(record, dict) else []:
        if isinstance(case, dict) and case.get("id") in wanted and "flags" in case:
            flags[case["id"]] = [
                {"code": str(f.get("code", "")), "message": str(f.get("message", ""))}
                for f in case["flags"]
                if isinstance(f, dict)
            ]
    return flags


def _summarize(
    cases: list[CaseResult], names: list[str], metric_names: list[str]
) -> dict[str, dict[str, dict[str, float]]]:
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for name in names:
        summary[name] = {}
        for metric in metric_names:
            kept = [c for c in cases if c.spacing is not None or metric not in MM_METRICS]
            summary[name][metric] = summarize([c.metrics[name][metric] for c in kept])
    return summary


# --- writing ---


def _cell(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def _write_csv(path: Path, result: EvaluationResult) -> None:
    with atomic_write(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "structure", *result.metrics, "flags"])
        for case in result.cases:
            codes = ";".join(flag["code"] for flag in result.flags.get(case.case_id, []))
            for name in result.structures:
                row = case.metrics[name]
                cells = [_cell(row[m]) for m in result.metrics]
                writer.writerow([case.case_id, name, *cells, codes])


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    return value


def _write_summary(path: Path, result: EvaluationResult, ref: Dataset, n_worst: int) -> None:
    known = sum(case.spacing is not None for case in result.cases)
    content = {
        "cxrseg_version": __version__,
        "predictions": str(result.predictions.resolve()),
        "references": str(result.references.resolve()),
        "reference_layout": ref.layout,
        "n_cases": len(result.cases),
        "structures": result.structures,
        "metrics": result.metrics,
        "units": {metric: UNITS[metric] or "fraction" for metric in result.metrics},
        "pixel_spacing_known": {"cases": known, "of": len(result.cases)},
        "empty_mask_rule": EMPTY_MASK_RULE,
        "statistics": "over cases, per structure: mean, median, std (population, ddof=0), "
        "p05 (5th percentile, linear interpolation); n values used, n_nan undefined values "
        "skipped; mm metrics over the cases whose pixel spacing is known",
        "summary": _json_safe(result.summary),
        "worst_cases": {
            "order": "ascending mean Dice over the evaluated structures",
            "ids": [case.case_id for case in result.worst(n_worst)],
        },
        "structure_map": result.structure_map,
        "flagged_cases": {case_id: flags for case_id, flags in result.flags.items() if flags},
        "missing_predictions": result.missing_predictions,
        "missing_references": result.missing_references,
    }
    write_json(path, content, indent=2)
