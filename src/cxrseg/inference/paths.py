"""Predict files, folders and globs into the standard layout.

:func:`predict_paths` writes, under ``out``::

    masks/<structure>/<id>.png          0/255 per structure (default)
    labels/<id>.png                     0 = background, k = k-th structure (label_map=True)
    probabilities/<structure>/<id>.png  16-bit, probability x 65535 (save_probabilities=True)
    overlays/<id>.png                   the radiograph with the masks drawn over it (overlays=True)
    dicom-seg/<id>.dcm                  a DICOM Segmentation of each DICOM input (formats)
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

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cxrseg.data.loading import check_radiograph_size
from cxrseg.errors import InputError
from cxrseg.inference.inputs import InputFiles, check_ids, check_out, expand_inputs
from cxrseg.io import atomic_write, inside, read_image, write_image, write_json, write_mask
from cxrseg.io.dicom_seg import require_highdicom, write_dicom_seg
from cxrseg.quality import Flag, header_flags
from cxrseg.report.contact_sheet import overlay

if TYPE_CHECKING:
    from cxrseg.inference.predictor import Prediction, Predictor

__all__ = ["OUTPUT_FORMATS", "InputFiles", "PredictSummary", "expand_inputs", "predict_paths"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
#: ``png``: masks/ (or labels/) PNGs; ``dicom-seg``: a DICOM SEG per DICOM input (highdicom).
OUTPUT_FORMATS = ("png", "dicom-seg")


@dataclass
class PredictSummary:
    """What :func:`predict_paths` did.

    Attributes:
        out: The output folder.
        written: Ids of the cases whose outputs were written, in input order.
        failed: ``(path, message)`` of every input that could not be used.
        skipped: Files in input folders that are not images (not an error).
        flagged: ``{id: [Flag, ...]}`` of the written cases with quality flags.
        dicom_seg: Ids of the cases with a DICOM SEG (``formats`` with ``dicom-seg``).
    """

    out: Path
    written: list[str] = field(default_factory=list)
    flagged: dict[str, list[Flag]] = field(default_factory=dict)
    dicom_seg: list[str] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


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
    formats: Sequence[str] = ("png",),
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
        formats: Of :data:`OUTPUT_FORMATS`. With ``dicom-seg`` every DICOM input also gets
            ``dicom-seg/<id>.dcm`` (:func:`cxrseg.io.dicom_seg.write_dicom_seg`); another input
            gets none, and fails when ``png`` is not asked for either.

    Returns:
        The summary; ``failed`` lists unreadable inputs, which did not stop the others.

    Raises:
        InputError: No input at all, two inputs with the same id, an output folder that
            overlaps the inputs, a label map asked of a model whose structures overlap, an
            unknown format, or ``dicom-seg`` without highdicom.
    """
    out = Path(out)
    formats = _check_formats(formats)
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
    check_ids(found.files)
    check_out(out, found)
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
            seg = _write_seg(out, path, prediction, predictor, formats, summary.failed)
            if seg is False:
                continue
            flags = [*prediction.flags, *dicom_flags(path)]
            _write_case(out, path.stem, image, prediction, info.labels, label_map, overlays,
                        flags, masks="png" in formats)  # fmt: skip
            summary.written.append(path.stem)
            if flags:
                summary.flagged[path.stem] = flags
            if seg:
                summary.dicom_seg.append(path.stem)
            records.append({"id": path.stem, "source": str(path), "shape": list(image.shape),
                            "flags": [flag.to_dict() for flag in flags],
                            "dicom_seg": seg})  # fmt: skip
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
    masks: bool = True,
) -> None:
    # every name in these paths was checked where it was read; inside() checks the result too
    if masks and label_map:
        labelled = np.zeros(image.shape, np.uint8)
        for k, name in enumerate(labels, start=1):  # a later structure wins where they meet
            labelled[prediction.masks[name] > 0] = k
        write_mask(inside(out, out / "labels" / f"{case_id}.png"), labelled)
    elif masks:
        for name in labels:
            target = inside(out, out / "masks" / name / f"{case_id}.png")
            write_mask(target, prediction.masks[name] * 255)
    for name, prob in (prediction.probabilities or {}).items():
        target = inside(out, out / "probabilities" / name / f"{case_id}.png")
        write_image(target, prob, bit_depth=16)
    if overlays:
        target = inside(out, out / "overlays" / f"{case_id}.png")
        _write_overlay(target, image, prediction.masks, flags)


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """The formats asked for, checked; highdicom imported when a DICOM SEG is among them."""
    chosen = tuple(dict.fromkeys(formats))
    unknown = [name for name in chosen if name not in OUTPUT_FORMATS]
    if unknown or not chosen:
        raise InputError(
            f"output format {', '.join(unknown) or '(none)'} is not one of "
            f"{', '.join(OUTPUT_FORMATS)}",
            hint="use --output-format png, dicom-seg or png,dicom-seg",
        )
    if "dicom-seg" in chosen:
        require_highdicom()  # before any prediction: the message names the extra
    return chosen


def _write_seg(
    out: Path,
    path: Path,
    prediction: Prediction,
    predictor: Predictor,
    formats: Sequence[str],
    failed: list[tuple[Path, str]],
) -> str | None | bool:
    """Write ``dicom-seg/<id>.dcm`` when asked and ``path`` is DICOM: its path relative to
    ``out``, ``None`` when none was due, ``False`` (listed in ``failed``) when it failed."""
    if "dicom-seg" not in formats:
        return None
    from pydicom.misc import is_dicom

    if "png" in formats and not is_dicom(path):
        return None  # PNG masks for this one; a SEG only references DICOM sources
    target = Path("dicom-seg") / f"{path.stem}.dcm"
    source = Path(predictor.source) if predictor.source is not None else Path("cxrseg")
    model = source.parent.name if source.name in ("best", "last") else source.stem
    masks = {name: prediction.masks[name] for name in predictor.info.labels}
    try:
        write_dicom_seg(out / target, path, masks, model_name=model)
    except InputError as exc:
        failed.append((path, getattr(exc, "reason", None) or str(exc)))
        logger.warning("no DICOM SEG for %s: %s", path, exc)
        return False
    return target.as_posix()


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
