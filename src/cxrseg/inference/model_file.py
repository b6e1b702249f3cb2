"""Find the model behind a path and read what it says about itself, without importing torch.

``cxrseg predict MODEL`` accepts:

- a run folder (``best/model.json`` inside it is used);
- a checkpoint folder (``model.json`` + ``model.safetensors``), or its ``.json`` or
  ``.safetensors`` file;
- an ``.onnx`` file written by :func:`cxrseg.inference.export.export_model`, whose metadata is
  embedded in the ONNX ``metadata_props`` (key ``"cxrseg"``) and also written next to it as
  ``<name>.json``; the embedded copy wins, the file next to it serves ONNX files without one;
- a folder holding exactly one such ``.onnx`` file.

:func:`model_info` checks the metadata once (labels, mode, input size, resize, normalisation,
post-processing); :func:`check_version` refuses a model in a newer format or from a newer
major cxrseg version and warns about a newer minor one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrseg.errors import InputError
from cxrseg.inference.ensemble import is_crossval
from cxrseg.inference.preprocess import NORMALIZATIONS, RESIZE_MODES
from cxrseg.io import check_name, parse_json, read_json
from cxrseg.limits import MAX_LABELS, MAX_SIZE
from cxrseg.versions import check_made_by

__all__ = [
    "METADATA_KEY",
    "SUPPORTED_FORMAT_VERSION",
    "ModelFile",
    "ModelInfo",
    "check_version",
    "locate_model",
    "model_info",
]

SUPPORTED_FORMAT_VERSION = 1
"""Newest checkpoint layout this cxrseg reads; equal to
:data:`cxrseg.training.checkpoint.FORMAT_VERSION` (a test pins it), kept here so that the ONNX
path does not import torch."""

METADATA_KEY = "cxrseg"
"""Key of the metadata JSON in an exported ONNX model's ``metadata_props``."""

_MODEL_HINT = (
    "give a run folder (with best/), a checkpoint folder or its .json/.safetensors, or an "
    ".onnx file made by `cxrseg export`"
)


@dataclass(frozen=True)
class ModelFile:
    """A located model.

    Attributes:
        kind: ``"checkpoint"`` or ``"onnx"``.
        path: The checkpoint's ``.json``, or the ``.onnx`` file.
        metadata: The metadata dict (as :func:`cxrseg.training.checkpoint.save_checkpoint`
            wrote it; exports add an ``"export"`` entry).
    """

    kind: str
    path: Path
    metadata: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ModelInfo:
    """What prediction needs to know about a model, checked.

    Attributes:
        labels: Structure names, one per output mask, background excluded.
        mode: ``"softmax"`` (output channel 0 is background) or ``"sigmoid"``.
        input_size: Side of the square network input.
        resize: ``"squash"`` or ``"letterbox"``.
        normalization: ``"zscore"`` or ``"unit"``.
        postprocessing: Post-processing per structure as stored (``PostprocessConfig`` dicts).
        quality: Plausible ranges learned from the training data
            (:func:`cxrseg.quality.learn_ranges`), or None for a model saved without them.
            Not compared: the folds of a cross-validation ensemble learned theirs from
            different cases, and the ensemble uses the ranges its ``crossval.json`` learned
            from all of them.
    """

    labels: tuple[str, ...]
    mode: str
    input_size: int
    resize: str
    normalization: str
    postprocessing: dict[str, dict[str, Any]] = field(default_factory=dict)
    quality: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def channels(self) -> tuple[str, ...]:
        """Names of the network's output channels (``"background"`` first in softmax mode)."""
        return ("background", *self.labels) if self.mode == "softmax" else self.labels


def check_version(metadata: Mapping[str, Any], path: Path) -> None:
    """Refuse a model in a newer format or from a newer major cxrseg; warn for a newer minor.

    The rule of :func:`cxrseg.versions.check_made_by`, shared with checkpoint loading.

    Raises:
        InputError: ``format_version`` is missing or newer, or ``cxrseg_version``'s major
            version is newer.
    """
    check_made_by(metadata, path, SUPPORTED_FORMAT_VERSION, what="the model")


def _read_json(path: Path) -> dict[str, Any]:
    return read_json(path, what="the model JSON", hint=_MODEL_HINT)


