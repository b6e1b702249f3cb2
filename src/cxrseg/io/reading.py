"""Public readers: read_image, read_image_info and read_mask, dispatching on the file suffix."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from cxrseg.errors import InputError
from cxrseg.io._common import (
    _DECODE_HINT,
    _DICOM_EXTENSIONS,
    _JSRT_EXTENSIONS,
    _PILLOW_EXTENSIONS,
    ImageInfo,
    _channels_equal,
    _check_file,
    _labels_uint8,
    _lossy_mask_error,
    _one_line,
    _to_unit,
)
from cxrseg.io.medical import _read_dicom, _read_jsrt
from cxrseg.io.raster import _read_raster

logger = logging.getLogger(__name__)


@contextmanager
def _decoding(path: Path) -> Iterator[None]:
    """Read an untrusted file: whatever goes wrong inside a decoder is the file's problem.

    Pillow, pydicom, tifffile and NumPy raise many exception types on crafted or broken files
    (``struct.error``, ``TypeError`` from a text RescaleSlope, ``IndexError``...). Each becomes
    one :class:`InputError` naming the file, so a command reports it as a bad input (or lists
    the file as failed and goes on) instead of crashing. Their warnings (a corrupt EXIF block,
    an invalid DICOM value) go to the debug log, not to the terminal.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except (InputError, MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:
            detail = f"{type(exc).__name__}: {_one_line(exc)}"
            raise InputError(f"cannot be decoded ({detail})", path=path, hint=_DECODE_HINT) from exc
        finally:
            for warning in caught:
                logger.debug("%s: %s", path, " ".join(str(warning.message).split()))


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
    with _decoding(path):
        image, info = _read_any_image(path)
    if not np.isfinite(image).all():  # e.g. a DICOM RescaleSlope of NaN
        hint = "fix its intensity attributes (DICOM RescaleSlope/Intercept, window) or re-export it"
        raise InputError("gives NaN or infinite intensities", path=path, hint=hint)
    return image, info


def _read_any_image(path: Path) -> tuple[np.ndarray, ImageInfo]:
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
    with _decoding(path):
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
    with _decoding(path):
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
