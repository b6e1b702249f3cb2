"""Pair a prediction folder with a reference dataset: find the files, match ids, structures, sizes.

Used by :func:`cxrseg.evaluation.evaluate`. Predictions are found in, in this order:

* any dataset layout :func:`cxrseg.data.discover` understands, when ``PRED`` holds ``images/``
  or no ``masks/`` folder (e.g. a copy of the data with predicted masks);
* ``PRED/masks/<structure>/<id>.png`` (what ``cxrseg predict`` writes), or ``PRED/<structure>/``;
* flat ``PRED/masks/<id>.png``: one structure, named by ``PRED/dataset.json`` (several labels
  there make it a label-index mask), else the reference's structure when it has only one, else
  ``"foreground"``.

Mask ids follow the dataset naming rules (``<id>_mask.png`` pairs with ``<id>``). Every mismatch
is raised as a :class:`MismatchError` that lists the ids, structures or sizes by name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrseg.data import Case, Dataset, discover, load_case, natural_key, read_labels, structure_name
from cxrseg.data.dataset import LOSSY_MASK_EXTENSIONS, case_id_from_mask
from cxrseg.data.layouts import sources_from_mask_folder, visible_files
from cxrseg.data.loading import check_mask_values, foreground, mask_values
from cxrseg.errors import InputError
from cxrseg.io import is_image_file, read_image_info, read_mask
from cxrseg.structure_map import StructureMap, StructureMapError, map_structures

__all__ = ["MismatchError", "Pairing", "Predictions", "find_predictions", "listing"]

logger = logging.getLogger(__name__)

_LIST_LIMIT = 20


class MismatchError(InputError):
    """Predictions and references disagree on ids, structures or sizes; all listed by name.

    Attributes:
        missing_predictions: Reference ids without a usable prediction.
        missing_references: Predicted ids without a reference case.
        reference_only: Structures annotated but not predicted.
        prediction_only: Structures predicted but not annotated.
        size_mismatches: ``"id/structure: prediction HxW, image HxW"`` lines.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | None = None,
        hint: str | None = None,
        missing_predictions: Sequence[str] = (),
        missing_references: Sequence[str] = (),
        reference_only: Sequence[str] = (),
        prediction_only: Sequence[str] = (),
        size_mismatches: Sequence[str] = (),
    ):
        super().__init__(message, path=path, hint=hint)
        self.missing_predictions = list(missing_predictions)
        self.missing_references = list(missing_references)
        self.reference_only = list(reference_only)
        self.prediction_only = list(prediction_only)
        self.size_mismatches = list(size_mismatches)


@dataclass
class Predictions:
    """Prediction mask files by case id and structure, and why some ids cannot be used.

    Attributes:
        files: ``{case_id: {structure: [files]}}``; a structure is the union of its files.
        structures: Structure names found.
        labels: Label value per structure for label-index masks, else None (binary masks).
        folders: The folders listed (never written).
        problems: Why an id cannot be used (two files for one structure, lossy format).
    """

    files: dict[str, dict[str, list[Path]]]
    structures: list[str]
    labels: dict[str, int] | None
    folders: list[Path]
    problems: dict[str, str]


def find_predictions(pred_root: Path, ref: Dataset) -> Predictions:
    """List prediction files: a masks-only folder, or any dataset layout."""
    if not pred_root.is_dir():
        raise InputError(
            "prediction folder not found" if not pred_root.exists() else "is not a folder",
            path=pred_root,
            hint="pass the folder cxrseg predict wrote (it holds masks/<structure>/<id>.png).",
        )
    masks_dir = pred_root / "masks"
    if (pred_root / "images").is_dir() or not masks_dir.is_dir():
        try:
            return _predictions_from_dataset(discover(pred_root))
        except InputError as exc:
            if not _holds_masks(pred_root):
                raise InputError(
                    f"no predicted masks found ({exc.reason})",
                    path=pred_root,
                    hint="pass the folder cxrseg predict wrote, holding "
                    "masks/<structure>/<id>.png (or <structure>/<id>.png).",
                ) from exc
    folder = masks_dir if masks_dir.is_dir() else pred_root
    sources = sources_from_mask_folder(folder)
    labels: dict[str, int] | None = None
    if sources[0].structure is None:  # flat folder: one structure, or labels in dataset.json
        names, labels = _flat_names(pred_root / "dataset.json", ref)
    else:
        names = [source.structure or "" for source in sources]
    files: dict[str, dict[str, list[Path]]] = {}
    for source, name in zip(sources, names[: len(sources)], strict=True):
        for path in (p for sub in source.folders for p in visible_files(sub)):
            if is_image_file(path):
                by_name = files.setdefault(case_id_from_mask(path.stem), {})
                by_name.setdefault(name, []).append(path)
    if labels is not None:  # one label file holds every structure
        files = {cid: dict.fromkeys(labels, paths[names[0]]) for cid, paths in files.items()}
    problems: dict[str, str] = {}
    for case_id, by_name in files.items():
        for name, paths in by_name.items():
            if len(paths) > 1:
                problems[case_id] = f"several {name} predictions: {', '.join(map(str, paths))}"
            elif paths[0].suffix.lower() in LOSSY_MASK_EXTENSIONS:
                problems[case_id] = f"{paths[0]}: saved as {paths[0].suffix} (lossy); save as PNG"
    return Predictions(files, names, labels, [folder], problems)


