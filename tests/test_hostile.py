"""Hostile input and faults over every command: one clear message, no traceback, no stray write.

Every case is built here (no binary fixtures) as a :class:`Spec`: the command line, the outputs
it may write, the exit status it must give and words its message must hold. One harness checks
every case the same way:

- the exit status is the documented one (2: bad input; 1: some inputs failed);
- the message names the file or option and, for a refusal, says ``Fix:``;
- no traceback and no crash report (an unexpected exception is a bug);
- no file is created, changed or removed outside the named outputs, so the inputs are
  byte-identical afterwards.

Faults: a full disk (a small tmpfs, root only), a second ``train --resume`` on a run folder in
use (the folder lock), and ``kill -9`` during ``train`` and ``augment`` followed by a rerun.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cxrseg.cli import app
from inference_builders import make_checkpoint

runner = CliRunner()


# --- the world: a tiny dataset, a checkpoint, a run folder, radiographs (built once) ------------


@dataclass
class World:
    root: Path
    data: Path  # phantom dataset, 6 cases of 32 px, five structures
    model: Path  # a checkpoint folder (model.json + model.safetensors)
    run: Path  # a run folder: best/ + curves.png + train.log
    images: Path  # three radiographs to predict


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from cxrseg.io import write_image
    from cxrseg.phantom import make_phantom, write_phantom_dataset

    root = tmp_path_factory.mktemp("world")
    data = root / "data"
    write_phantom_dataset(data, 6, size=32, seed=0)
    model = make_checkpoint(root / "model")
    run = root / "run"
    shutil.copytree(model, run / "best")
    write_image(run / "curves.png", np.linspace(0, 1, 64 * 64).reshape(64, 64))
    (run / "train.log").write_text("start\n", encoding="utf-8")
    images = root / "images"
    for i in range(3):
        write_image(images / f"x{i}.png", make_phantom(10 + i, 40).image)
    return World(root, data, model, run, images)


# --- hostile files, generated -------------------------------------------------------------------


def bomb_png(path: Path, side: int = 60000) -> Path:
    """A 100-byte PNG whose header declares side x side pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))  # fmt: skip
    return path


def palette_dicom(path: Path) -> Path:
    """A valid DICOM whose pixels are PALETTE COLOR indices, not gray levels."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Rows = ds.Columns = 48
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "PALETTE COLOR"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = (np.arange(48 * 48) % 256).astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)
    return path


def tiny_png(path: Path, side: int = 1) -> Path:
    from cxrseg.io import write_image

    write_image(path, np.full((side, side), 0.5))
    return path


def dataset_with(tmp: Path, world: World, bad: Callable[[Path], object]) -> Path:
    """A copy of the world's dataset whose first image is replaced by ``bad(path)``."""
    data = tmp / "data"
    shutil.copytree(world.data, data)
    first = sorted((data / "images").iterdir())[0]
    first.unlink()
    bad(first)
    return data


def tampered_model(tmp: Path, world: World, **changes: object) -> Path:
    model = tmp / "tampered"
    shutil.copytree(world.model, model)
    data = json.loads((model / "model.json").read_text(encoding="utf-8"))
    for key, value in changes.items():
        if key.startswith("kwargs_"):
            data["model"]["kwargs"][key.removeprefix("kwargs_")] = value
        else:
            data[key] = value
    (model / "model.json").write_text(json.dumps(data), encoding="utf-8")
    return model


def config(tmp: Path, text: str) -> Path:
    path = tmp / "train.yaml"
    path.write_text("size: 32\nepochs: 1\ndevice: cpu\nworkers: 0\n" + text, encoding="utf-8")
    return path


def a_file(tmp: Path) -> Path:
    (tmp / "afile").write_text("I am a file", encoding="utf-8")
    return tmp / "afile"


# --- the cases ----------------------------------------------------------------------------------


@dataclass
class Spec:
    args: list[object]
    outputs: list[Path] = field(default_factory=list)  # may be created or changed
    code: int = 2
    says: tuple[str, ...] = ()  # each must appear in the output
    gone: list[Path] = field(default_factory=list)  # must not exist afterwards (no leftovers)


Case = Callable[[World, Path], Spec]


#: A small, valid elastic distortion for the augment cases whose fault lies elsewhere.
DISTORT = ("--random-distortion", "4", "4", "2")


