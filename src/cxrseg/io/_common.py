"""Shared facts of cxrseg.io: suffixes, ImageInfo, file checks, intensity and label rules."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cxrseg.errors import InputError

logger = logging.getLogger(__name__)


_PILLOW_EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"}
_DICOM_EXTENSIONS = {".dcm", ".dicom"}
_JSRT_EXTENSIONS = {".img"}
IMAGE_EXTENSIONS: set[str] = _PILLOW_EXTENSIONS | _DICOM_EXTENSIONS | _JSRT_EXTENSIONS
"""Lower-case file suffixes cxrseg reads as images."""

_JSRT_SHAPE = (2048, 2048)
_JSRT_BYTES = 2048 * 2048 * 2
_JSRT_MAX = 4095
_JSRT_SPACING_MM = 0.175
_PLACEHOLDER_DPI = {72, 96}
_LUMA = np.array([0.299, 0.587, 0.114])
# Pillow mode -> (channels as stored, alpha included; bits per sample)
_PILLOW_MODES = {
    "1": (1, 1), "L": (1, 8), "P": (1, 8), "LA": (2, 8), "La": (2, 8), "PA": (2, 8),
    "RGB": (3, 8), "YCbCr": (3, 8), "LAB": (3, 8), "HSV": (3, 8), "RGBX": (3, 8),
    "RGBA": (4, 8), "RGBa": (4, 8), "CMYK": (4, 8), "I": (1, 32), "F": (1, 32),
    "I;16": (1, 16), "I;16L": (1, 16), "I;16B": (1, 16), "I;16N": (1, 16),
}  # fmt: skip
_LOSSY_TIFF_COMPRESSIONS = {"jpeg", "tiff_jpeg", "webp", "jpeg2000"}
_DECODE_HINT = "the file is probably truncated or corrupt: copy or export it again"
#: Most pixels an image may declare (10000 x 10000). Radiographs stay below about 4300 x 4300;
#: a header declaring more is corrupt or a "decompression bomb" (a small file that would
#: allocate gigabytes), refused before any pixel is decoded.
MAX_PIXELS = 100_000_000


@dataclass(frozen=True)
class ImageInfo:
    """What an image file holds, before any conversion.

    Attributes:
        path: The file.
        format: ``"PNG"``, ``"JPEG"``, ``"TIFF"``, ``"BMP"``, ``"GIF"``, ``"DICOM"`` or ``"JSRT"``.
        height: Rows.
        width: Columns.
        channels: Samples per pixel as stored, alpha included (gray 1, gray+alpha 2, RGB 3,
            RGBA 4); a palette image counts 1 when its palette is gray, else 3.
        bit_depth: Bits per sample of the source (PNG bit depth, DICOM BitsStored, JSRT 12).
        pixel_spacing: ``(row, col)`` spacing in mm, or ``None`` when the file does not say.
        raw_min: Smallest stored sample (after palette lookup, alpha excluded); NaN when the
            pixels were not decoded (``read_image_info(..., pixel_range=False)``).
        raw_max: Largest stored sample, as ``raw_min``.
    """

    path: Path
    format: str
    height: int
    width: int
    channels: int
    bit_depth: int
    pixel_spacing: tuple[float, float] | None
    raw_min: float
    raw_max: float


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has an image suffix and is not hidden (by name only; no disk access).

    Hidden names (``.x.png``, macOS ``._x.png``, :func:`atomic_write` temporaries) are not images.
    """
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path, hint="check the path and its spelling")
    if path.is_dir():
        raise InputError("is a folder, not an image file", path=path, hint="pass an image file")
    if path.stat().st_size == 0:
        hint = "the copy or export failed: copy the file again"
        raise InputError("is empty (0 bytes)", path=path, hint=hint)
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise InputError(
            f"unsupported file type {path.suffix or '(no suffix)'!r}",
            path=path,
            hint=f"use one of {', '.join(sorted(IMAGE_EXTENSIONS))}, or convert the file to PNG",
        )
    if not os.access(path, os.R_OK):
        hint = "fix the file's permissions"
        raise InputError("cannot be read: permission denied", path=path, hint=hint)
    return path


def _one_line(exc: BaseException) -> str:
    """A decoder's exception text on one line (pydicom lists each plugin's error on its own)."""
    return " ".join(str(exc).split())


