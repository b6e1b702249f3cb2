"""DICOM in, DICOM out: ``predict`` writes a DICOM Segmentation per DICOM input, read back here
with pydicom (and highdicom where its reader can) and compared with the PNG masks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from cxrseg.cli import app
from cxrseg.errors import InputError
from cxrseg.inference import Predictor, predict_paths
from cxrseg.inference.model_file import ModelInfo
from cxrseg.io import read_mask
from inference_builders import LABELS, SIZE, FakeBackend, make_checkpoint, positional_lungs
from test_io import make_dicom

hd = pytest.importorskip("highdicom", reason="DICOM SEG output needs the [dicom] extra")

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
#: SNOMED CT codes of the structures: (type, laterality modifier).
EXPECTED_CODES = {"left_lung": ("39607008", "7771000"), "right_lung": ("39607008", "24028007"),
                  "heart": ("80891009", None)}  # fmt: skip


def _stored(rows: int = 40, cols: int = 52) -> np.ndarray:
    """12-bit samples, dark with two bright fields (one each side) and noise."""
    rng = np.random.default_rng(0)
    stored = rng.integers(200, 600, (rows, cols)).astype(np.uint16)
    stored[8:30, 4:20] = 3800
    stored[8:30, 32:48] = 3900
    return stored


def _patient_study(**more: object) -> dict[str, object]:
    return {"StudyInstanceUID": generate_uid(), "SeriesInstanceUID": generate_uid(),
            "PatientID": "P1", "PatientName": "Phantom^One", "StudyDate": "20260101",
            "StudyTime": "120000", "AccessionNumber": "A1", "StudyID": "1",
            "ReferringPhysicianName": "", "PatientBirthDate": "", "PatientSex": "O",
            "SeriesNumber": 1, "InstanceNumber": 1, **more}  # fmt: skip


@pytest.fixture(scope="module")
def predicted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same picture as MONOCHROME2 (DX, ImagerPixelSpacing) and as MONOCHROME1 (CR,
    inverted samples, PixelSpacing), predicted into PNG masks and DICOM SEGs."""
    inputs = tmp_path_factory.mktemp("dicom")
    stored = _stored()
    make_dicom(inputs / "dx2.dcm", stored, Modality="DX",
               **_patient_study(ImagerPixelSpacing=[0.2, 0.2]))  # fmt: skip
    make_dicom(inputs / "cr1.dcm", 4095 - stored, photometric="MONOCHROME1", Modality="CR",
               **_patient_study(PixelSpacing=[0.15, 0.175]))  # fmt: skip
    info = ModelInfo(tuple(LABELS), "softmax", SIZE, "squash", "zscore")
    predictor = Predictor(FakeBackend(positional_lungs), info, postprocess=False)
    out = tmp_path_factory.mktemp("pred")
    summary = predict_paths(predictor, [inputs], out, formats=("png", "dicom-seg"))
    assert summary.failed == [] and sorted(summary.dicom_seg) == ["cr1", "dx2"]
    return inputs, out


def _frames_by_segment(seg: pydicom.Dataset) -> dict[int, np.ndarray]:
    """Segment number -> its frame, read with pydicom alone."""
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    numbers = [int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
               for item in seg.PerFrameFunctionalGroupsSequence]  # fmt: skip
    return dict(zip(numbers, pixels, strict=True))


@pytest.mark.parametrize("case", ["dx2", "cr1"])
def test_seg_frames_equal_the_png_masks(predicted: tuple[Path, Path], case: str) -> None:
    _, out = predicted
    seg = pydicom.dcmread(out / "dicom-seg" / f"{case}.dcm")
    frames = _frames_by_segment(seg)
    labels = [str(item.SegmentLabel) for item in seg.SegmentSequence]
    assert labels == LABELS
    for number, name in enumerate(labels, 1):
        png = read_mask(out / "masks" / name / f"{case}.png") > 0
        assert np.array_equal(frames[number] > 0, png), name
    assert frames[1].any() and frames[2].any()  # the comparison is not of empty masks


