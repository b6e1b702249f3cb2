"""Hostile files in the formats cxrseg reads, and hostile names: each is one clear message.

The cases run through the harness of ``test_hostile`` (exit status, one message naming the file
with its fix, no traceback or crash report, nothing changed outside the named outputs). Each was
a failure before: a crash ("this is a bug"), a silent wrong image, or a whole command refused
for one file. Below them, the reading rules the cases rest on, checked on the readers directly.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

import test_hostile
from test_hostile import (
    Case,
    Spec,
    World,
    _listed,
    _says,
    _train,
    _write,
    bomb_png,
    check_case,
    dataset_with,
    tampered_model,
)

#: The fixtures of test_hostile, found by pytest under these names.
world = test_hostile.world
crash_dir = test_hostile.crash_dir

# --- hostile files, generated ------------------------------------------------------------------


def gray_dicom(path: Path, syntax: str = "1.2.840.10008.1.2.1", **attributes: Any) -> Path:
    """A 48 x 48 MONOCHROME2 DICOM (12 bits in 16) with ``attributes`` set over the defaults."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import UID, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(syntax)
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows = ds.Columns = 48
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.linspace(0, 4095, 48 * 48).astype(np.uint16).tobytes()
    for key, value in attributes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)
    return path


def text_slope_dicom(path: Path) -> Path:
    """RescaleSlope 'abc' (pydicom keeps it as text; NumPy cannot multiply by it)."""
    path = gray_dicom(path.with_suffix(".dcm"), RescaleSlope="1.5", RescaleIntercept=0)
    path.write_bytes(path.read_bytes().replace(b"1.5 ", b"abc ", 1))
    return path


def short_voi_lut_dicom(path: Path) -> Path:
    """A VOI LUT whose descriptor promises 65536 entries and whose data holds 10."""
    from pydicom.dataset import Dataset

    lut = Dataset()
    lut.LUTDescriptor = [0, 0, 16]
    lut.LUTData = np.arange(10, dtype=np.uint16).tobytes()
    return gray_dicom(path.with_suffix(".dcm"), VOILUTSequence=[lut])


def unknown_syntax_dicom(path: Path) -> Path:
    """A transfer syntax UID that names no transfer syntax, over encapsulated bytes."""
    from pydicom.encaps import encapsulate

    return gray_dicom(path.with_suffix(".dcm"), "1.2.3.4.5",
                      PixelData=encapsulate([b"\xff\xd8garbage\xff\xd9"]))  # fmt: skip


def float_nan_dicom(path: Path) -> Path:
    """Float Pixel Data holding a NaN."""
    pixels = np.linspace(0, 1, 48 * 48, dtype=np.float32)
    pixels[7] = np.nan
    return gray_dicom(path.with_suffix(".dcm"), PixelData=None, PixelRepresentation=None,
                      BitsAllocated=32, BitsStored=32, HighBit=31,
                      FloatPixelData=pixels.tobytes())  # fmt: skip


def nan_tiff(path: Path) -> Path:
    pixels = np.linspace(0, 1, 48 * 48, dtype=np.float32).reshape(48, 48)
    pixels[3, 3] = np.nan
    Image.fromarray(pixels, mode="F").save(path.with_suffix(".tif"))
    return path.with_suffix(".tif")


def complex_tiff(path: Path) -> Path:
    import tifffile

    pixels = np.linspace(0, 255, 48 * 48).reshape(48, 48).astype(np.complex64)
    tifffile.imwrite(path.with_suffix(".tif"), pixels)
    return path.with_suffix(".tif")


#: ``[[[[...`` deeper than Python's parsers can recurse: valid JSON and YAML syntax, unparsable.
DEEP = "[" * 100_000


def _deep_dataset_json(tmp: Path, world: World) -> Path:
    data = tmp / "data"
    shutil.copytree(world.data, data)
    (data / "dataset.json").write_text(DEEP, encoding="utf-8")
    return data