def _lossy_mask_error(path: Path) -> InputError:
    return InputError(
        "is JPEG-compressed; JPEG is lossy, so it blurs label edges and invents values between "
        "labels, and cannot hold a mask",
        path=path,
        hint="export the mask again from its original labels as PNG (converting this file "
        "would keep the artefacts)",
    )


# --- intensities and labels ------------------------------------------------------------------


def _channels_equal(samples: np.ndarray) -> bool:
    first = samples[..., 0]
    return all(np.array_equal(first, samples[..., c]) for c in range(1, samples.shape[2]))


def _to_gray(samples: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) samples -> (H, W); equal channels are taken as they are, else luma."""
    if samples.ndim == 2:
        return samples
    if _channels_equal(samples):
        return samples[..., 0]
    return samples[..., :3].astype(np.float64) @ _LUMA


def check_samples(samples: np.ndarray, path: Path) -> np.ndarray:
    """The decoded samples of ``path`` if they are finite real numbers (as every reader needs).

    Raises:
        InputError: Complex or non-numeric samples (a TIFF can hold them), or NaN/infinity
            (a float TIFF or DICOM can).
    """
    if samples.dtype.kind not in "biuf":
        raise InputError(
            f"holds {samples.dtype} samples, not real numbers (gray levels or labels)",
            path=path,
            hint="re-export the image as 8- or 16-bit grayscale (the magnitude, for complex data)",
        )
    if samples.dtype.kind == "f" and not np.isfinite(samples).all():
        raise InputError(
            "contains NaN or infinite pixel values",
            path=path,
            hint="re-export the image with finite values",
        )
    return samples


def _to_unit(samples: np.ndarray, path: Path, full_scale: float | None = None) -> np.ndarray:
    """Gray float32 [0, 1]: divided by the full scale (8/16-bit) or, without one, min..max."""
    check_samples(samples, path)
    if full_scale is None and samples.dtype in (np.uint8, np.uint16):
        full_scale = float(np.iinfo(samples.dtype).max)
    gray = _to_gray(samples)
    if full_scale is not None:
        return (gray / full_scale).astype(np.float32)
    values = gray.astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    if lo >= 0 and hi <= 1:
        return values.astype(np.float32)
    logger.warning(
        "%s: %s values span %g..%g with no fixed full scale; stretching them to 0..1",
        path,
        gray.dtype,
        lo,
        hi,
    )
    span = hi - lo if hi > lo else 1.0
    return ((values - lo) / span).astype(np.float32)


def _header(
    path: Path, fmt: str, height: int, width: int, channels: int, bits: int,
    spacing: tuple[float, float] | None,
) -> ImageInfo:  # fmt: skip
    """An ImageInfo whose pixel range is not known yet (NaN).

    Raises:
        InputError: The size declared is above :data:`MAX_PIXELS`.
    """
    if height * width > MAX_PIXELS:
        raise too_large(path, f"{width} x {height}")
    return ImageInfo(path, fmt, height, width, channels, bits, spacing, math.nan, math.nan)


def too_large(path: Path, declared: str) -> InputError:
    """The error for an image whose header declares more than :data:`MAX_PIXELS`."""
    return InputError(
        f"declares {declared} pixels, more than the {MAX_PIXELS:,} cxrseg decodes (a corrupt "
        "header or a 'decompression bomb'; radiographs are at most about 4300 x 4300)",
        path=path,
        hint="check the file; if the image is real, downsample it below 10000 x 10000 first.",
    )


def _with_range(info: ImageInfo, samples: np.ndarray | None) -> ImageInfo:
    if samples is None or samples.size == 0:
        return info
    check_samples(samples, info.path)
    return replace(info, raw_min=float(samples.min()), raw_max=float(samples.max()))


def _labels_uint8(values: np.ndarray, path: Path) -> np.ndarray:
    if values.dtype == np.uint8:
        return values
    check_samples(values, path)
    if values.dtype == np.bool_:
        return values.astype(np.uint8)
    if np.issubdtype(values.dtype, np.floating) and not np.array_equal(values, np.round(values)):
        raise InputError(
            "holds non-integer (float) values; a mask holds integer labels",
            path=path,
            hint="threshold it and save it as an 8-bit PNG",
        )
    lo, hi = values.min(), values.max()
    if lo < 0 or hi > 255:
        raise InputError(
            f"holds values {lo:g}..{hi:g}; cxrseg masks hold labels 0..255",
            path=path,
            hint="save it as an 8-bit PNG (e.g. 0/255, or divide a 0/65535 mask by 257)",
        )
    return values.astype(np.uint8)