def _predictions_from_dataset(dataset: Dataset) -> Predictions:
    """Predictions held in a full dataset layout (images and masks)."""
    files = {case.case_id: dict(case.masks) for case in dataset.cases}
    problems = {
        p.case_id: str(p)
        for p in dataset.problems
        if p.case_id and p.case_id not in files and p.kind != "orphan_image"
    }
    return Predictions(files, dataset.structures, dataset.labels, dataset.input_dirs, problems)


def _flat_names(labels_file: Path, ref: Dataset) -> tuple[list[str], dict[str, int] | None]:
    """Structure names of a flat prediction folder, and label values when it holds several."""
    named = read_labels(labels_file) if labels_file.is_file() else {}
    if len(named) > 1:
        return list(named), named
    if named:
        return list(named), None
    # An unnamed prediction of a one-structure dataset is that structure.
    return [ref.structures[0] if len(ref.structures) == 1 else "foreground"], None


def _holds_masks(folder: Path) -> bool:
    """Whether ``folder`` holds mask images directly or in structure subfolders (no layout)."""
    try:
        sources_from_mask_folder(folder)
    except InputError:
        return False
    return True


def _match_structures(
    pred: Predictions,
    ref: Dataset,
    wanted: Sequence[str] | None,
    explicit: Mapping[str, Sequence[str]] | None,
) -> StructureMap:
    """Pair predicted with reference structures (:mod:`cxrseg.structure_map`); keep ``wanted``."""
    try:
        mapping = map_structures(pred.structures, ref.structures, explicit)
    except StructureMapError as exc:
        raise MismatchError(
            exc.reason,
            hint=exc.hint,
            reference_only=[s for s in ref.structures if s not in pred.structures],
            prediction_only=[s for s in pred.structures if s not in ref.structures],
        ) from exc
    if wanted is not None:
        names = list(dict.fromkeys(structure_name(s) for s in wanted))
        if not names:
            raise ValueError("structures is empty; pass at least one name, or None for all")
        absent = [s for s in names if s not in mapping.pairs]
        if absent:
            raise MismatchError(
                f"cannot evaluate {', '.join(map(repr, absent))}: not a predicted structure "
                f"with a reference; evaluable: {', '.join(mapping.names)} (references have "
                f"{', '.join(ref.structures)}, predictions have {', '.join(pred.structures)})",
                hint="pass structures present on both sides, or pair them with --map.",
                reference_only=mapping.unmatched_references,
                prediction_only=mapping.unmatched_predictions,
            )
        dropped = [s for s in mapping.pairs if s not in names]
        mapping = StructureMap(
            {s: mapping.pairs[s] for s in names},
            [*mapping.unmatched_predictions, *dropped],
            [r for r in ref.structures if not any(r in mapping.pairs[s] for s in names)],
            {s: mapping.rules[s] for s in names},
        )
    left_out = mapping.unmatched_predictions + mapping.unmatched_references
    if left_out:
        logger.warning("evaluating %s; not evaluated: %s", mapping.names, ", ".join(left_out))
    return mapping


def _match_ids(
    pred: Predictions, ref: Dataset, names: list[str], allow_missing: bool
) -> tuple[list[str], list[str], list[str]]:
    """Ids to evaluate (reference order), reference ids without prediction, and the reverse."""
    reasons = dict(pred.problems)
    for case_id, by_name in pred.files.items():
        lacking = [name for name in names if name not in by_name]
        if lacking and case_id not in reasons:
            reasons[case_id] = f"no prediction of {', '.join(lacking)}"
    usable = {case_id for case_id in pred.files if case_id not in reasons}
    ref_ids = set(ref.case_ids)
    case_ids = [case_id for case_id in ref.case_ids if case_id in usable]
    missing_pred = [case_id for case_id in ref.case_ids if case_id not in usable]
    missing_ref = sorted({*pred.files, *reasons} - ref_ids, key=natural_key)
    if not case_ids or ((missing_pred or missing_ref) and not allow_missing):
        described = [f"{i} ({reasons[i]})" if i in reasons else i for i in missing_pred]
        parts = [
            f"{len(ids)} {what}: {listing(ids)}"
            for what, ids in (
                ("reference cases have no usable prediction", described),
                ("predictions have no reference case", missing_ref),
            )
            if ids
        ]
        raise MismatchError(
            f"the case ids differ; {'; '.join(parts)}",
            hint="predict every case of DATA, or pass allow_missing=True (--allow-missing) "
            "to evaluate the ids found on both sides."
            if case_ids
            else "no id is on both sides: check that PRED and DATA belong together.",
            missing_predictions=missing_pred,
            missing_references=missing_ref,
        )
    if missing_pred or missing_ref:
        logger.info(
            "evaluating %d cases; no prediction for %s; no reference for %s",
            len(case_ids),
            listing(missing_pred) or "none",
            listing(missing_ref) or "none",
        )
    return case_ids, missing_pred, missing_ref