def _long_name(world: World, tmp: Path) -> Spec:
    """The longest name a file may have (255 bytes) among good inputs: all predicted."""
    inputs = tmp / "in"
    shutil.copytree(world.images, inputs)
    shutil.copy(inputs / "x0.png", inputs / ("x" * 251 + ".png"))
    out = tmp / "o"
    return Spec(["predict", world.model, inputs, "--out", out, "--quiet"], [out], code=0,
                says=("Predicted 4 image(s)",))  # fmt: skip


# --- the cases ---------------------------------------------------------------------------------


def _augment(data: Path, out: Path) -> list[object]:
    return ["augment", data, "--out", out, "-n", "6", "--size", "32",
            "--random-distortion", "4", "4", "2"]  # fmt: skip


CASES: dict[str, Case] = {
    # a run folder inside the dataset, refused like augment's, predict's and evaluate's
    "train-out-inside-the-data": lambda w, t: Spec(
        ["train", w.data, "--out", w.data / "run", "--quiet", "--size", "32"],
        says=("inside the dataset", "Fix:"),
        gone=[w.data / "run"],
    ),
    "train-folds-out-inside-the-data": lambda w, t: Spec(
        ["train", w.data, "--out", w.data / "cv", "--folds", "2", "--quiet", "--size", "32"],
        says=("inside the dataset", "Fix:"),
        gone=[w.data / "cv"],
    ),
    # crashes ("this is a bug") on a decoder's own exception type
    "predict-dicom-text-rescale-slope-among-good": lambda w, t: _listed(
        w, t, text_slope_dicom, "rescale/VOI"
    ),
    "predict-dicom-short-voi-lut-among-good": lambda w, t: _listed(
        w, t, short_voi_lut_dicom, "rescale/VOI"
    ),
    "train-dicom-text-rescale-slope": lambda w, t: _says(
        _train(w, t, "--size", "32", data=dataset_with(t, w, text_slope_dicom)),
        ".dcm",
        "rescale/VOI",
        "Fix:",
    ),  # fmt: skip
    "train-dicom-unknown-transfer-syntax": lambda w, t: _says(
        _train(w, t, "--size", "32", data=dataset_with(t, w, unknown_syntax_dicom)),
        ".dcm",
        "cannot be decoded",
        "Fix:",
    ),  # fmt: skip
    "augment-dicom-short-voi-lut": lambda w, t: Spec(
        _augment(dataset_with(t, w, short_voi_lut_dicom), t / "a"),
        [t / "a"],
        says=(".dcm", "rescale/VOI", "Fix:"),
    ),  # fmt: skip
    # read as a wrong image without a word
    "predict-float-dicom-nan-among-good": lambda w, t: _listed(w, t, float_nan_dicom, "NaN"),
    "predict-complex-tiff-among-good": lambda w, t: _listed(w, t, complex_tiff, "complex64"),
    "inspect-float-tiff-nan": lambda w, t: Spec(
        ["inspect", dataset_with(t, w, nan_tiff)], code=1, says=(".tif", "NaN")
    ),
    "inspect-complex-tiff": lambda w, t: Spec(
        ["inspect", dataset_with(t, w, complex_tiff)], code=1, says=(".tif", "complex64")
    ),
    # trained for nothing, exit 0
    "train-a-structure-empty-in-every-case": lambda w, t: _says(
        _train(w, t, "--size", "32", data=_emptied(t, w, "heart")), "heart", "empty", "Fix:"
    ),
    # one input's name stopped every input
    "predict-name-at-the-length-limit": _long_name,
    # nesting too deep for the parser: a RecursionError, so "this is a bug"
    "inspect-dataset-json-nested-too-deep": lambda w, t: Spec(
        ["inspect", _deep_dataset_json(t, w)], says=("dataset.json", "nested too deeply", "Fix:")
    ),
    "train-config-nested-too-deep": lambda w, t: _says(
        _train(w, t, "--config", _write(t / "train.yaml", DEEP)), "train.yaml", "nested too deeply"
    ),
    "train-splits-nested-too-deep": lambda w, t: _says(
        _train(w, t, "--size", "32", "--splits", _write(t / "mine.json", DEEP)), "mine.json"
    ),
    "augment-pipeline-nested-too-deep": lambda w, t: Spec(
        ["augment", w.data, "--out", t / "a", "-n", "2", "--pipeline", _write(t / "p.yaml", DEEP)],
        [t / "a"],
        says=("p.yaml", "nested too deeply"),
    ),
    "predict-model-json-nested-too-deep": lambda w, t: Spec(
        ["predict", _deep_model(t, w), w.images, "--out", t / "o", "--quiet"],
        [t / "o"],
        says=("model.json", "nested too deeply"),
    ),
}