def test_monochrome1_and_2_of_one_picture_give_the_same_segments(
    predicted: tuple[Path, Path],
) -> None:
    _, out = predicted
    first, second = (_frames_by_segment(pydicom.dcmread(out / "dicom-seg" / f"{c}.dcm"))
                     for c in ("dx2", "cr1"))  # fmt: skip
    assert all(np.array_equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("case", ["dx2", "cr1"])
def test_seg_references_its_source_instance_and_copies_patient_and_study(
    predicted: tuple[Path, Path], case: str
) -> None:
    inputs, out = predicted
    source = pydicom.dcmread(inputs / f"{case}.dcm")
    seg = pydicom.dcmread(out / "dicom-seg" / f"{case}.dcm")
    assert seg.SOPClassUID == SEGMENTATION_STORAGE and seg.Modality == "SEG"
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == source.SeriesInstanceUID
    assert referenced.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == (
        source.SOPInstanceUID
    )
    derivation = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
    assert derivation.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    for key in ("StudyInstanceUID", "PatientID", "PatientName"):
        assert seg.get(key) == source.get(key), key
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID
    assert (seg.Rows, seg.Columns) == (source.Rows, source.Columns)


def test_seg_keeps_the_source_pixel_spacing_and_invents_no_position(
    predicted: tuple[Path, Path],
) -> None:
    _, out = predicted
    cr = pydicom.dcmread(out / "dicom-seg" / "cr1.dcm")
    shared = cr.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == [0.15, 0.175]
    dx = pydicom.dcmread(out / "dicom-seg" / "dx2.dcm")  # ImagerPixelSpacing only: none
    assert "PixelMeasuresSequence" not in dx.SharedFunctionalGroupsSequence[0]
    for seg in (cr, dx):  # a projection radiograph has no frame of reference or position
        assert "FrameOfReferenceUID" not in seg
        assert "PlanePositionSequence" not in seg.PerFrameFunctionalGroupsSequence[0]


def test_segments_carry_snomed_anatomy_and_the_algorithm(predicted: tuple[Path, Path]) -> None:
    _, out = predicted
    seg = pydicom.dcmread(out / "dicom-seg" / "dx2.dcm")
    for item in seg.SegmentSequence:
        kind, side = EXPECTED_CODES[item.SegmentLabel]
        category = item.SegmentedPropertyCategoryCodeSequence[0]
        assert (category.CodeValue, category.CodingSchemeDesignator) == ("91723000", "SCT")
        code = item.SegmentedPropertyTypeCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator) == (kind, "SCT")
        modifiers = code.get("SegmentedPropertyTypeModifierCodeSequence") or []
        assert [m.CodeValue for m in modifiers] == ([side] if side else [])
        assert item.SegmentAlgorithmType == "AUTOMATIC"
        assert item.SegmentAlgorithmName == "cxrseg"


def test_highdicom_reads_the_seg_back_by_source_instance(predicted: tuple[Path, Path]) -> None:
    inputs, out = predicted
    source = pydicom.dcmread(inputs / "dx2.dcm")
    seg = hd.seg.segread(out / "dicom-seg" / "dx2.dcm")
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[source.SOPInstanceUID], segment_numbers=[1, 2, 3]
    )
    for number, name in enumerate(LABELS):
        png = read_mask(out / "masks" / name / "dx2.png") > 0
        assert np.array_equal(pixels[0, ..., number] > 0, png), name


def test_a_structure_without_a_code_is_an_anatomical_structure(tmp_path: Path) -> None:
    from cxrseg.io.dicom_seg import write_dicom_seg

    make_dicom(tmp_path / "x.dcm", _stored(), **_patient_study())
    mask = np.zeros((40, 52), bool)
    mask[10:20, 10:20] = True
    path = write_dicom_seg(tmp_path / "x_seg.dcm", tmp_path / "x.dcm", {"foreground": mask})
    item = pydicom.dcmread(path).SegmentSequence[0]
    assert item.SegmentLabel == "foreground"
    assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == "91723000"


def test_a_mask_of_another_size_is_refused_naming_it(tmp_path: Path) -> None:
    from cxrseg.io.dicom_seg import write_dicom_seg

    make_dicom(tmp_path / "x.dcm", _stored(), **_patient_study())
    with pytest.raises(InputError, match="heart mask is 10x10"):
        write_dicom_seg(tmp_path / "s.dcm", tmp_path / "x.dcm", {"heart": np.ones((10, 10))})
    assert not (tmp_path / "s.dcm").exists()


def test_a_png_input_gets_masks_and_no_seg_unless_only_seg_is_asked(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.fromarray(_stored().astype(np.uint8)).save(tmp_path / "in" / "p.png")
    info = ModelInfo(tuple(LABELS), "softmax", SIZE, "squash", "zscore")
    predictor = Predictor(FakeBackend(positional_lungs), info, postprocess=False)
    both = predict_paths(predictor, [tmp_path / "in"], tmp_path / "a", formats=["png", "dicom-seg"])
    assert both.written == ["p"] and both.failed == [] and both.dicom_seg == []
    assert (tmp_path / "a" / "masks" / "heart" / "p.png").is_file()
    only = predict_paths(predictor, [tmp_path / "in"], tmp_path / "b", formats=["dicom-seg"])
    assert only.written == [] and "not a DICOM file" in only.failed[0][1]
    assert not (tmp_path / "b" / "masks").exists()


runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("run") / "best")


def test_cli_writes_pngs_and_segs_for_dicom_inputs(
    run: Path, predicted: tuple[Path, Path], tmp_path: Path
) -> None:
    inputs, _ = predicted
    args = ["predict", str(run), str(inputs), "--out", str(tmp_path / "o"), "-q",
            "--output-format", "png,dicom-seg"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 DICOM SEG in dicom-seg/<id>.dcm" in result.stdout
    assert sorted(p.name for p in (tmp_path / "o" / "dicom-seg").iterdir()) == [
        "cr1.dcm", "dx2.dcm"]  # fmt: skip


def test_cli_without_highdicom_names_the_extra_in_one_line(
    run: Path, predicted: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "highdicom", None)  # import highdicom -> ImportError
    inputs, _ = predicted
    args = ["predict", str(run), str(inputs), "--out", str(tmp_path / "o"), "-q",
            "--output-format", "dicom-seg"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "pip install 'cxrseg[dicom]'" in result.stderr
    assert not (tmp_path / "o").exists()


def test_cli_refuses_an_unknown_output_format(run: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["predict", str(run), str(tmp_path), "--out",
                                 str(tmp_path / "o"), "--output-format", "nifti"])  # fmt: skip
    assert result.exit_code == 2
    assert "nifti" in result.stderr and "dicom-seg" in result.stderr
