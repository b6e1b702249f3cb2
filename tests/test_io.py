"""Tests for cxrseg.io: every format on files the tests write, every refusal, atomic writes."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLosslessSV1, SecondaryCaptureImageStorage

from cxrseg.errors import InputError
from cxrseg.io import (
    IMAGE_EXTENSIONS,
    atomic_write,
    is_image_file,
    read_image,
    read_image_info,
    read_mask,
    write_image,
    write_mask,
)

LUMA = np.array([0.299, 0.587, 0.114])
DATA = Path(__file__).parents[2] / "shared" / "data"


def ramp(shape: tuple[int, int], high: int, dtype: type) -> np.ndarray:
    """Values 0..high spread over the image, so every test sees both ends of the range."""
    return np.linspace(0, high, shape[0] * shape[1]).round().astype(dtype).reshape(shape)


def assert_refused(call: Callable[[], object], path: Path, *words: str) -> InputError:
    """The call raises an InputError naming ``path`` and a fix, and leaves the file unchanged."""
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    assert str(path) in message
    assert "Fix:" in message
    for word in words:
        assert word.lower() in message.lower(), (word, message)
    if before is not None:
        assert path.read_bytes() == before
    return info.value


def make_dicom(
    path: Path,
    stored: np.ndarray | None,
    *,
    photometric: str = "MONOCHROME2",
    bits: int = 12,
    syntax: pydicom.uid.UID = ExplicitVRLittleEndian,
    encapsulated: bytes | None = None,
    **attrs: object,
) -> Path:
    """A minimal single-frame DICOM file with ``stored`` (uint16) as pixels and extra ``attrs``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    rows, cols = stored.shape if stored is not None else (16, 16)
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    if encapsulated is not None:
        ds.PixelData = encapsulated
        ds["PixelData"].VR = "OB"
    elif stored is not None:
        ds.PixelData = stored.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


# --- reading images ---------------------------------------------------------------------------


def test_png_16bit_round_trip_is_exact(tmp_path: Path) -> None:
    image = np.random.default_rng(0).random((40, 56))
    path = tmp_path / "x16.png"
    write_image(path, image, bit_depth=16)
    back, info = read_image(path)
    assert back.dtype == np.float32 and back.shape == (40, 56)
    assert np.abs(back - image).max() <= 0.5 / 65535 + 1e-7
    assert (info.format, info.bit_depth, info.channels) == ("PNG", 16, 1)
    assert (info.height, info.width) == (40, 56)


def test_png_8bit_float_round_trip_within_half_step(tmp_path: Path) -> None:
    image = np.random.default_rng(1).random((32, 32))
    write_image(tmp_path / "x8.png", image)
    back, info = read_image(tmp_path / "x8.png")
    assert np.abs(back - image).max() <= 0.5 / 255 + 1e-7
    assert info.bit_depth == 8


def test_uint16_image_written_as_is_reports_raw_range(tmp_path: Path) -> None:
    raw = ramp((32, 32), 4095, np.uint16)  # 12-bit data in a 16-bit PNG
    write_image(tmp_path / "raw.png", raw, bit_depth=16)
    back, info = read_image(tmp_path / "raw.png")
    assert (info.raw_min, info.raw_max) == (0.0, 4095.0)
    np.testing.assert_allclose(back, raw / 65535, atol=1e-7)


