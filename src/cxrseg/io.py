"""Reading radiographs and masks, writing PNGs atomically.

Images come back as float32 ``(H, W)`` grayscale in ``[0, 1]`` with lungs dark, plus an
:class:`ImageInfo` that records what the file held. Masks come back as uint8 ``(H, W)`` label
arrays with the values as stored. Supported: PNG (1-16 bit; gray, gray+alpha, RGB, RGBA,
palette), JPEG, TIFF, BMP, GIF (Pillow; 16-bit colour PNG through OpenCV; TIFFs Pillow cannot
read faithfully through ``tifffile`` when it is installed), DICOM (pydicom) and JSRT raw ``.IMG``.

Intensity rules:

* 8- and 16-bit samples are divided by their full scale (255, 65535). Colour is reduced to luma
  (ITU-R 601: 0.299 R + 0.587 G + 0.114 B); alpha is ignored; an RGB file whose channels are equal
  is read from one channel, exactly. Float or 32-bit integer samples have no full scale: data
  already in ``[0, 1]`` are kept, others are stretched min..max (with a warning).
* DICOM: modality LUT (Rescale Slope/Intercept), then the first VOI LUT or window when present
  (pydicom's ``apply_modality_lut`` / ``apply_voi_lut``); the VOI output range (without VOI: the
  BitsStored range through the modality LUT) is mapped to ``[0, 1]``. MONOCHROME1 is inverted.
* JSRT ``.IMG``: 2048 x 2048, big-endian 16-bit words holding 12-bit values where larger means
  darker on film, so a plain display is a negative. The image is ``1 - raw / 4095`` (what ImageJ's
  "white is zero" import and published JSRT converters do), which shows lungs dark. 0.175 mm pixels.

Pixel spacing is ``(row, col)`` in mm: DICOM PixelSpacing, else ImagerPixelSpacing; the
resolution of PNG/TIFF/JPEG/BMP files only when stored in physical units and not a software
placeholder (72 or 96 dpi); JSRT 0.175 mm; otherwise ``None``.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cxrseg.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageInfo",
    "atomic_write",
    "is_image_file",
    "read_image",
    "read_image_info",
    "read_mask",
    "write_image",
    "write_mask",
]

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


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has an image suffix and is not hidden (by name only; no disk access).

    Hidden names (``.x.png``, macOS ``._x.png``, :func:`atomic_write` temporaries) are not images.
    """
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def read_image(path: str | Path) -> tuple[np.ndarray, ImageInfo]:
    """Read a radiograph as float32 grayscale in ``[0, 1]``, lungs dark.

    Args:
        path: PNG, JPEG, TIFF, BMP, GIF, DICOM or JSRT ``.IMG`` file.

    Returns:
        The image ``(H, W)`` float32 and its :class:`ImageInfo`.

    Raises:
        InputError: The file is missing, empty, of an unsupported type, truncated or undecodable.
    """
    path = _check_file(path)
    suffix = path.suffix.lower()
    if suffix in _DICOM_EXTENSIONS:
        return _read_dicom(path)
    if suffix in _JSRT_EXTENSIONS:
        return _read_jsrt(path)
    raster = _read_raster(path)
    assert raster.samples is not None
    return _to_unit(raster.samples, path), raster.decoded_info()


