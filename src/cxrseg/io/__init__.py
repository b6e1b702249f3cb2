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

Orientation: the EXIF/TIFF ``Orientation`` tag of a JPEG, PNG or TIFF is applied to images and
masks alike, so both come back as viewers show them. Several frames: the first is read.

Pixel spacing is ``(row, col)`` in mm: DICOM PixelSpacing, else ImagerPixelSpacing; the
resolution of PNG/TIFF/JPEG/BMP files only when stored in physical units and not a software
placeholder (72 or 96 dpi); JSRT 0.175 mm; otherwise ``None``.
"""

from __future__ import annotations

from cxrseg.io._common import IMAGE_EXTENSIONS, ImageInfo, is_image_file
from cxrseg.io.folders import check_name, folder_lock, inside
from cxrseg.io.jsonfile import parse_json, parse_yaml, read_json, write_json
from cxrseg.io.reading import read_image, read_image_info, read_mask
from cxrseg.io.writing import (
    atomic_write,
    check_output_file,
    ensure_folder,
    write_error,
    write_image,
    write_mask,
)

__all__ = [
    "parse_json",
    "parse_yaml",
    "read_json",
    "write_json",
    "IMAGE_EXTENSIONS",
    "ImageInfo",
    "atomic_write",
    "check_name",
    "check_output_file",
    "ensure_folder",
    "folder_lock",
    "inside",
    "is_image_file",
    "read_image",
    "read_image_info",
    "read_mask",
    "write_error",
    "write_image",
    "write_mask",
]