def test_rgba_png_reads_luma_and_ignores_alpha(tmp_path: Path) -> None:
    rgba = np.random.default_rng(2).integers(0, 256, (24, 24, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    back, info = read_image(tmp_path / "rgba.png")
    np.testing.assert_allclose(back, rgba[..., :3] @ LUMA / 255, atol=1e-6)
    assert info.channels == 4


def test_rgb_png_with_equal_channels_reads_exactly_one_channel(tmp_path: Path) -> None:
    gray = ramp((20, 20), 255, np.uint8)
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "g.png")
    back, info = read_image(tmp_path / "g.png")
    assert np.array_equal(back, gray / np.float32(255))
    assert info.channels == 3


def test_png_16bit_rgb_keeps_16_bits(tmp_path: Path) -> None:
    rgb = np.random.default_rng(3).integers(0, 65536, (16, 20, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb[..., ::-1])  # OpenCV writes BGR
    back, info = read_image(tmp_path / "rgb16.png")
    np.testing.assert_allclose(back, rgb @ LUMA / 65535, atol=1e-6)
    assert (info.bit_depth, info.channels, info.height, info.width) == (16, 3, 16, 20)


def test_gray_palette_gif_reads_palette_values(tmp_path: Path) -> None:
    indices = np.arange(64, dtype=np.uint8).reshape(8, 8) % 4
    levels = np.array([255, 0, 128, 64], np.uint8)  # index order differs from gray order
    im = Image.fromarray(indices, "P")
    im.putpalette(np.repeat(levels, 3).tolist())
    im.save(tmp_path / "p.gif")
    back, info = read_image(tmp_path / "p.gif")
    np.testing.assert_allclose(back, levels[indices] / 255, atol=1e-7)
    assert (info.format, info.channels) == ("GIF", 1)
    assert np.array_equal(read_mask(tmp_path / "p.gif"), levels[indices])


def test_colour_palette_reads_luma_as_image_and_indices_as_mask(tmp_path: Path) -> None:
    indices = np.arange(36, dtype=np.uint8).reshape(6, 6) % 3
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], np.uint8)
    im = Image.fromarray(indices, "P")
    im.putpalette(colours.ravel().tolist())
    im.save(tmp_path / "voc.png")
    back, info = read_image(tmp_path / "voc.png")
    np.testing.assert_allclose(back, colours[indices] @ LUMA / 255, atol=1e-6)
    assert info.channels == 3
    assert np.array_equal(read_mask(tmp_path / "voc.png"), indices)


def test_rgb_jpeg_is_readable_as_image(tmp_path: Path) -> None:
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:, 16:] = (200, 100, 50)
    Image.fromarray(rgb).save(tmp_path / "x.jpg", quality=95)
    back, info = read_image(tmp_path / "x.jpg")
    assert (info.format, info.channels, back.shape) == ("JPEG", 3, (32, 32))
    assert abs(back[8, 4] - 0.0) < 0.02
    assert abs(back[8, 28] - float(rgb[0, 31] @ LUMA) / 255) < 0.02


@pytest.mark.parametrize("dtype, scale", [(np.uint8, 255), (np.uint16, 65535)])
def test_tiff_8_and_16_bit(tmp_path: Path, dtype: type, scale: int) -> None:
    raw = ramp((20, 30), scale, dtype)
    Image.fromarray(raw).save(tmp_path / "x.tif")
    back, info = read_image(tmp_path / "x.tif")
    np.testing.assert_allclose(back, raw / scale, atol=1e-7)
    assert (info.format, info.bit_depth, info.raw_max) == (
        "TIFF",
        8 * np.dtype(dtype).itemsize,
        scale,
    )  # noqa: E501