def read_image_info(path: str | Path, *, pixel_range: bool = True) -> ImageInfo:
    """Describe an image file without converting it.

    Size, channels, bit depth, format and pixel spacing come from the header (Pillow opens
    lazily, pydicom stops before the pixels, JSRT is judged from the file size) and are exact.
    ``raw_min``/``raw_max`` need the pixels, so they are decoded unless ``pixel_range=False``
    (then both are NaN, nothing is decoded, and a palette image's ``channels`` is judged from its
    whole palette rather than the entries in use).

    Args:
        path: An image file, as :func:`read_image`.
        pixel_range: Decode the pixels to fill ``raw_min``/``raw_max``.

    Raises:
        InputError: As :func:`read_image` (undecodable pixels only when ``pixel_range``).
    """
    path = _check_file(path)
    suffix = path.suffix.lower()
    if suffix in _DICOM_EXTENSIONS:
        return _read_dicom(path, decode=pixel_range)[1]
    if suffix in _JSRT_EXTENSIONS:
        return _read_jsrt(path, decode=pixel_range)[1]
    return _read_raster(path, decode=pixel_range).decoded_info()


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask as uint8 labels, values as stored.

    Gray (palette) images give their gray values; an RGB(A) file whose channels are equal gives
    one channel; a colour-palette image gives its palette indices (label-map convention); 16-bit
    or integer files are accepted when every value fits 0..255. Lossy files are refused.

    Args:
        path: A lossless image file: PNG, TIFF, BMP or GIF.

    Returns:
        ``(H, W)`` uint8 label array.

    Raises:
        InputError: JPEG (lossy), real colour, values above 255, non-integer values, DICOM/JSRT,
            or any reason :func:`read_image` gives.
    """
    path = _check_file(path)
    suffix = path.suffix.lower()
    if suffix in {".jpg", ".jpeg"}:
        raise _lossy_mask_error(path)
    if suffix not in _PILLOW_EXTENSIONS:
        raise InputError(
            f"a {suffix} file cannot hold a mask: masks are label images",
            path=path,
            hint="save the mask as a PNG (0 background, 255 or 1..n per structure)",
        )
    raster = _read_raster(path)
    if raster.lossy:
        raise _lossy_mask_error(path)
    values = raster.indices if raster.indices is not None else raster.samples
    assert values is not None
    if values.ndim == 3:
        if not _channels_equal(values):
            raise InputError(
                "is a colour image (its R, G, B channels differ); a mask must be a gray or "
                "label image",
                path=path,
                hint="convert it to a single-channel label PNG (one gray value per structure)",
            )
        values = values[..., 0]
    return _labels_uint8(values, path)


def write_image(path: str | Path, image: np.ndarray, bit_depth: int = 8) -> None:
    """Write a grayscale image as an 8- or 16-bit PNG, atomically.

    Args:
        path: Target ``.png`` file; missing parent folders are created.
        image: ``(H, W)`` float in ``[0, 1]`` (scaled to the full range of ``bit_depth`` and
            rounded), or uint8 / uint16 written as is (the dtype must match ``bit_depth``).
        bit_depth: 8 or 16.

    Raises:
        InputError: ``path`` is not a ``.png`` or cannot be written.
        ValueError: Bad ``bit_depth``, shape, or float values outside ``[0, 1]``.
        TypeError: Unsupported dtype.
    """
    path = _check_png_target(path)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    image = _check_2d(image, "image")
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    if np.issubdtype(image.dtype, np.floating):
        if image.size and not (np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1):
            raise ValueError(
                f"float image values must lie in [0, 1], got {np.nanmin(image):g}.."
                f"{np.nanmax(image):g} (or NaN/inf); normalise or clip the image before writing"
            )
        pixels = np.rint(image * float(np.iinfo(dtype).max)).astype(dtype)
    elif image.dtype in (np.uint8, np.uint16):
        if image.dtype != dtype:
            raise ValueError(
                f"a {image.dtype} image cannot be written with bit_depth={bit_depth}; pass "
                f"bit_depth={8 * image.dtype.itemsize} or convert the array"
            )
        pixels = image
    else:
        raise TypeError(
            f"image dtype must be float (values in [0, 1]), uint8 or uint16, got {image.dtype}"
        )
    _write_png(path, pixels)


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a label mask as an 8-bit PNG, atomically, values unchanged.

    Args:
        path: Target ``.png`` file; missing parent folders are created.
        mask: ``(H, W)`` uint8 labels; bool (written 0/1) and other integer arrays whose values
            fit 0..255 are accepted.

    Raises:
        InputError: ``path`` is not a ``.png`` or cannot be written.
        ValueError: Bad shape or values outside 0..255.
        TypeError: Float or other non-integer dtype.
    """
    path = _check_png_target(path)
    mask = _check_2d(mask, "mask")
    if mask.dtype != np.bool_ and not np.issubdtype(mask.dtype, np.integer):
        raise TypeError(
            f"mask dtype must be uint8, bool or integer labels, got {mask.dtype}; "
            "threshold it first, e.g. (mask > 0.5).astype(np.uint8)"
        )
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError(
            f"mask values must fit 0..255, got {mask.min()}..{mask.max()}; relabel the structures"
        )
    _write_png(path, mask.astype(np.uint8, copy=False))


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto it.

    The temporary file is ``.<name>.tmp-<random><suffix>`` in the target folder (so encoders that
    look at the suffix work, and the rename stays on one file system). On any exception it is
    removed and an existing ``path`` is left untouched. The parent folder is created if missing.

    Raises:
        InputError: The folder cannot be created or written (no permission, read-only file system,
            disk full, a file in the way).
    """
    path = Path(path)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise InputError(
            "cannot create the output folder: a file with that name is in the way",
            path=parent,
            hint="choose another output folder (--out) or move that file",
        ) from exc
    except OSError as exc:
        raise _write_error(exc, parent) from exc
    tmp = parent / f".{path.name}.tmp-{secrets.token_hex(4)}{path.suffix}"
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"atomic_write: nothing was written to the temporary file {tmp}")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
            raise _write_error(exc, parent) from exc
        raise
    _fsync_dir(parent)


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


def _write_error(exc: OSError, folder: Path) -> InputError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free disk space or choose another output folder (--out)"
        return InputError("no space left to write here", path=folder, hint=hint)
    return InputError(
        f"cannot write here ({exc.strerror or exc})",
        path=folder,
        hint="choose a writable output folder (--out)",
    )


def _fsync_dir(folder: Path) -> None:
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    with atomic_write(path) as tmp:
        Image.fromarray(np.ascontiguousarray(pixels)).save(tmp, format="PNG")


def _check_png_target(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(
            f"cxrseg writes PNG files only, got the suffix {path.suffix or '(none)'!r}",
            path=path,
            hint=f"name the file {path.stem}.png",
        )
    return path


def _check_2d(array: Any, what: str) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(array).__name__}")
    if array.ndim != 2:
        raise ValueError(f"{what} must be 2-D (H, W), got shape {array.shape}; pass one channel")
    return array


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


def _lossy_mask_error(path: Path) -> InputError:
    return InputError(
        "is JPEG-compressed; JPEG is lossy, so it blurs label edges and invents values between "
        "labels, and cannot hold a mask",
        path=path,
        hint="export the mask again from its original labels as PNG (converting this file "
        "would keep the artefacts)",
    )


# --- raster formats (Pillow, OpenCV for 16-bit colour PNG, tifffile) -------------------------


def _read_raster(path: Path, decode: bool = True) -> _Raster:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            raster = _pillow_raster(path, im)
            if raster is None:  # Pillow would lose precision or cannot convert
                return _read_other(path, im.format, decode)
            if decode:
                frames = int(getattr(im, "n_frames", 1))
                if frames > 1:
                    logger.warning("%s: has %d frames; reading the first", path, frames)
                im.load()
                _fill_pillow_samples(raster, im)
            return raster
    except InputError:
        raise
    except UnidentifiedImageError as exc:
        if path.suffix.lower() in {".tif", ".tiff"} and _tifffile() is not None:
            return _read_other(path, "TIFF", decode)
        message = "is not an image Pillow can identify"
        raise InputError(message, path=path, hint=_DECODE_HINT) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"cannot be decoded ({exc})", path=path, hint=_DECODE_HINT) from exc


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
        samples = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if decode else None
        if decode and samples is None:
            raise InputError("cannot be decoded by OpenCV", path=path, hint=_DECODE_HINT)
        if samples is not None and samples.ndim == 3:
            samples = np.ascontiguousarray(samples[..., 2::-1])  # BGR(A) -> RGB, alpha dropped
        return _Raster(_header(path, "PNG", height, width, channels, depth, None), False, samples)
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
            samples = np.asarray(page.asarray()) if decode else None
            if samples is not None and samples.ndim == 3 and page.planarconfig == 2:
                samples = np.moveaxis(samples, 0, -1)
    except Exception as exc:
        message = f"cannot be decoded as TIFF ({exc})"
        raise InputError(message, path=path, hint=_DECODE_HINT) from exc
    if samples is not None and samples.ndim == 3:
        samples = samples[..., 0] if samples.shape[2] < 3 else samples[..., :3]
    return _Raster(_header(path, "TIFF", height, width, channels, bits, spacing), lossy, samples)


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


def _to_unit(samples: np.ndarray, path: Path, full_scale: float | None = None) -> np.ndarray:
    """Gray float32 [0, 1]: divided by the full scale (8/16-bit) or, without one, min..max."""
    if full_scale is None and samples.dtype in (np.uint8, np.uint16):
        full_scale = float(np.iinfo(samples.dtype).max)
    gray = _to_gray(samples)
    if full_scale is not None:
        return (gray / full_scale).astype(np.float32)
    values = gray.astype(np.float64)
    if not np.isfinite(values).all():
        raise InputError(
            "contains NaN or infinite pixel values",
            path=path,
            hint="re-export the image with finite values",
        )
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
    """An ImageInfo whose pixel range is not known yet (NaN)."""
    return ImageInfo(path, fmt, height, width, channels, bits, spacing, math.nan, math.nan)


def _with_range(info: ImageInfo, samples: np.ndarray | None) -> ImageInfo:
    if samples is None or samples.size == 0:
        return info
    return replace(info, raw_min=float(samples.min()), raw_max=float(samples.max()))


def _labels_uint8(values: np.ndarray, path: Path) -> np.ndarray:
    if values.dtype == np.uint8:
        return values
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


# --- DICOM -----------------------------------------------------------------------------------


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
        message = f"cannot be parsed as DICOM ({exc})"
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
        image = _dicom_to_unit(ds, stored, bits)
    except (ValueError, NotImplementedError, AttributeError, KeyError) as exc:
        raise InputError(
            f"has unusable rescale/VOI attributes ({exc})",
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
        message = f"DICOM pixel data cannot be decoded ({exc})"
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