def listing(items: Sequence[str], limit: int = _LIST_LIMIT) -> str:
    """``"a, b, c"``, or the first ``limit`` items and ``"and N more"``."""
    shown = ", ".join(items[:limit])
    return f"{shown} and {len(items) - limit} more" if len(items) > limit else shown


@dataclass(frozen=True)
class Pairing:
    """The cases a prediction folder and a reference dataset share, and how to read them.

    Attributes:
        ref: The reference dataset.
        pred: The prediction files.
        names: Structures to compare, named as predicted, in reference order (or as asked).
        case_ids: Ids on both sides, in reference order.
        structure_map: Which reference structures each name is compared with.
        missing_predictions: Reference ids without a usable prediction.
        missing_references: Predicted ids without a reference case.
    """

    ref: Dataset
    pred: Predictions
    names: list[str]
    case_ids: list[str]
    missing_predictions: list[str]
    missing_references: list[str]
    structure_map: StructureMap

    @classmethod
    def match(
        cls,
        pred_root: Path,
        ref: Dataset,
        structures: Sequence[str] | None = None,
        allow_missing: bool = False,
        structure_map: Mapping[str, Sequence[str]] | None = None,
    ) -> Pairing:
        """Find the predictions under ``pred_root`` and match them with ``ref``.

        Args:
            pred_root: The prediction folder (see the module doc).
            ref: The reference dataset.
            structures: Structures to compare, present on both sides; None: all, which must
                then be the same on both sides.
            allow_missing: Keep the ids found on both sides instead of raising when some
                are on one side only.
            structure_map: Explicit pairs ``{predicted: [reference, ...]}`` (``--map``), used
                before the rules of :mod:`cxrseg.structure_map`.

        Raises:
            MismatchError: No structure pairs, or ids differ (unless ``allow_missing``), or no
                id is on both sides.
            InputError: No prediction folder, or no masks in it.
        """
        pred = find_predictions(pred_root, ref)
        mapping = _match_structures(pred, ref, structures, structure_map)
        names = mapping.names
        case_ids, missing_pred, missing_ref = _match_ids(pred, ref, names, allow_missing)
        return cls(ref, pred, names, case_ids, missing_pred, missing_ref, mapping)

    def header(self, case: Case) -> tuple[tuple[float, float] | None, list[str]]:
        """Pixel spacing of the reference image, and the predictions of another size."""
        info = read_image_info(case.image, pixel_range=False)
        lines: list[str] = []
        for name in self.names:
            for path in self.pred.files[case.case_id][name]:
                other = read_image_info(path, pixel_range=False)
                if (other.height, other.width) != (info.height, info.width):
                    lines.append(
                        f"{case.case_id}/{name}: prediction {other.height}x{other.width}, "
                        f"image {info.height}x{info.width}"
                    )
        return info.pixel_spacing, lines

    def load(self, case: Case) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The image, reference masks and predicted masks (uint8 0/1) of the evaluated names."""
        image, ref_masks = load_case(case, self.ref)
        pred_masks: dict[str, np.ndarray] = {}
        for name in self.names:
            union = np.zeros(image.shape, dtype=bool)
            for path in self.pred.files[case.case_id][name]:
                mask = read_mask(path)
                problem = check_mask_values(mask_values(mask), self.pred.labels)
                if problem is not None:
                    raise InputError(problem[0], path=path, hint=problem[1])
                union |= foreground(mask, name, self.pred.labels)
            pred_masks[name] = union.astype(np.uint8)
        refs = {
            name: np.logical_or.reduce([ref_masks[r] > 0 for r in parts]).astype(np.uint8)
            if len(parts) > 1 else ref_masks[parts[0]]
            for name, parts in self.structure_map.pairs.items()
        }  # fmt: skip
        return image, refs, pred_masks