def _augment(data: Path, out: Path, *extra: object, n: int = 2, size: int | None = 32) -> list:
    """``cxrseg augment DATA --out OUT -n N [--size SIZE] EXTRA...``."""
    sized = ["--size", str(size)] if size is not None else []
    return ["augment", data, "--out", out, "-n", str(n), *sized, *extra]


def _train(world: World, tmp: Path, *extra: object, data: Path | None = None) -> Spec:
    out = tmp / "run"
    return Spec(["train", data or world.data, "--out", out, "--quiet", *extra], [out], gone=[out])


def train_config(text: str, *says: str) -> Case:
    def case(world: World, tmp: Path) -> Spec:
        spec = _train(world, tmp, "--config", config(tmp, text))
        spec.says = ("train.yaml", *says, "Fix:")
        return spec

    return case


CASES: dict[str, Case] = {
    # phantom
    "phantom-huge-size": lambda w, t: Spec(
        ["phantom", "--out", t / "p", "--size", "60000"], [t / "p"], says=("60000", "too large")
    ),
    "phantom-tiny-size": lambda w, t: Spec(
        ["phantom", "--out", t / "p", "--size", "1"], [t / "p"], says=("too small",)
    ),
    "phantom-size-not-a-size": lambda w, t: Spec(
        ["phantom", "--out", t / "p", "-s", "big"], [t / "p"], says=("--size", "big")
    ),
    "phantom-out-under-a-file": lambda w, t: Spec(
        ["phantom", "--out", a_file(t) / "p", "-n", "2", "-s", "32"],
        says=("afile", "in the way", "Fix:"),
    ),
    "phantom-out-not-empty": lambda w, t: Spec(
        ["phantom", "--out", w.data, "-n", "2", "-s", "32"], says=("overwrite",)
    ),
    # inspect
    "inspect-missing-folder": lambda w, t: Spec(["inspect", t / "nope"], says=("nope", "Fix:")),
    "inspect-json-is-a-folder": lambda w, t: Spec(
        ["inspect", w.data, "--json", t], says=("is a folder", "Fix:")
    ),
    "inspect-json-under-a-file": lambda w, t: Spec(
        ["inspect", w.data, "--json", a_file(t) / "x.json"], says=("afile", "in the way", "Fix:")
    ),
    "inspect-json-inside-the-data": lambda w, t: Spec(
        ["inspect", w.data, "--json", w.data / "report.json"], says=("inside the dataset",)
    ),
    "inspect-sheet-not-png": lambda w, t: Spec(
        ["inspect", w.data, "--sheet", t / "s.jpg"], [t / "s.jpg"], says=("--sheet", ".png")
    ),
    "inspect-markup-in-path": lambda w, t: Spec(["inspect", t / "a[/b]c"], says=("a[/b]c", "Fix:")),
    "inspect-decompression-bomb": lambda w, t: Spec(
        ["inspect", dataset_with(t, w, bomb_png)], code=1, says=("declares", "pixels")
    ),
    "inspect-palette-dicom": lambda w, t: Spec(
        ["inspect", dataset_with(t, w, lambda p: palette_dicom(p.with_suffix(".dcm")))],
        code=1,
        says=("PALETTE COLOR",),
    ),
    "inspect-labels-not-a-mapping": lambda w, t: Spec(
        ["inspect", _bad_dataset_json(t, w, {"labels": ["lungs"]})], says=("dataset.json", "labels")
    ),
    "inspect-label-name-too-long": lambda w, t: Spec(
        ["inspect", _bad_dataset_json(t, w, {"labels": {"background": 0, "x" * 200: 1}})],
        says=("dataset.json", "not a plain name", "Fix:"),
    ),
    # augment
    "augment-magnitude-folds-the-image": lambda w, t: Spec(
        _augment(w.data, t / "a", "--random-distortion", "4", "4", "100000"),
        [t / "a"],
        says=("magnitude", "grid cell", "Fix:"),
        gone=[t / "a"],
    ),
    "augment-gaussian-magnitude-folds": lambda w, t: Spec(
        _augment(w.data, t / "a", "--gaussian-distortion", "4", "4", "500", "bell", "in"),
        [t / "a"],
        says=("magnitude", "grid cell"),
        gone=[t / "a"],
    ),
    "augment-out-inside-the-data": lambda w, t: Spec(
        _augment(w.data, w.data / "aug", *DISTORT), says=("inside the input",)
    ),
    "augment-out-under-a-file": lambda w, t: Spec(
        _augment(w.data, a_file(t) / "a", *DISTORT), says=("afile", "Fix:")
    ),
    "augment-markup-in-out": lambda w, t: Spec(
        _augment(t / "no[/b]data", t / "o[/b]", *DISTORT, size=None),
        [t / "o[/b]"],
        says=("no[/b]data", "Fix:"),
    ),
    "augment-pipeline-not-yaml": lambda w, t: Spec(
        _augment(w.data, t / "a", "--pipeline", _write(t / "p.yaml", "a: [b"), size=None),
        [t / "a"],
        says=("p.yaml",),
    ),
    "augment-pipeline-unknown-op": lambda w, t: Spec(
        _augment(
            w.data,
            t / "a",
            "--pipeline",
            _write(t / "p.yaml", "operations:\n- op: warp\n  probability: 1\n"),
            size=None,
        ),
        [t / "a"],
        says=("warp", "Fix:"),
    ),
    "augment-both-recipes": lambda w, t: Spec(
        _augment(w.data, t / "a", "--pipeline", t / "p.yaml", *DISTORT, size=None),
        [t / "a"],
        says=("--pipeline",),
    ),
    "augment-decompression-bomb": lambda w, t: Spec(
        _augment(dataset_with(t, w, bomb_png), t / "a", *DISTORT, n=6),
        [t / "a"],
        says=("declares", "Fix:"),
    ),
    "augment-one-pixel-image": lambda w, t: Spec(
        _augment(dataset_with(t, w, tiny_png), t / "a", *DISTORT, n=6),
        [t / "a"],
        says=("1 x 1", "at least 32"),
    ),
    "augment-bad-resize": lambda w, t: Spec(
        _augment(w.data, t / "a", "--resize", "stretch", *DISTORT, size=None),
        [t / "a"],
        says=("resize", "stretch"),
    ),
    "augment-out-not-empty": lambda w, t: Spec(
        _augment(w.data, _write(t / "o" / "notes.txt", "x").parent, *DISTORT),
        [t / "o"],
        says=("not empty",),
    ),
    # train: the config schema, refused before anything is written
    "train-amp-quoted-no": train_config('amp: "no"\n', "amp='no'", "true or false"),
    "train-epochs-text": train_config("epochs: ten\n", "epochs='ten'", "whole number"),
    "train-lr-negative": train_config("lr: -0.1\n", "lr=-0.1"),
    "train-unknown-model-kwarg": train_config("model_kwargs: {depht: 3}\n", "model_kwargs.depht"),
    "train-depth-out-of-range": train_config(
        "model_kwargs: {depth: 40}\n", "model_kwargs.depth=40", "2 to 7"
    ),
    "train-class-weights-text": train_config("class_weights: [1, heavy]\n", "class_weights[1]"),
    "train-unknown-option": train_config("learning_rate: 0.1\n", "learning_rate", "valid options"),
    "train-config-not-a-mapping": lambda w, t: _says(
        _train(w, t, "--config", _write(t / "train.yaml", "- 1\n- 2\n")),
        "train.yaml",
        "mapping",
        "Fix:",
    ),
    "train-config-not-yaml": lambda w, t: _says(
        _train(w, t, "--config", _write(t / "train.yaml", "a: [b\n")),
        "train.yaml",
        "not valid YAML",
        "Fix:",
    ),
    "train-augmentation-folds": train_config(
        "augmentation: {operations: [{op: random_distortion, probability: 1, grid_width: 4, "
        "grid_height: 4, magnitude: 100}]}\n",
        "grid cell",
    ),
    "train-size-not-multiple-of-32": lambda w, t: _says(
        _train(w, t, "--size", "100"), "size=100", "use 96"
    ),
    "train-device-unknown": lambda w, t: _says(_train(w, t, "--device", "gpu"), "device='gpu'"),
    "train-out-under-a-file": lambda w, t: _says(
        Spec(["train", w.data, "--out", a_file(t) / "run", "--quiet"]), "afile", "Fix:"
    ),
    "train-out-not-empty": lambda w, t: _says(
        Spec(["train", w.data, "--out", w.images, "--quiet"]), "not empty", "Fix:"
    ),
    "train-resume-nothing": lambda w, t: _says(
        Spec(["train", w.data, "--out", t / "run", "--resume", "--quiet"], [t / "run"]), "Fix:"
    ),
    "train-splits-missing": lambda w, t: _says(
        _train(w, t, "--size", "32", "--splits", t / "s.json"), "s.json", "not found"
    ),
    "train-splits-other-cases": lambda w, t: _says(
        _train(w, t, "--size", "32", "--splits", _write(t / "mine.json", _other_splits())),
        "mine.json",
        "not in the dataset",
    ),
    "train-init-tampered-label": lambda w, t: _says(
        _train(w, t, "--size", "32", "--init", tampered_model(t, w, labels=["../../x", "b", "c"])),
        "../../x",
        "not a plain name",
    ),
    "train-one-pixel-image": lambda w, t: _says(
        _train(w, t, "--size", "32", data=dataset_with(t, w, tiny_png)), "1 x 1", "at least 32"
    ),
    "train-decompression-bomb": lambda w, t: _says(
        _train(w, t, "--size", "32", data=dataset_with(t, w, bomb_png)), "declares", "Fix:"
    ),
    "train-class-weights-wrong-length": lambda w, t: _says(
        _train(w, t, "--config", config(t, "class_weights: [1, 2]\nmode: softmax\n")),
        "class_weights has 2 values",
        "Fix:",
    ),
    # predict
    "predict-label-escapes-out": lambda w, t: _predict(
        w,
        t,
        tampered_model(t, w, labels=["../../escape", "b", "c"]),
        "../../escape",
        "not a plain name",
    ),
    "predict-label-absolute": lambda w, t: _predict(
        w, t, tampered_model(t, w, labels=["/tmp/x", "b", "c"]), "/tmp/x", "not a plain name"
    ),
    "predict-huge-input-size": lambda w, t: _predict(
        w, t, tampered_model(t, w, input_size=10**6), "input_size"
    ),
    "predict-huge-depth": lambda w, t: _predict(
        w, t, tampered_model(t, w, kwargs_depth=40), "depth"
    ),
    "predict-huge-channels": lambda w, t: _predict(
        w, t, tampered_model(t, w, kwargs_base_channels=10**6), "base_channels"
    ),
    "predict-model-json-not-json": lambda w, t: _predict(
        w, t, _write(t / "m" / "model.json", "{nope").parent, "model.json"
    ),
    "predict-model-missing": lambda w, t: _predict(w, t, t / "nomodel", "nomodel", "not found"),
    "predict-run-folder-as-input": lambda w, t: Spec(
        ["predict", "--model", "lungs", w.run, w.images, "--out", t / "o", "--quiet"],
        [t / "o"],
        says=("run or model folder", "curves.png", "Fix:"),
    ),
    "predict-bomb-among-good": lambda w, t: _listed(w, t, bomb_png, "declares"),
    "predict-one-pixel-among-good": lambda w, t: _listed(w, t, tiny_png, "at least 32"),
    "predict-palette-dicom-among-good": lambda w, t: _listed(
        w, t, lambda p: palette_dicom(p.with_suffix(".dcm")), "PALETTE COLOR"
    ),
    "predict-out-under-a-file": lambda w, t: Spec(
        ["predict", w.model, w.images, "--out", a_file(t) / "o", "--quiet"], says=("afile", "Fix:")
    ),
    "predict-markup-in-out": lambda w, t: Spec(
        ["predict", t / "m[/b]", w.images, "--out", t / "o[/b]", "--quiet"],
        [t / "o[/b]"],
        says=("m[/b]", "Fix:"),
    ),
    # export
    "export-opset-too-new": lambda w, t: Spec(
        ["export", w.model, "--out", t / "m.onnx", "--opset", "99"],
        [t / "m.onnx", t / "m.json"],
        says=("opset 99", "Fix:"),
    ),
    "export-opset-too-old": lambda w, t: Spec(
        ["export", w.model, "--out", t / "m.onnx", "--opset", "5"],
        [t / "m.onnx", t / "m.json"],
        says=("opset 5", "Fix:"),
    ),
    "export-format-unknown": lambda w, t: Spec(
        ["export", w.model, "--out", t / "m.x", "-f", "tflite"], [t / "m.x"], says=("tflite",)
    ),
    "export-tampered-label": lambda w, t: Spec(
        ["export", tampered_model(t, w, labels=["a/b", "c", "d"]), "--out", t / "m.onnx"],
        [t / "m.onnx", t / "m.json"],
        says=("a/b", "not a plain name"),
    ),
    # evaluate
    "evaluate-pred-missing": lambda w, t: Spec(
        ["evaluate", t / "nope", w.data, "--out", t / "e"], [t / "e"], says=("nope",)
    ),
    "evaluate-out-under-a-file": lambda w, t: Spec(
        ["evaluate", w.data, w.data, "--out", a_file(t) / "e"], says=("afile",)
    ),
    "evaluate-bomb-reference": lambda w, t: Spec(
        ["evaluate", w.data, dataset_with(t, w, bomb_png), "--out", t / "e"],
        [t / "e"],
        code=-1,
        says=("declares",),
    ),
    # models, demo
    "models-unknown-name": lambda w, t: Spec(["models", "kidneys"], says=("kidneys",)),
    "demo-out-under-a-file": lambda w, t: Spec(
        ["demo", "--out", a_file(t) / "d", "--quick", "-q"], says=("afile", "Fix:")
    ),
    "demo-out-not-empty": lambda w, t: Spec(
        ["demo", "--out", w.images, "--quick", "-q"], says=("not empty", "Fix:")
    ),
}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _other_splits() -> str:
    from cxrseg.data import make_splits

    return json.dumps(make_splits(["zz1", "zz2", "zz3", "zz4"], 0, 0.25, 0.25).to_dict())


