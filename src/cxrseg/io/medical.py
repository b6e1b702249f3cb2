"""Medical formats: DICOM through pydicom, and JSRT raw .IMG files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cxrseg.errors import InputError
from cxrseg.io._common import (
    _DECODE_HINT,
    _JSRT_BYTES,
    _JSRT_MAX,
    _JSRT_SHAPE,
    _JSRT_SPACING_MM,
    ImageInfo,
    _header,
    _one_line,
    _to_unit,
    _with_range,
)

# --- DICOM -----------------------------------------------------------------------------------


#: Photometric interpretations whose decoded pixels are gray levels (or RGB, reduced to luma).
#: PALETTE COLOR (indices into a colour table) and the rest are refused by name.
_READABLE_PHOTOMETRICS = {"", "MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422",
                          "YBR_ICT", "YBR_RCT"}  # fmt: skip


def _read_dicom(path: Path, decode: bool = True) -> tuple[np.ndarray, ImageInfo]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=not decode)
    except InvalidDicomError as exc:
        raise InputError(
            "is not a DICOM file (no 'DICM' marker after the 128-byte preamble)",
            path=path,
            hint="check the file; convert ACR-NEMA or other files to DICOM or PNG first",
        ) from exc
    except Exception as exc:
        message = f"cannot be parsed as DICOM ({_one_line(exc)})"
        raise InputError(message, path=path, hint=_DECODE_HINT) from exc
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if not rows or not cols:
        raise InputError(
            "DICOM file has no image (Rows/Columns missing)",
            path=path,
            hint="pick the image file of the series",
        )
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise InputError(
            f"is a multi-frame DICOM ({frames} frames); cxrseg reads single radiographs",
            path=path,
            hint="export the frame you want as its own file",
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric not in _READABLE_PHOTOMETRICS:
        raise InputError(
            f"has PhotometricInterpretation {photometric or '(missing)'}: its pixels are "
            "indices into a colour table or another encoding, not the gray levels of a radiograph",
            path=path,
            hint="export it as MONOCHROME2 DICOM or as a grayscale PNG (e.g. with dcmj2pnm).",
        )
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
    spacing = _dicom_spacing(ds)
    channels = int(ds.get("SamplesPerPixel") or 1)
    info = _header(path, "DICOM", rows, cols, channels, bits, spacing)
    if not decode:
        return np.empty((0, 0), np.float32), info
    stored = _dicom_pixels(ds, path)
    info = _with_range(info, stored)
    if stored.ndim == 3:  # colour: pydicom gives RGB
        return _to_unit(stored, path, float(2**bits - 1)), info
    try:
        if stored.dtype.kind == "f":  # Float Pixel Data: no stored bit range to scale by
            image = _to_unit(stored, path).astype(np.float64)
        else:
            image = _dicom_to_unit(ds, stored, bits)
    except InputError:
        raise
    except Exception as exc:  # a text slope, a LUT shorter than it says: the file's attributes
        raise InputError(
            f"has unusable rescale/VOI attributes ({_one_line(exc)})",
            path=path,
            hint="fix or remove RescaleSlope/Intercept, WindowCenter/Width and VOILUTSequence",
        ) from exc
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        image = 1.0 - image  # MONOCHROME1: low values are white; make air and lungs dark
    return image.astype(np.float32), info


def _dicom_pixels(ds: Any, path: Path) -> np.ndarray:
    if not any(key in ds for key in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise InputError(
            "DICOM file has no pixel data (a report, structured report or presentation state?)",
            path=path,
            hint="pick the image file of the series, the one with (7FE0,0010) Pixel Data",
        )
    syntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:
        if syntax is not None and syntax.is_compressed and not _dicom_decoder_available(syntax):
            raise InputError(
                f"pixel data use the compressed transfer syntax {syntax.name!r} ({syntax}), "
                "which no installed pydicom handler can decode",
                path=path,
                hint="pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg (or python-gdcm), "
                "or decompress the file first (gdcmconv --raw, dcmdjpeg)",
            ) from exc
        message = f"DICOM pixel data cannot be decoded ({_one_line(exc)})"
        raise InputError(message, path=path, hint=_DECODE_HINT) from exc


def _dicom_decoder_available(syntax: Any) -> bool:
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(syntax).is_available)
    except NotImplementedError:
        return False


def _dicom_to_unit(ds: Any, stored: np.ndarray, bits: int) -> np.ndarray:
    """Modality LUT, then VOI LUT or window; the VOI output range becomes [0, 1]."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    signed = int(ds.get("PixelRepresentation") or 0) == 1
    stored_range = np.array(
        [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] if signed else [0, 2**bits - 1]
    )
    values = apply_modality_lut(stored, ds)
    bounds = apply_modality_lut(stored_range, ds)
    if ds.get("VOILUTSequence"):
        descriptor = ds.VOILUTSequence[0].LUTDescriptor
        first, count = int(descriptor[1]), int(descriptor[0]) or 2**16
        values = apply_voi_lut(np.rint(values).astype(np.int64), ds)
        bounds = apply_voi_lut(np.arange(first, first + count), ds)  # every LUT output
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        values = apply_voi_lut(values, ds)
        with np.errstate(over="ignore"):
            bounds = apply_voi_lut(np.array([-1e30, 1e30]), ds)  # the window's output range
    lo, hi = float(np.min(bounds)), float(np.max(bounds))
    if hi <= lo:
        raise ValueError(f"empty output range {lo:g}..{hi:g}")
    return np.clip((np.asarray(values, np.float64) - lo) / (hi - lo), 0.0, 1.0)


def _dicom_spacing(ds: Any) -> tuple[float, float] | None:
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(key)
        try:
            row, col = float(value[0]), float(value[1])
        except (TypeError, ValueError, IndexError):
            continue
        if row > 0 and col > 0:
            return (row, col)
    return None


# --- JSRT raw .IMG ---------------------------------------------------------------------------


def _read_jsrt(path: Path, decode: bool = True) -> tuple[np.ndarray, ImageInfo]:
    size = path.stat().st_size
    if size != _JSRT_BYTES:
        raise InputError(
            f"is {size} bytes, but a JSRT .IMG holds 2048x2048 big-endian 16-bit pixels "
            f"({_JSRT_BYTES} bytes)",
            path=path,
            hint="copy the file again if it is cut short; other raw .IMG layouts are not "
            "supported: convert them to PNG or TIFF",
        )
    info = _header(path, "JSRT", *_JSRT_SHAPE, 1, 12, (_JSRT_SPACING_MM, _JSRT_SPACING_MM))
    if not decode:
        return np.empty((0, 0), np.float32), info
    raw = np.fromfile(path, dtype=">u2").reshape(_JSRT_SHAPE)
    info = _with_range(info, raw)
    if info.raw_max > _JSRT_MAX:
        raise InputError(
            f"has values up to {info.raw_max:g}, above the 12 bits (0..4095) JSRT images use",
            path=path,
            hint="this is not a JSRT image: convert it to PNG or TIFF and read that",
        )
    return (1.0 - raw.astype(np.float32) / _JSRT_MAX).astype(np.float32), info
