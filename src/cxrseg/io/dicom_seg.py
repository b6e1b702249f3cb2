"""DICOM Segmentation objects (SEG) from predicted masks, one per source radiograph.

:func:`write_dicom_seg` writes a binary SEG through `highdicom <https://highdicom.readthedocs.io>`_
(the optional extra ``pip install 'cxrseg[dicom]'``):

* it references the source image's SOP instance (and so its study and series) and copies the
  patient and study attributes from it, as highdicom does for every derived object;
* one segment per structure, in the model's order, numbered from 1, with coded anatomy:
  category SNOMED CT "Anatomical Structure" (91723000), type "Lung" (39607008), "Heart"
  (80891009) or "Clavicle" (51299004), and the side as a type modifier, "Left" (7771000),
  "Right" (24028007) or "Bilateral" (51440002) for ``lungs``, the way DICOM's CID 7151 with
  laterality codes it (dcmqi does the same). A structure cxrseg has no code for is an
  "Anatomical Structure" with its name as the segment label;
* geometry as the source has it: the same rows and columns, pixel for pixel ("spatial
  locations preserved"), and the source's Pixel Spacing when it has one. A projection
  radiograph has no frame of reference, image orientation or position, so the SEG has none
  either (DICOM requires Slice Thickness only with a frame of reference, CP 1426);
* the algorithm (cxrseg, its version and the model name) is recorded as an automatic,
  artificial-intelligence segmentation.

Empty segments are kept (one frame each), so every structure of the model is present.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cxrseg._version import __version__
from cxrseg.errors import InputError
from cxrseg.io.writing import atomic_write

__all__ = ["DICOM_EXTRA", "STRUCTURE_CODES", "require_highdicom", "write_dicom_seg"]

#: What to install for DICOM SEG output.
DICOM_EXTRA = "pip install 'cxrseg[dicom]'"

#: Structure name -> (SNOMED CT type keyword of pydicom's ``codes.SCT``, laterality or None).
STRUCTURE_CODES: dict[str, tuple[str, str | None]] = {
    "lungs": ("Lung", "Bilateral"),
    "left_lung": ("Lung", "Left"),
    "right_lung": ("Lung", "Right"),
    "heart": ("Heart", None),
    "clavicles": ("Clavicle", "Bilateral"),
    "left_clavicle": ("Clavicle", "Left"),
    "right_clavicle": ("Clavicle", "Right"),
}

#: The SEG's series number, high so that it sorts after the source series in a viewer.
SERIES_NUMBER = 9701


def require_highdicom() -> Any:
    """Import highdicom, or raise the one-line error that names the extra to install."""
    try:
        import highdicom
    except ImportError as exc:
        raise InputError(
            "DICOM SEG output needs highdicom, which is not installed",
            hint=DICOM_EXTRA,
        ) from exc
    return highdicom


def write_dicom_seg(
    path: str | Path,
    source: str | Path,
    masks: Mapping[str, np.ndarray],
    *,
    model_name: str = "cxrseg",
    software_version: str | None = None,
) -> Path:
    """Write a binary DICOM Segmentation of ``source`` with one segment per mask.

    Args:
        path: The ``.dcm`` file to write (atomically; its folder is created).
        source: The DICOM radiograph the masks were predicted from.
        masks: Structure name -> ``(Rows, Columns)`` mask (non-zero inside), in segment order.
        model_name: Recorded as the manufacturer's model name and the algorithm's name.
        software_version: Recorded as the software version (default: cxrseg's).

    Raises:
        InputError: highdicom is missing, ``source`` is not a DICOM image, a mask's shape
            differs from the source's, or the source lacks what a SEG must reference.
    """
    hd = require_highdicom()
    source_ds = _read_source(Path(source))
    names = list(masks)
    pixels = _stack(source_ds, masks, Path(source))
    version = software_version or __version__
    algorithm = _algorithm(hd, model_name, version)
    segments = [_segment(hd, number, name, algorithm) for number, name in enumerate(names, 1)]
    try:
        seg = hd.seg.Segmentation(
            source_images=[source_ds], pixel_array=pixels, segmentation_type="BINARY",
            segment_descriptions=segments, series_instance_uid=hd.UID(),
            series_number=SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer="cxrseg", manufacturer_model_name=model_name[:64],
            software_versions=version, device_serial_number="none", omit_empty_frames=False,
            content_label="CXRSEG", content_description=f"{model_name} masks"[:64],
        )  # fmt: skip
    except (ValueError, TypeError, AttributeError, KeyError) as exc:  # highdicom's checks
        raise InputError(
            f"cannot derive a DICOM SEG from this file: {exc}",
            path=source,
            hint="check its study, series and SOP instance UIDs; or write PNG masks only",
        ) from exc
    target = Path(path)
    with atomic_write(target) as tmp:
        seg.save_as(tmp)
    return target


def _read_source(source: Path) -> Any:
    """The source's header (no pixels: the SEG needs only its attributes)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(source, stop_before_pixels=True)
    except (InvalidDicomError, OSError) as exc:
        raise InputError(
            "is not a DICOM file, so no DICOM SEG can reference it",
            path=source,
            hint="give DICOM inputs, or add --output-format png for PNG masks",
        ) from exc


def _stack(source_ds: Any, masks: Mapping[str, np.ndarray], source: Path) -> np.ndarray:
    """``(1, Rows, Columns, segments)`` bool: the one frame of the source, every segment."""
    shape = (int(source_ds.Rows), int(source_ds.Columns))
    for name, mask in masks.items():
        if mask.shape != shape:
            raise InputError(
                f"the {name} mask is {mask.shape[0]}x{mask.shape[1]} but the image is "
                f"{shape[0]}x{shape[1]}",
                path=source,
                hint="predict this file again; masks keep the source's size",
            )
    return np.stack([np.asarray(m) > 0 for m in masks.values()], axis=-1)[None]


def _algorithm(hd: Any, name: str, version: str) -> Any:
    from pydicom.sr.codedict import codes

    return hd.AlgorithmIdentificationSequence(
        name=name[:64], version=version, family=codes.DCM.ArtificialIntelligence
    )


def _segment(hd: Any, number: int, name: str, algorithm: Any) -> Any:
    """The segment description of a structure, with its SNOMED CT codes (module docstring)."""
    from pydicom.sr.codedict import codes

    keyword, side = STRUCTURE_CODES.get(name, ("AnatomicalStructure", None))
    segment = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name,
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=getattr(codes.SCT, keyword),
        algorithm_type="AUTOMATIC",
        algorithm_identification=algorithm,
        tracking_uid=hd.UID(),
        tracking_id=name,
    )
    if side is not None:
        code = getattr(codes.SCT, side)
        modifier = hd.sr.CodedConcept(code.value, code.scheme_designator, code.meaning)
        segment.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            modifier
        ]
    return segment