def _says(spec: Spec, *words: str) -> Spec:
    spec.says = words
    return spec


def _bad_dataset_json(tmp: Path, world: World, content: object) -> Path:
    data = tmp / "data"
    shutil.copytree(world.data, data)
    (data / "dataset.json").write_text(json.dumps(content), encoding="utf-8")
    return data


def _predict(world: World, tmp: Path, model: Path, *says: str) -> Spec:
    out = tmp / "o"
    return Spec(["predict", model, world.images, "--out", out, "--quiet"], [out], says=says)


def _listed(world: World, tmp: Path, bad: Callable[[Path], object], *says: str) -> Spec:
    """One bad input among good ones: listed as failed (exit 1), the good ones written."""
    inputs = tmp / "in"
    shutil.copytree(world.images, inputs)
    bad(inputs / "zz.png")
    out = tmp / "o"
    return Spec(["predict", world.model, inputs, "--out", out, "--quiet"], [out], code=1,
                says=("1 input(s) failed", "zz.", *says))  # fmt: skip


# --- the harness --------------------------------------------------------------------------------


def snapshot(*roots: Path) -> dict[Path, str]:
    files: dict[Path, str] = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                files[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def changed_outside(
    before: dict[Path, str], after: dict[Path, str], outputs: list[Path]
) -> list[Path]:
    allowed = [o.resolve() for o in outputs]

    def inside(path: Path) -> bool:
        real = path.resolve()
        return any(real == a or a in real.parents for a in allowed)

    paths = set(before) | set(after)
    return sorted(p for p in paths if before.get(p) != after.get(p) and not inside(p))


@pytest.fixture
def crash_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path_factory.mktemp("crashes")
    monkeypatch.setenv("CXRSEG_CRASH_DIR", str(folder))
    return folder


def test_there_are_at_least_sixty_cases_over_every_command() -> None:
    commands = {name.split("-")[0] for name in CASES}
    assert len(CASES) >= 60
    assert commands == {"phantom", "inspect", "augment", "train", "predict", "export",
                        "evaluate", "models", "demo"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_case(name: str, world: World, tmp_path: Path, crash_dir: Path) -> None:
    check_case(CASES[name], world, tmp_path, crash_dir)


def check_case(case: Case, world: World, tmp_path: Path, crash_dir: Path) -> None:
    """Build ``case`` in ``tmp_path``, run it, and check it the way every hostile case is."""
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    spec = case(world, case_dir)
    before = snapshot(world.root, case_dir)
    result = runner.invoke(app, [str(a) for a in spec.args])
    output = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    assert "Traceback" not in output and not list(crash_dir.iterdir()), output
    assert "this is a bug" not in output, output
    if spec.code >= 0:
        assert result.exit_code == spec.code, output
    else:  # documented as "2, or 1 when some inputs failed": either, never 0
        assert result.exit_code in (1, 2), output
    assert output.count("error:") <= 1, output  # one message, not a cascade
    for words in spec.says:
        assert words in output, f"{words!r} not in: {output}"
    assert changed_outside(before, snapshot(world.root, case_dir), spec.outputs) == []
    for path in spec.gone:
        assert not path.exists() or not any(path.iterdir()), f"{path} left behind"


# --- the bug path: an unexpected exception -------------------------------------------------------


def test_an_unexpected_exception_says_bug_and_where_the_traceback_is(
    tmp_path: Path, crash_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cxrseg.phantom

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("surprise [/b]")

    monkeypatch.setattr(cxrseg.phantom, "write_phantom_dataset", broken)
    result = runner.invoke(app, ["phantom", "--out", str(tmp_path / "p"), "-n", "2"])
    assert result.exit_code == 3
    assert "this is a bug" in result.output and "surprise [/b]" in result.output
    (report,) = crash_dir.iterdir()
    assert str(report) in result.output.replace("\n", "")
    assert "Traceback" in report.read_text() and "Traceback" not in result.output


# --- faults ---------------------------------------------------------------------------------------


def _in_process_one_thread(args: list[object]) -> object:
    """Run a command here on one torch thread, as the subprocesses (OMP_NUM_THREADS=1) do."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return runner.invoke(app, [str(a) for a in args])
    finally:
        torch.set_num_threads(before)


def _train_args(world: World, out: Path, epochs: int, *extra: str) -> list[object]:
    return ["train", world.data, "--out", out, "--config", _tiny_yaml(out.parent, epochs),
            "--quiet", *extra]  # fmt: skip


def _tiny_yaml(folder: Path, epochs: int) -> Path:
    return _write(folder / f"tiny{epochs}.yaml",
                  f"size: 32\nepochs: {epochs}\nbatch_size: 4\nmodel_kwargs: {{depth: 3, "
                  "base_channels: 4}\ndeterministic: true\nval_fraction: 0.34\ntest_fraction: 0\n"
                  "workers: 0\ndevice: cpu\namp: false\naugmentation: {}\n")  # fmt: skip


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 300  # generous: CI machines can be very busy
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the command ended before {what}: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


_CHILDREN: list[subprocess.Popen[str]] = []


def _popen(*args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    command = [sys.executable, "-m", "cxrseg", *map(str, args)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)  # fmt: skip
    _CHILDREN.append(child)
    return child


@pytest.fixture(autouse=True)
def _no_child_left() -> Iterator[None]:
    """Kill the commands a failed test left running (each by its own pid)."""
    yield
    while _CHILDREN:
        child = _CHILDREN.pop()
        if child.poll() is None:
            child.kill()
            child.wait()


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def _slow_yaml(folder: Path, epochs: int) -> Path:
    """Epochs of about a second on one thread, so a kill lands in the middle of the run."""
    text = (
        f"size: 64\nepochs: {epochs}\nbatch_size: 2\nmodel_kwargs: {{depth: 3, base_channels: 8}}\n"
        "deterministic: true\nval_fraction: 0.34\ntest_fraction: 0\nworkers: 0\ndevice: cpu\n"
        "amp: false\naugmentation: {}\npatience: 0\n"
    )
    return _write(folder / f"slow{epochs}.yaml", text)


def test_kill_9_during_train_then_resume_matches_a_straight_run_and_a_second_resume_is_locked_out(
    world: World, tmp_path: Path
) -> None:
    run, reference = tmp_path / "run", tmp_path / "reference"
    # enough epochs that the first run is still training when the second command comes, on an
    # idle machine too (two epochs ended before it there, and the lock was already free)
    yaml = _slow_yaml(tmp_path, 12)
    straight = _popen("train", world.data, "--out", reference, "--config", yaml, "--quiet")
    first = _popen("train", world.data, "--out", run, "--config", yaml, "--quiet")
    _wait_for(lambda: (run / "last" / "resume.json").is_file(), first, "the first epoch ended")
    # a second command on the same run folder is refused while the first one trains
    assert first.poll() is None, "the first run ended before the lock could be tested"
    second = runner.invoke(app, ["train", str(world.data), "--out", str(run), "--resume", "-q"])
    assert second.exit_code == 2, second.output
    assert f"process {first.pid}" in second.output and "another cxrseg command" in second.output
    assert "Fix:" in second.output
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL  # killed in the middle, not finished
    resumed = _in_process_one_thread(["train", world.data, "--out", run, "--resume", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert straight.wait() == 0, straight.communicate()
    got, want = _weights(run / "last"), _weights(reference / "last")
    assert got.keys() == want.keys()
    assert all(np.array_equal(got[k], want[k]) for k in want)
    assert not (run / ".cxrseg.lock").exists()


def test_kill_9_during_augment_then_rerun_matches_a_straight_run_and_is_locked_meanwhile(
    world: World, tmp_path: Path
) -> None:
    out, reference = tmp_path / "aug", tmp_path / "reference"
    # enough samples that the first run is still writing when the second command comes
    args = ["-n", "150", "--size", "128", "--random-distortion", "4", "4", "3"]
    straight = _popen("augment", world.data, "--out", reference, *args)
    first = _popen("augment", world.data, "--out", out, *args)
    manifest = out / "manifest.jsonl"
    _wait_for(lambda: manifest.is_file() and manifest.read_text().count("\n") >= 3, first,
              "three samples were written")  # fmt: skip
    assert first.poll() is None, "the first run ended before the lock could be tested"
    second = runner.invoke(app, ["augment", str(world.data), "--out", str(out), *args])
    assert second.exit_code == 2 and "another cxrseg command" in second.output, second.output
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL  # killed in the middle, not finished
    rerun = _in_process_one_thread(["augment", world.data, "--out", out, *args])
    assert rerun.exit_code == 0, rerun.output
    assert straight.wait() == 0, straight.communicate()
    got = snapshot(out / "images", out / "masks")
    want = snapshot(reference / "images", reference / "masks")
    assert len(want) == 150 * 6
    assert {p.relative_to(out): h for p, h in got.items()} == {
        p.relative_to(reference): h for p, h in want.items()
    }


# --- a full disk (a small tmpfs; needs root) ----------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` up with one file; return it (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for chunk in (1 << 16, 1):  # big writes, then the last partial block
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


FULL_DISK_COMMANDS = {
    "train": lambda w, d: ["train", w.data, "--out", d / "run", "--config",
                           _slow_yaml(w.root.parent, 1), "-q"],
    "augment": lambda w, d: ["augment", w.data, "--out", d / "aug", "-n", "3", "--size", "32",
                             "--random-distortion", "4", "4", "2"],
    "predict": lambda w, d: ["predict", w.model, w.images, "--out", d / "pred", "--quiet"],
    "phantom": lambda w, d: ["phantom", "--out", d / "ph", "-n", "2", "-s", "32"],
    "inspect": lambda w, d: ["inspect", w.data, "--json", d / "report.json"],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(FULL_DISK_COMMANDS))
def test_a_full_disk_is_one_message_and_no_traceback(
    command: str, world: World, small_disk: Path, crash_dir: Path
) -> None:
    args = FULL_DISK_COMMANDS[command](world, small_disk)
    filler = fill(small_disk)
    before = snapshot(world.root)
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code in (1, 2), result.output
    assert "no space left" in result.output.lower(), result.output
    assert "Traceback" not in result.output and not list(crash_dir.iterdir())
    assert snapshot(world.root) == before
    assert {p.name for p in small_disk.iterdir()} <= {
        "filler",
        args[args.index("--out") + 1].name if "--out" in args else "report.json",
    }
    filler.unlink()


def test_a_disk_that_fills_during_training_keeps_the_previous_checkpoints(
    world: World, small_disk: Path
) -> None:
    from cxrseg.errors import InputError
    from cxrseg.training import TrainConfig, train
    from cxrseg.training.checkpoint import load_checkpoint

    config = TrainConfig.from_yaml(_tiny_yaml(world.root.parent, 3))
    out, filled = small_disk / "run", []

    def on_event(event: dict[str, object]) -> None:
        if event["event"] == "epoch" and event["epoch"] == 1:
            filled.append(fill(small_disk))

    with pytest.raises(InputError, match="no space left"):
        train(world.data, out, config, on_event=on_event)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["best", "last"]
    _, meta = load_checkpoint(out / "last")
    assert meta["epoch"] == 1
    assert load_checkpoint(out / "best")[1]["epoch"] == 1
    filled[0].unlink()  # free the space: the run resumes where it stopped
    result = train(world.data, out, overrides={}, resume=True)
    assert result.epoch == 3