def _onnx_metadata(path: Path) -> dict[str, Any]:
    """Metadata embedded in the ONNX file, else from ``<name>.json`` next to it."""
    ort = import_onnxruntime()
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        embedded = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise InputError(f"not a readable ONNX model ({exc})", path=path) from exc
    if embedded:
        try:
            data = parse_json(embedded)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"its embedded cxrseg metadata is not JSON ({exc})", path=path
            ) from exc
        if isinstance(data, dict):
            return data
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise InputError(
            f"has no cxrseg metadata (neither in its metadata_props nor in {sidecar.name})",
            path=path,
            hint="export the model with `cxrseg export`, which records labels and input size",
        )
    return _read_json(sidecar)


def import_onnxruntime() -> Any:
    """Import onnxruntime, or say how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise InputError(
            "running an ONNX model needs onnxruntime, which is not installed",
            hint="onnxruntime is a dependency of cxrseg: reinstall it (pip install cxrseg) or "
            "pip install onnxruntime",
        ) from exc
    return onnxruntime


def locate_model(path: str | Path) -> ModelFile:
    """Find the model file behind ``path`` and read its metadata (version checked).

    Raises:
        InputError: Nothing usable at ``path``, unreadable metadata, or a newer cxrseg's model.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("model not found", path=path, hint=_MODEL_HINT)
    if path.is_dir():
        path = _model_in_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        metadata, kind = _onnx_metadata(path), "onnx"
    elif suffix in (".json", ".safetensors"):
        path = path.with_suffix(".json")
        metadata, kind = _read_json(path), "checkpoint"
        if "export" in metadata:
            raise InputError(
                "is the metadata of an exported model, not a checkpoint",
                path=path,
                hint=f"give the exported file itself ({metadata['export'].get('file', '?')})",
            )
    else:
        raise InputError(f"{suffix or 'this file'} is not a model cxrseg reads", path=path,
                         hint=_MODEL_HINT)  # fmt: skip
    check_version(metadata, path)
    return ModelFile(kind, path, metadata)


def _model_in_folder(folder: Path) -> Path:
    for candidate in (folder / "best" / "model.json", folder / "model.json"):
        if candidate.is_file() and "export" not in _read_json(candidate):
            return candidate
    if is_crossval(folder):
        raise InputError(
            "is a cross-validation folder: an ensemble of fold models, not one model",
            path=folder,
            hint=f"give one fold ({folder / 'fold_0'}), or predict with the whole folder",
        )
    onnx_files = sorted(folder.glob("*.onnx"))
    if len(onnx_files) == 1:
        return onnx_files[0]
    found = "several .onnx files" if onnx_files else "no best/model.json, model.json or .onnx"
    raise InputError(f"holds {found}", path=folder, hint=_MODEL_HINT)


def model_info(model: ModelFile) -> ModelInfo:
    """Check the metadata that prediction needs.

    Raises:
        InputError: A missing or invalid entry (the message names it).
    """
    meta, path = model.metadata, model.path

    def bad(key: str, expected: str) -> InputError:
        return InputError(
            f"metadata entry {key!r} is {meta.get(key)!r}; expected {expected}",
            path=path,
            hint="re-save the checkpoint with cxrseg, or fix the entry in its JSON",
        )

    labels = meta.get("labels")
    if not isinstance(labels, list) or not 0 < len(labels) <= MAX_LABELS:
        raise bad("labels", f"a list of 1 to {MAX_LABELS} structure names")
    for label in labels:  # they become folder names under --out: untrusted until checked
        check_name(label, "label", path)
    if meta.get("mode") not in ("softmax", "sigmoid"):
        raise bad("mode", "'softmax' or 'sigmoid'")
    size = meta.get("input_size")
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= MAX_SIZE:
        raise bad("input_size", f"the square training size in pixels, 16 to {MAX_SIZE}")
    resize = meta.get("resize", "squash")
    if resize not in RESIZE_MODES:
        raise bad("resize", f"one of {RESIZE_MODES}")
    normalization = meta.get("normalization") or "zscore"
    if normalization not in NORMALIZATIONS:
        raise bad("normalization", f"one of {NORMALIZATIONS}")
    if meta.get("in_channels", 1) != 1:
        raise bad("in_channels", "1 (grayscale radiographs)")
    post = meta.get("postprocessing") or {}
    if not isinstance(post, dict) or not all(isinstance(v, dict) for v in post.values()):
        raise bad("postprocessing", "a mapping of structure name to settings")
    quality = meta.get("quality")
    if quality is not None and not isinstance(quality, dict):
        raise bad("quality", "the ranges cxrseg.quality.learn_ranges returns, or no entry")
    return ModelInfo(tuple(labels), str(meta["mode"]), size, str(resize), str(normalization),
                     dict(post), quality)  # fmt: skip