def _emptied(tmp: Path, world: World, structure: str) -> Path:
    """A copy of the world's dataset whose ``structure`` masks are all background."""
    from cxrseg.io import write_mask

    data = tmp / "data"
    shutil.copytree(world.data, data)
    for mask in (data / "masks" / structure).iterdir():
        write_mask(mask, np.zeros((32, 32), np.uint8))
    return data


def _deep_model(tmp: Path, world: World) -> Path:
    model = tampered_model(tmp, world)
    (model / "model.json").write_text(DEEP, encoding="utf-8")
    return model


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_format_case(name: str, world: World, tmp_path: Path, crash_dir: Path) -> None:
    check_case(CASES[name], world, tmp_path, crash_dir)


# --- the reading rules underneath ---------------------------------------------------------------


def test_a_decoder_warning_is_logged_not_printed(tmp_path: Path) -> None:
    """Pillow warns of a 'decompression bomb' at 9999 x 9999 (under cxrseg's limit); the file is
    truncated, so the reader raises one InputError and no Python warning reaches the terminal."""
    from cxrseg.errors import InputError
    from cxrseg.io import read_image

    path = bomb_png(tmp_path / "big.png", side=9999)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(InputError, match="big"):
        warnings.simplefilter("always")
        read_image(path)
    assert [str(w.message) for w in caught] == []


def _oriented_png(path: Path, pixels: np.ndarray, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif)
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_turns_images_and_masks_alike_as_pillow_does(
    orientation: int, tmp_path: Path
) -> None:
    from cxrseg.io import read_image, read_image_info, read_mask

    pixels = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4) * 10  # not symmetric in any way
    path = _oriented_png(tmp_path / "x.png", pixels, orientation)
    with Image.open(path) as im:
        want = np.asarray(ImageOps.exif_transpose(im))  # the reference: what viewers show
    image, info = read_image(path)
    assert np.array_equal(np.rint(image * 255).astype(np.uint8), want)
    assert np.array_equal(read_mask(path), want)
    header = read_image_info(path, pixel_range=False)  # the header agrees with the pixels
    assert (header.height, header.width) == (info.height, info.width) == want.shape


def test_a_rotated_jpeg_and_the_mask_drawn_on_it_pair_up(tmp_path: Path) -> None:
    """A camera JPEG stored sideways (orientation 6) and a mask drawn on the upright picture."""
    from cxrseg.io import read_image, read_mask

    upright = np.zeros((48, 32), np.uint8)
    upright[5:20, 4:12] = 255
    stored = np.rot90(upright, 1)  # what the camera wrote: 32 x 48, turned back by orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "x.jpg", exif=exif, quality=100)
    Image.fromarray(upright).save(tmp_path / "m.png")
    image, _ = read_image(tmp_path / "x.jpg")
    mask = read_mask(tmp_path / "m.png")
    assert image.shape == mask.shape == (48, 32)
    assert abs(float(image[mask > 0].mean()) - 1.0) < 0.05  # the bright block under the mask


def test_the_temporary_file_of_a_name_at_the_length_limit_fits(tmp_path: Path) -> None:
    from cxrseg.io import read_mask, write_mask

    target = tmp_path / ("x" * 251 + ".png")
    write_mask(target, np.ones((4, 4), np.uint8))
    assert read_mask(target).sum() == 16
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary left


@pytest.mark.parametrize("kind", ["json", "yaml"])
def test_nesting_too_deep_is_a_parse_error_not_a_recursion_error(kind: str) -> None:
    import json

    import yaml

    from cxrseg.io import parse_json, parse_yaml

    parse = parse_json if kind == "json" else parse_yaml
    error = json.JSONDecodeError if kind == "json" else yaml.YAMLError
    with pytest.raises(error, match="nested too deeply"):
        parse(DEEP)
    assert parse("[[1]]") == [[1]]