def test_tiff_16bit_rgb_uses_tifffile(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    rgb = np.random.default_rng(4).integers(0, 65536, (12, 14, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb, photometric="rgb")
    back, info = read_image(tmp_path / "rgb16.tif")
    np.testing.assert_allclose(back, rgb @ LUMA / 65535, atol=1e-6)
    assert (info.bit_depth, info.channels) == (16, 3)


def test_float_tiff_outside_unit_range_is_stretched(tmp_path: Path) -> None:
    values = np.linspace(-2.0, 6.0, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(values).save(tmp_path / "f.tif")
    back, info = read_image(tmp_path / "f.tif")
    np.testing.assert_allclose(back, (values + 2) / 8, atol=1e-6)
    assert (info.raw_min, info.raw_max) == (-2.0, 6.0)


def test_bmp(tmp_path: Path) -> None:
    gray = ramp((10, 12), 255, np.uint8)
    Image.fromarray(gray).save(tmp_path / "x.bmp")
    back, info = read_image(tmp_path / "x.bmp")
    assert np.array_equal(back, gray / np.float32(255))
    assert info.format == "BMP"


def test_pixel_spacing_from_physical_resolution_only(tmp_path: Path) -> None:
    gray = np.zeros((8, 8), np.uint8)
    Image.fromarray(gray).save(tmp_path / "phys.png", dpi=(254, 127))
    Image.fromarray(gray).save(tmp_path / "placeholder.png", dpi=(72, 72))
    Image.fromarray(gray).save(tmp_path / "none.png")
    spacing = read_image_info(tmp_path / "phys.png").pixel_spacing
    assert spacing is not None
    np.testing.assert_allclose(spacing, (0.2, 0.1), rtol=1e-3)  # (row, col) mm
    assert read_image_info(tmp_path / "placeholder.png").pixel_spacing is None
    assert read_image_info(tmp_path / "none.png").pixel_spacing is None


def test_read_image_info_without_pixel_range_matches_header(tmp_path: Path) -> None:
    write_image(tmp_path / "x.png", ramp((9, 11), 65535, np.uint16), bit_depth=16)
    full = read_image_info(tmp_path / "x.png")
    quick = read_image_info(tmp_path / "x.png", pixel_range=False)
    assert np.isnan(quick.raw_min) and np.isnan(quick.raw_max)
    assert (quick.height, quick.width, quick.bit_depth, quick.channels) == (9, 11, 16, 1)
    assert (full.raw_min, full.raw_max) == (0.0, 65535.0)


# --- DICOM ---------------------------------------------------------------------------------------


WINDOW = {"RescaleSlope": 2, "RescaleIntercept": -1000, "WindowCenter": 3000, "WindowWidth": 4001}


def windowed(stored: np.ndarray) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 linear window after rescale, as a fraction of the output range."""
    x = 2.0 * stored - 1000
    centre, width = 3000 - 0.5, 4001 - 1
    return np.clip((x - centre) / width + 0.5, 0, 1)


def test_dicom_monochrome2_rescale_window_and_spacing(tmp_path: Path) -> None:
    stored = ramp((16, 24), 4095, np.uint16)
    path = make_dicom(tmp_path / "m2.dcm", stored, PixelSpacing=[0.143, 0.15], **WINDOW)
    image, info = read_image(path)
    np.testing.assert_allclose(image, windowed(stored), atol=1e-6)
    assert (info.format, info.bit_depth, info.channels) == ("DICOM", 12, 1)
    assert info.pixel_spacing == pytest.approx((0.143, 0.15))
    assert (info.raw_min, info.raw_max) == (0.0, 4095.0)


def test_dicom_monochrome1_is_inverted_so_low_attenuation_is_dark(tmp_path: Path) -> None:
    stored = ramp((16, 24), 4095, np.uint16)
    path = make_dicom(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1", **WINDOW)
    image, _ = read_image(path)
    np.testing.assert_allclose(image, 1 - windowed(stored), atol=1e-6)


def test_dicom_without_window_scales_bits_stored_range(tmp_path: Path) -> None:
    stored = ramp((8, 8), 1000, np.uint16)
    attrs = {"RescaleSlope": 2, "RescaleIntercept": -1000, "ImagerPixelSpacing": [0.2, 0.2]}
    image, info = read_image(make_dicom(tmp_path / "plain.dcm", stored, **attrs))
    np.testing.assert_allclose(image, stored / 4095, atol=1e-6)
    assert info.pixel_spacing == pytest.approx((0.2, 0.2))


def test_dicom_voi_lut_sequence_output_range_maps_to_unit(tmp_path: Path) -> None:
    lut = (np.arange(4096) // 4).astype(np.uint16)  # outputs 0..1023 in a 16-bit LUT
    item = pydicom.Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = lut.tolist()
    item["LUTData"].VR = "US"
    stored = ramp((8, 8), 4095, np.uint16)
    path = make_dicom(tmp_path / "lut.dcm", stored, VOILUTSequence=pydicom.Sequence([item]))
    image, _ = read_image(path)
    np.testing.assert_allclose(image, lut[stored] / 1023, atol=1e-6)


def test_dicom_info_skips_pixels(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "h.dcm", ramp((8, 10), 4095, np.uint16), **WINDOW)
    info = read_image_info(path, pixel_range=False)
    assert (info.height, info.width, info.bit_depth) == (8, 10, 12)
    assert np.isnan(info.raw_max)


# --- JSRT ----------------------------------------------------------------------------------------


def test_jsrt_img_is_12_bit_big_endian_shown_lungs_dark(tmp_path: Path) -> None:
    raw = np.full((2048, 2048), 600, dtype=">u2")  # bone/mediastinum: low raw value
    raw[500:1500, 300:900] = 3500  # a "lung": high raw value, dark on film
    raw[0, 0], raw[-1, -1] = 0, 4095
    path = tmp_path / "JPCLN001.IMG"
    raw.tofile(path)
    image, info = read_image(path)
    assert image.shape == (2048, 2048) and image.dtype == np.float32
    assert image[1000, 600] < image[100, 100]  # lung darker than the rest
    np.testing.assert_allclose(
        image[[0, 1000, 100], [0, 600, 100]], 1 - np.array([0, 3500, 600]) / 4095, atol=1e-6
    )  # noqa: E501
    assert (info.format, info.bit_depth, info.pixel_spacing) == ("JSRT", 12, (0.175, 0.175))
    assert (info.raw_min, info.raw_max) == (0.0, 4095.0)
    assert np.isnan(read_image_info(path, pixel_range=False).raw_min)
    raw[0, 0] = 5000  # a 16-bit raw file of the right size that is not JSRT
    raw.tofile(path)
    assert_refused(lambda: read_image(path), path, "5000", "12 bits")


# --- masks ---------------------------------------------------------------------------------------


def test_mask_round_trip_keeps_label_values(tmp_path: Path) -> None:
    mask = np.random.default_rng(5).integers(0, 6, (20, 30), dtype=np.uint8)
    write_mask(tmp_path / "m.png", mask)
    back = read_mask(tmp_path / "m.png")
    assert back.dtype == np.uint8 and np.array_equal(back, mask)


def test_bool_mask_is_written_as_0_and_1(tmp_path: Path) -> None:
    mask = np.eye(8, dtype=bool)
    write_mask(tmp_path / "b.png", mask)
    assert np.array_equal(read_mask(tmp_path / "b.png"), mask.astype(np.uint8))


def test_rgb_mask_with_equal_channels_gives_one_channel(tmp_path: Path) -> None:
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 3:6] = 255
    Image.fromarray(np.stack([mask] * 3, -1)).save(tmp_path / "rgb.png")
    assert np.array_equal(read_mask(tmp_path / "rgb.png"), mask)


def test_16bit_mask_with_small_values_is_accepted(tmp_path: Path) -> None:
    mask = (np.arange(64).reshape(8, 8) % 3).astype(np.uint16)
    Image.fromarray(mask).save(tmp_path / "m16.png")
    back = read_mask(tmp_path / "m16.png")
    assert back.dtype == np.uint8 and np.array_equal(back, mask)


def test_1bit_mask_reads_0_and_255(tmp_path: Path) -> None:
    mask = np.eye(8, dtype=bool)
    Image.fromarray(mask).save(tmp_path / "bits.png")  # mode "1"
    assert np.array_equal(read_mask(tmp_path / "bits.png"), mask * np.uint8(255))


# --- refusals ------------------------------------------------------------------------------------


def test_jpeg_mask_is_refused_as_lossy(tmp_path: Path) -> None:
    path = tmp_path / "mask.jpg"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    assert_refused(lambda: read_mask(path), path, "lossy", "PNG")


def test_jpeg_content_behind_png_name_is_refused_as_mask(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path, format="JPEG")
    assert_refused(lambda: read_mask(path), path, "lossy")


def test_colour_mask_is_refused(tmp_path: Path) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[2:4, 2:4] = (255, 0, 0)
    path = tmp_path / "colour.png"
    Image.fromarray(rgb).save(path)
    assert_refused(lambda: read_mask(path), path, "colour", "label PNG")


def test_16bit_mask_above_255_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m65535.png"
    Image.fromarray(np.array([[0, 65535]], np.uint16)).save(path)
    assert_refused(lambda: read_mask(path), path, "65535", "8-bit PNG")


def test_truncated_png_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    write_image(path, np.random.default_rng(6).random((64, 64)))
    path.write_bytes(path.read_bytes()[:200])
    assert_refused(lambda: read_image(path), path, "truncated")


def test_zero_byte_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    assert_refused(lambda: read_image(path), path, "empty", "copy")


def test_dicom_without_pixel_data_is_refused(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "report.dcm", None)
    assert_refused(lambda: read_image(path), path, "no pixel data")


def test_undecodable_compressed_dicom_names_syntax_and_plugins(tmp_path: Path) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder

    if get_decoder(JPEGLosslessSV1).is_available:
        pytest.skip("a JPEG Lossless handler is installed here, so the file would decode")
    frame = b"\xff\xd8\xff\xc3" + bytes(60)  # a JPEG Lossless start, not a full stream
    path = make_dicom(
        tmp_path / "jpegll.dcm",
        np.zeros((16, 16), np.uint16),
        syntax=JPEGLosslessSV1,
        encapsulated=encapsulate([frame]),
    )
    assert_refused(lambda: read_image(path), path, JPEGLosslessSV1.name, "pip install pylibjpeg")


def test_img_of_wrong_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.IMG"
    np.zeros((100, 100), ">u2").tofile(path)
    assert_refused(lambda: read_image(path), path, "20000 bytes", str(2048 * 2048 * 2))


def test_unsupported_extension_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scan.webp"
    path.write_bytes(b"RIFF0000WEBP")
    assert_refused(lambda: read_image(path), path, ".webp", ".png")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nope.png"
    assert_refused(lambda: read_image(path), path, "not found")
    assert not path.exists()


def test_dicom_or_img_cannot_be_a_mask(tmp_path: Path) -> None:
    dicom = make_dicom(tmp_path / "m.dcm", np.zeros((8, 8), np.uint16))
    assert_refused(lambda: read_mask(dicom), dicom, "PNG")
    raw = tmp_path / "m.IMG"
    raw.write_bytes(bytes(64))
    assert_refused(lambda: read_mask(raw), raw, "PNG")


# --- writing -------------------------------------------------------------------------------------


def test_write_into_path_under_a_regular_file_names_the_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    error = assert_refused(
        lambda: write_mask(blocker / "m.png", np.zeros((4, 4), np.uint8)), blocker, "--out"
    )
    assert error.path == blocker
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_write_into_read_only_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert_refused(
            lambda: write_mask(folder / "m.png", np.zeros((4, 4), np.uint8)), folder, "writable"
        )  # noqa: E501
    finally:
        folder.chmod(0o700)
    assert list(folder.iterdir()) == []


def test_atomic_write_failure_keeps_target_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "keep.png"
    target.write_bytes(b"original")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(target) as tmp:
        tmp.write_bytes(b"half written")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_atomic_write_temp_is_hidden_sibling_with_same_suffix(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.png"
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp.name.startswith(".x.png.tmp-") and tmp.suffix == ".png"
        assert not is_image_file(tmp)
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["x.png"]


def test_atomic_write_gives_the_umask_permissions_not_the_writers(tmp_path: Path) -> None:
    # safetensors and tempfile create 0600 files; outputs must be readable like any other file
    from cxrseg.io import writing

    with atomic_write(tmp_path / "w.bin") as tmp:
        tmp.touch(mode=0o600)

    assert (tmp_path / "w.bin").stat().st_mode & 0o777 == 0o666 & ~writing._umask()


def test_atomic_write_disk_full_becomes_input_error(tmp_path: Path) -> None:
    target = tmp_path / "full.png"

    def fill() -> None:
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")

    assert_refused(fill, tmp_path, "space")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_image_does_not_clobber_target(tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    write_image(target, np.zeros((4, 4)))
    before = target.read_bytes()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        write_image(target, np.full((4, 4), 1.5))
    assert target.read_bytes() == before


def test_write_refuses_non_png_suffix(tmp_path: Path) -> None:
    path = tmp_path / "mask.jpg"
    assert_refused(lambda: write_mask(path, np.zeros((4, 4), np.uint8)), path, "mask.png")
    assert not path.exists()


def test_write_image_dtype_must_match_bit_depth(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bit_depth=16"):
        write_image(tmp_path / "x.png", np.zeros((4, 4), np.uint16))


def test_write_mask_refuses_float_and_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="float"):
        write_mask(tmp_path / "f.png", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="0..255"):
        write_mask(tmp_path / "big.png", np.full((4, 4), 300, np.int64))
    assert list(tmp_path.iterdir()) == []


def test_is_image_file_by_suffix_not_hidden() -> None:
    assert {
        ".png",
        ".jpg",
        ".jpeg",
        ".tif",
        ".tiff",
        ".bmp",
        ".gif",
        ".dcm",
        ".dicom",
        ".img",
    } <= IMAGE_EXTENSIONS  # noqa: E501
    assert is_image_file("a/JPCLN001.IMG") and is_image_file(Path("x.PNG"))
    assert not is_image_file("notes.txt") and not is_image_file("._x.png")


# --- real data -----------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent")
@pytest.mark.parametrize("subset", ["montgomery", "shenzhen"])
def test_real_radiograph_and_mask(subset: str) -> None:
    image_path = min((DATA / subset / "images").glob("*.png"))
    image, info = read_image(image_path)
    mask = read_mask(DATA / subset / "masks" / image_path.name)
    assert image.shape == mask.shape == (info.height, info.width)
    assert 0.0 <= image.min() < image.max() <= 1.0
    assert set(np.unique(mask)) <= {0, 255}
