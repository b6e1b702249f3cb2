"""Predict files, folders and globs into the standard layout.

:func:`predict_paths` writes, under ``out``::

    masks/<structure>/<id>.png          0/255 per structure (default)
    labels/<id>.png                     0 = background, k = k-th structure (label_map=True)
    probabilities/<structure>/<id>.png  16-bit, probability x 65535 (save_probabilities=True)
    overlays/<id>.png                   the radiograph with the masks drawn over it (overlays=True)
    predictions.json                    the model, settings, the source file and flags of every id

Every case in ``predictions.json`` has ``flags``: an empty list when the prediction looks
plausible, else ``{"code", "message"}`` items (:mod:`cxrseg.quality`; for DICOM inputs also
the header's modality and body part). The overlay of a flagged case has a red frame and the
flag codes written in its top-left corner.

The id of a case is its file stem. Inputs are never written: an output folder that is an
input folder, lies inside one, or holds an input file is refused before anything is written.
A file that cannot be read is listed in the summary and the others are still processed.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cxrseg.data import natural_key
from cxrseg.data.loading import check_radiograph_size
from cxrseg.errors import InputError
from cxrseg.io import (
    IMAGE_EXTENSIONS,
    atomic_write,
    inside,
    is_image_file,
    read_image,
    write_image,
    write_json,
    write_mask,
)
from cxrseg.quality import Flag, header_flags
from cxrseg.report.contact_sheet import overlay

if TYPE_CHECKING:
    from cxrseg.inference.predictor import Prediction, Predictor

__all__ = ["InputFiles", "PredictSummary", "expand_inputs", "predict_paths"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
_GLOB_CHARS = frozenset("*?[")


@dataclass
class PredictSummary:
    """What :func:`predict_paths` did.

    Attributes:
        out: The output folder.
        written: Ids of the cases whose outputs were written, in input order.
        failed: ``(path, message)`` of every input that could not be used.
        skipped: Files in input folders that are not images (not an error).
        flagged: ``{id: [Flag, ...]}`` of the written cases with quality flags.
    """

    out: Path
    written: list[str] = field(default_factory=list)
    flagged: dict[str, list[Flag]] = field(default_factory=dict)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


@dataclass
class InputFiles:
    """What :func:`expand_inputs` found.

    Attributes:
        files: Image files, in order, each once.
        folders: The folders given.
        failed: ``(path, reason)`` of inputs that are missing or not images.
        skipped: Files in the folders (or glob matches) that are not images.
    """

    files: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def expand_inputs(inputs: Iterable[str | Path]) -> InputFiles:
    """Files, folders (their image files, not recursive) and globs -> image files.

    Folder contents and glob matches are sorted naturally (``case2`` before ``case10``); a
    file found twice is kept once. A path that does not exist, a glob without matches and a
    file given by name that cxrseg cannot read as an image are listed as failed.
    """

    found = InputFiles()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.files.append(path)

    def by_name(paths: Iterable[Path]) -> list[Path]:
        return sorted(paths, key=lambda p: natural_key(str(p)))

    for item in inputs:
        path = Path(item)
        text = str(item)
        if path.is_dir():
            _refuse_model_folder(path)
            found.folders.append(path)
            for child in by_name(p for p in path.iterdir() if p.is_file()):
                if is_image_file(child):
                    add(child)
                elif not child.name.startswith("."):
                    found.skipped.append(child)
        elif path.is_file():
            if is_image_file(path):
                add(path)
            else:
                found.failed.append((path, f"not an image type cxrseg reads "
                                           f"({', '.join(sorted(IMAGE_EXTENSIONS))})"))  # fmt: skip
        elif _GLOB_CHARS & set(text):
            matches = by_name(Path(p) for p in glob.glob(text, recursive=True))
            images = [p for p in matches if p.is_file() and is_image_file(p)]
            found.skipped.extend(p for p in matches if p.is_file() and not is_image_file(p))
            if not images:
                found.failed.append((path, "the pattern matches no image file"))
            for image in images:
                add(image)
        else:
            found.failed.append((path, "no such file or folder"))
    return found


#: Files that mark a folder as a training run or a model, not a folder of radiographs.
_MODEL_MARKERS = ("best/model.json", "model.json", "last/resume.json", "train.log", "splits.json")


def _refuse_model_folder(folder: Path) -> None:
    """Refuse an input folder that is a run or model folder (its curves.png is no radiograph).

    Raises:
        InputError: Naming the file that gives it away and the two commands meant.
    """
    marker = next((m for m in _MODEL_MARKERS if (folder / m).is_file()), None)
    if marker is not None:
        raise InputError(
            f"is a cxrseg run or model folder ({marker}), not a folder of radiographs; its "
            "images (curves.png, overlays) would be segmented as if they were chest X-rays",
            path=folder,
            hint=f"to predict with this model: cxrseg predict {folder} IMAGES... --out DIR "
            "(without --model); otherwise give only folders or files of radiographs.",
        )


def _check_ids(files: Sequence[Path]) -> None:
    by_id: dict[str, list[Path]] = {}
    for path in files:
        by_id.setdefault(path.stem, []).append(path)
    clashes = {k: v for k, v in by_id.items() if len(v) > 1}
    if clashes:
        listed = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in clashes.items())
        raise InputError(
            f"several inputs have the same id (file stem), so their outputs would collide: "
            f"{listed}",
            hint="give only one file per id, or rename one of them",
        )


def _check_out(out: Path, found: InputFiles) -> None:
    """Refuse an output folder that is, contains or lies inside an input folder or file."""
    target = out.resolve()
    for folder in found.folders:
        place = folder.resolve()
        if target == place or target.is_relative_to(place) or place.is_relative_to(target):
            raise InputError(
                f"the output folder would be mixed with the input folder {folder}",
                path=out,
                hint="choose an --out folder outside the inputs",
            )
    for file in found.files:
        if file.resolve().is_relative_to(target):
            raise InputError(
                f"the output folder holds the input {file}; writing there could overwrite it",
                path=out,
                hint="choose an --out folder outside the inputs",
            )


def predict_paths(
    predictor: Predictor,
    inputs: Iterable[str | Path],
    out: str | Path,
    *,
    label_map: bool = False,
    save_probabilities: bool = False,
    overlays: bool = False,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> PredictSummary:
    """Predict every input image and write the results under ``out`` (layout above).

    Args:
        predictor: The model.
        inputs: Image files, folders and glob patterns.
        out: Output folder; created if needed, files of the same name are replaced.
        label_map: Write one label map per image instead of one mask per structure.
        save_probabilities: Also write 16-bit probability maps.
        overlays: Also write overlay PNGs.
        batch_size: Images read and predicted together (default: the predictor's).
        progress: Called with ``(done, total)`` after each batch.

    Returns:
        The summary; ``failed`` lists unreadable inputs, which did not stop the others.

    Raises:
        InputError: No input at all, two inputs with the same id, an output folder that
            overlaps the inputs, or a label map asked of a model whose structures overlap.
    """
    out = Path(out)
    info = predictor.info
    if label_map and info.mode == "sigmoid" and len(info.labels) > 1:
        raise InputError(
            f"a label map cannot hold the overlapping structures of this sigmoid model "
            f"({', '.join(info.labels)}): a pixel may belong to several",
            hint="drop --label-map to write one mask per structure",
        )
    found = expand_inputs(inputs)
    if not found.files and not found.failed:
        raise InputError("no image files among the inputs", hint="give image files or folders")
    _check_ids(found.files)
    _check_out(out, found)
    for path in found.skipped:
        logger.info("skipped %s: not an image file", path)
    summary = PredictSummary(out, failed=list(found.failed), skipped=list(found.skipped))
    step = batch_size or predictor.batch_size
    total, done = len(found.files), 0
    records: list[dict[str, object]] = []
    for start in range(0, total, step):
        chunk = found.files[start : start + step]
        images, paths = _read_all(chunk, summary.failed)
        predictions = predictor.predict_batch(images, probabilities=save_probabilities)
        for path, image, prediction in zip(paths, images, predictions, strict=True):
            flags = [*prediction.flags, *dicom_flags(path)]
            _write_case(out, path.stem, image, prediction, info.labels, label_map, overlays, flags)
            summary.written.append(path.stem)
            if flags:
                summary.flagged[path.stem] = flags
            records.append({"id": path.stem, "source": str(path), "shape": list(image.shape),
                            "flags": [flag.to_dict() for flag in flags]})  # fmt: skip
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    _write_record(out, predictor, records, summary, label_map)
    return summary


def _read_all(
    paths: Sequence[Path], failed: list[tuple[Path, str]]
) -> tuple[list[np.ndarray], list[Path]]:
    images: list[np.ndarray] = []
    kept: list[Path] = []
    for path in paths:
        try:
            image, _ = read_image(path)
            check_radiograph_size(image.shape, path)
        except (ValueError, OSError) as exc:  # InputError is a ValueError
            message = getattr(exc, "reason", None) or str(exc)
            failed.append((path, message))
            logger.warning("cannot read %s: %s", path, message)
            continue
        images.append(image)
        kept.append(path)
    return images, kept


def _write_case(
    out: Path,
    case_id: str,
    image: np.ndarray,
    prediction: Prediction,
    labels: Sequence[str],
    label_map: bool,
    overlays: bool,
    flags: Sequence[Flag] = (),
) -> None:
    # every name in these paths was checked where it was read; inside() checks the result too
    if label_map:
        labelled = np.zeros(image.shape, np.uint8)
        for k, name in enumerate(labels, start=1):  # a later structure wins where they meet
            labelled[prediction.masks[name] > 0] = k
        write_mask(inside(out, out / "labels" / f"{case_id}.png"), labelled)
    else:
        for name in labels:
            target = inside(out, out / "masks" / name / f"{case_id}.png")
            write_mask(target, prediction.masks[name] * 255)
    for name, prob in (prediction.probabilities or {}).items():
        target = inside(out, out / "probabilities" / name / f"{case_id}.png")
        write_image(target, prob, bit_depth=16)
    if overlays:
        target = inside(out, out / "overlays" / f"{case_id}.png")
        _write_overlay(target, image, prediction.masks, flags)


def _write_overlay(
    path: Path, image: np.ndarray, masks: dict[str, np.ndarray], flags: Sequence[Flag] = ()
) -> None:
    import cv2  # lazy: start-up time

    rgb = overlay(image, masks)
    if flags:  # a red frame and the codes: this mask is not to be trusted
        side = max(2, min(rgb.shape[:2]) // 80)
        height, width = rgb.shape[:2]
        cv2.rectangle(rgb, (0, 0), (width - 1, height - 1), (255, 0, 0), 2 * side)
        scale = max(0.4, min(rgb.shape[:2]) / 800)
        text = "FLAGGED: " + ", ".join(dict.fromkeys(flag.code for flag in flags))
        cv2.putText(rgb, text, (2 * side, 2 * side + int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (255, 0, 0), max(1, int(2 * scale)), cv2.LINE_AA)  # fmt: skip
    with atomic_write(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise InputError("OpenCV could not write the overlay", path=path)


def dicom_flags(path: Path) -> list[Flag]:
    """Flags of a DICOM file's Modality and BodyPartExamined (none for other files)."""
    try:
        import pydicom  # lazy: start-up time

        header = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # not DICOM (pydicom raises several types); nothing to check
        return []
    return header_flags(header.get("Modality"), header.get("BodyPartExamined"))


def _write_record(
    out: Path,
    predictor: Predictor,
    records: list[dict[str, object]],
    summary: PredictSummary,
    label_map: bool,
) -> None:

    info = predictor.info
    record = {
        "model": None if predictor.source is None else str(predictor.source),
        "labels": list(info.labels),
        "mode": info.mode,
        "layout": "labels" if label_map else "masks",
        "tta": list(predictor.flips),
        "postprocessing": {k: v.to_dict() for k, v in predictor.postprocessing.items()},
        "device": predictor.backend.device,
        "runtime": getattr(predictor.backend, "runtime", type(predictor.backend).__name__),
        "precision": getattr(predictor.backend, "precision", "float32"),
        "runtime_reason": getattr(predictor.backend, "reason", ""),
        "cases": records,
        "failed": [{"source": str(p), "error": m} for p, m in summary.failed],
    }
    write_json(out / "predictions.json", record, indent=2)
