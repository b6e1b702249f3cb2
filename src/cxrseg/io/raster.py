"""Raster formats through Pillow, OpenCV (16-bit colour PNG) and tifffile."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cxrseg.errors import InputError
from cxrseg.io._common import (
    _DECODE_HINT,
    _LOSSY_TIFF_COMPRESSIONS,
    _PILLOW_MODES,
    _PLACEHOLDER_DPI,
    ImageInfo,
    _header,
    _one_line,
    _with_range,
    too_large,
)

logger = logging.getLogger(__name__)


@dataclass
class _Raster:
    """A file read by Pillow, OpenCV or tifffile: header facts and, once decoded, its samples.

    ``samples`` are ``(H, W)`` or ``(H, W, 3)`` colour samples (alpha dropped, palette resolved);
    ``indices`` are the palette indices of a colour-palette image.
    """

    info: ImageInfo
    lossy: bool
    samples: np.ndarray | None = None
    indices: np.ndarray | None = None

    def decoded_info(self) -> ImageInfo:
        return _with_range(self.info, self.samples)


# --- raster formats (Pillow, OpenCV for 16-bit colour PNG, tifffile) -------------------------


def _read_raster(path: Path, decode: bool = True) -> _Raster:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings(), Image.open(path) as im:
            # the size is checked against MAX_PIXELS by _header: no warning needed
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            raster = _pillow_raster(path, im)
            if raster is None:  # Pillow would lose precision or cannot convert
                return _read_other(path, im.format, decode)
            if decode:
                frames = int(getattr(im, "n_frames", 1))
                if frames > 1:
                    logger.warning("%s: has %d frames; reading the first", path, frames)
                im.load()
                _fill_pillow_samples(raster, im)
            return _oriented(raster, _exif_orientation(im, loaded=decode))
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise too_large(path, str(exc).split(" pixels")[0].removeprefix("Image size (")) from exc
    except UnidentifiedImageError as exc:
        if path.suffix.lower() in {".tif", ".tiff"} and _tifffile() is not None:
            return _read_other(path, "TIFF", decode)
        message = "is not an image Pillow can identify"
        raise InputError(message, path=path, hint=_DECODE_HINT) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        message = f"cannot be decoded ({_one_line(exc)})"
        raise InputError(message, path=path, hint=_DECODE_HINT) from exc


def _pillow_raster(path: Path, im: Any) -> _Raster | None:
    """Header facts from an open Pillow image; ``None`` when another reader must decode it."""
    fmt = im.format or path.suffix.lstrip(".").upper()
    mode = im.mode
    if mode not in _PILLOW_MODES:
        return None
    channels, bits = _PILLOW_MODES[mode]
    if mode in ("P", "PA") and not _is_gray_palette(_palette(im)):
        channels += 2
    if fmt == "PNG":
        header = _png_header(path)
        if header is not None and header[2] == 16 and header[3] in (2, 4, 6):
            return None  # Pillow reduces 16-bit colour PNG to 8 bits
        if header is not None and header[3] == 0:
            bits = header[2]
    if fmt == "TIFF":
        tiff_bits = im.tag_v2.get(258, (bits,))
        if max(tiff_bits) > 8 and channels > 1:
            if _tifffile() is not None:
                return None  # Pillow has no 16-bit colour modes
            logger.warning("%s: reading 16-bit colour at 8 bits; pip install tifffile", path)
    compression = str(im.info.get("compression", "")).lower()
    lossy = fmt in ("JPEG", "MPO") or compression in _LOSSY_TIFF_COMPRESSIONS
    spacing = _spacing_from_dpi(im.info.get("dpi"))
    return _Raster(_header(path, fmt, im.height, im.width, channels, bits, spacing), lossy)


#: EXIF/TIFF Orientation -> how to turn the stored rows into the picture viewers show.
_ORIENTATIONS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _exif_orientation(im: Any, loaded: bool) -> int:
    """The Orientation tag (1..8) of a JPEG, PNG or TIFF; 1 when absent, invalid or unreadable."""
    if im.format == "PNG" and not loaded and "exif" not in im.info:
        return 1  # Pillow finds an eXIf chunk after the pixels only by decoding them
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:  # a corrupt EXIF block leaves the picture as stored
        return 1
    return value if value in _ORIENTATIONS else 1


def _oriented(raster: _Raster, orientation: int) -> _Raster:
    """The raster as viewers show it: EXIF/TIFF Orientation applied to the size and samples.

    Images and masks are read alike, so a mask drawn on the picture a viewer showed fits its
    image, and the masks cxrseg writes (with no orientation tag) fit that picture too.
    """
    turn = _ORIENTATIONS.get(orientation)
    if turn is None:
        return raster
    logger.info("%s: EXIF orientation %d applied", raster.info.path, orientation)
    if orientation >= 5:  # a quarter turn or a transposition: rows become columns
        info = raster.info
        raster.info = replace(info, height=info.width, width=info.height)
    if raster.samples is not None:
        raster.samples = np.ascontiguousarray(turn(raster.samples))
    if raster.indices is not None:
        raster.indices = np.ascontiguousarray(turn(raster.indices))
    return raster


def _fill_pillow_samples(raster: _Raster, im: Any) -> None:
    mode = im.mode
    if mode in ("P", "PA"):
        indices = np.asarray(im)
        indices = indices[..., 0] if indices.ndim == 3 else indices
        palette = _palette(im)
        used = palette[np.flatnonzero(np.bincount(indices.ravel(), minlength=256)[:256])]
        if _is_gray_palette(used):
            raster.samples, channels = palette[:, 0][indices], 1
        else:
            raster.samples, raster.indices, channels = palette[indices], indices, 3
        raster.info = replace(raster.info, channels=channels)
        return
    if mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("L" if mode == "1" else "RGB")
    samples = np.asarray(im)
    if samples.ndim == 3:
        samples = samples[..., 0] if samples.shape[2] == 2 else samples[..., :3]
    if mode.startswith("I;16"):
        samples = samples.astype(np.uint16)
    raster.samples = samples


def _palette(im: Any) -> np.ndarray:
    """The palette as (256, 3) uint8, padded with black."""
    values = np.zeros((256, 3), np.uint8)
    raw = np.asarray(im.getpalette("RGB") or [], np.uint8).reshape(-1, 3)[:256]
    values[: len(raw)] = raw
    return values


def _is_gray_palette(colors: np.ndarray) -> bool:
    return bool((colors[:, 0] == colors[:, 1]).all() and (colors[:, 1] == colors[:, 2]).all())


def _png_header(path: Path) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk, or None."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return width, height, head[24], head[25]


def _tifffile() -> Any:
    try:
        import tifffile
    except ImportError:
        return None
    return tifffile


def _read_other(path: Path, fmt: str | None, decode: bool) -> _Raster:
    """16-bit colour PNG through OpenCV; TIFFs Pillow cannot read faithfully through tifffile."""
    header = _png_header(path) if fmt == "PNG" else None
    if header is not None:
        import cv2

        width, height, depth, colour_type = header
        channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour_type, 3)
        info = _header(path, "PNG", height, width, channels, depth, None)  # size checked
        samples = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if decode else None
        if decode and samples is None:
            raise InputError("cannot be decoded by OpenCV", path=path, hint=_DECODE_HINT)
        if samples is not None and samples.ndim == 3:
            samples = np.ascontiguousarray(samples[..., 2::-1])  # BGR(A) -> RGB, alpha dropped
        return _Raster(info, False, samples)
    tifffile = _tifffile()
    if fmt != "TIFF" or tifffile is None:
        raise InputError(
            "uses a pixel layout Pillow cannot read",
            path=path,
            hint="convert it to an 8- or 16-bit grayscale PNG"
            + ("" if fmt != "TIFF" else ", or pip install tifffile"),
        )
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            height, width = int(page.imagelength), int(page.imagewidth)
            channels, bits = int(page.samplesperpixel), int(page.bitspersample)
            lossy = any(k in page.compression.name for k in ("JPEG", "WEBP", "LERC"))
            spacing = _tiff_spacing(page)
            orientation = int(getattr(page.tags.get("Orientation"), "value", 1))
            info = _header(path, "TIFF", height, width, channels, bits, spacing)  # size checked
            samples = np.asarray(page.asarray()) if decode else None
            if samples is not None and samples.ndim == 3 and page.planarconfig == 2:
                samples = np.moveaxis(samples, 0, -1)
    except InputError:
        raise
    except Exception as exc:
        message = f"cannot be decoded as TIFF ({_one_line(exc)})"
        raise InputError(message, path=path, hint=_DECODE_HINT) from exc
    if samples is not None and samples.ndim == 3:
        samples = samples[..., 0] if samples.shape[2] < 3 else samples[..., :3]
    return _oriented(_Raster(info, lossy, samples), orientation)


def _tiff_spacing(page: Any) -> tuple[float, float] | None:
    tags = page.tags
    unit = tags.get("ResolutionUnit")
    scale = {2: 1.0, 3: 2.54}.get(int(unit.value) if unit is not None else 2)
    x, y = tags.get("XResolution"), tags.get("YResolution")
    if scale is None or x is None or y is None:
        return None
    try:
        dpi = (x.value[0] / x.value[1] * scale, y.value[0] / y.value[1] * scale)
    except (TypeError, ZeroDivisionError, IndexError):
        return None
    return _spacing_from_dpi(dpi)


def _spacing_from_dpi(dpi: Any) -> tuple[float, float] | None:
    """(row, col) mm from (x, y) dots per inch, ignoring 72/96 dpi software placeholders."""
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return None
    if not (math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0):
        return None
    if round(x) in _PLACEHOLDER_DPI and round(y) in _PLACEHOLDER_DPI:
        return None
    return (25.4 / y, 25.4 / x)
