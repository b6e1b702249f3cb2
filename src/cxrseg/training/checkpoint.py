"""Self-describing checkpoints: safetensors weights plus JSON metadata, and resume state.

A checkpoint is two files in one folder, written atomically:

- ``<name>.safetensors``: the model's ``state_dict`` (CPU, contiguous; ``module.`` and
  ``_orig_mod.`` prefixes of DDP and ``torch.compile`` wrappers removed).
- ``<name>.json``: ``format_version``, ``cxrseg_version``, ``model`` (``{"name", "kwargs"}``
  for :func:`cxrseg.models.create_model`), ``labels`` (structure names, background excluded),
  ``mode`` (``"softmax"`` or ``"sigmoid"``), ``input_size``, ``normalization``, ``epoch``,
  ``metrics``, ``config`` and any further keys given.

The resume state (optimizer, scheduler, RNG states, epoch, extra values) is a second pair,
``resume.safetensors`` (every tensor) and ``resume.json`` (everything else, nested dicts and
lists kept as JSON with tensors replaced by their key path). Both pairs carry a random token in
both files, so a pair mixed from two saves is detected. Loading uses only ``json`` and
``safetensors``: nothing is ever unpickled, and files such as ``model.pt`` are never opened.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_tensors
from torch import nn

from cxrseg._version import __version__
from cxrseg.errors import InputError
from cxrseg.io import atomic_write, check_name, read_json, write_json
from cxrseg.io.jsonfile import to_jsonable
from cxrseg.models import MODELS, create_model, model_spec
from cxrseg.training.config import MAX_LABELS, MODEL_OPTIONS
from cxrseg.versions import check_made_by

__all__ = [
    "FORMAT_VERSION",
    "ResumeState",
    "load_checkpoint",
    "load_resume_state",
    "save_checkpoint",
    "save_resume_state",
    "unwrap_model",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the checkpoint layout; loading refuses checkpoints of a newer one."""

RESUME_NAME = "resume"
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the model inside DDP / DataParallel (``.module``) and ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
            model = model.module
            continue
        inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def _strip_prefixes(key: str) -> str:
    while key.startswith(_WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], token: str) -> None:
    # Serialised in memory and written by Python, so a full disk is an OSError that
    # atomic_write turns into "no space left" (safetensors' own writer raises a bare error).
    data = save_tensors(tensors, metadata={"token": token})
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def _read_json(path: Path) -> dict[str, Any]:
    return read_json(path, what="checkpoint JSON", hint="give the checkpoint folder")


def _read_tensors(path: Path, token: Any, device: str | torch.device) -> dict[str, torch.Tensor]:
    """Read every tensor of a safetensors file, checking it belongs to the JSON (same token)."""
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as reader:
            stored = (reader.metadata() or {}).get("token")
            tensors = {key: reader.get_tensor(key) for key in reader.keys()}  # noqa: SIM118
    except FileNotFoundError:
        raise InputError("file not found", path=path, hint="copy it next to its .json") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(
            f"not a readable safetensors file ({exc})",
            path=path,
            hint="checkpoints hold weights as safetensors; pickled files are never loaded",
        ) from exc
    if stored != token:
        raise InputError(
            "belongs to a different save than its .json (tokens differ)",
            path=path,
            hint="keep the .json and .safetensors of one save together",
        )
    return tensors


def _check_version(data: Mapping[str, Any], path: Path) -> None:
    """Newer format or major version: refused; newer minor: a warning (shared with predict)."""
    check_made_by(data, path, FORMAT_VERSION, what="the checkpoint")


def save_checkpoint(
    folder: str | Path, model: nn.Module, metadata: Mapping[str, Any], *, name: str = "model"
) -> Path:
    """Write ``<name>.safetensors`` and ``<name>.json`` into ``folder``; return the JSON's path.

    Args:
        folder: Output folder, created if needed. Existing files of the same name are
            replaced atomically.
        model: The model, possibly wrapped by DDP or ``torch.compile``.
        metadata: Must hold ``labels`` (structure names, background excluded) and ``mode``
            (``"softmax"``: the model has ``len(labels) + 1`` outputs; ``"sigmoid"``:
            ``len(labels)``). ``model`` (``{"name", "kwargs"}``) defaults to
            :func:`cxrseg.models.model_spec` of the model; ``input_size``, ``normalization``,
            ``epoch``, ``metrics`` and ``config`` default to empty values. Values must be
            JSON-serialisable (NumPy scalars, paths and dataclasses are converted).

    Raises:
        ValueError: ``labels`` or ``mode`` is missing or does not fit the model's outputs.
        TypeError: The model cannot be described for ``create_model`` and no ``model`` entry
            was given, or a value cannot be stored as JSON.
    """
    folder = Path(folder)
    inner = unwrap_model(model)
    spec = dict(metadata["model"]) if "model" in metadata else model_spec(inner)
    if spec.get("name") not in MODELS or not isinstance(spec.get("kwargs"), dict):
        raise ValueError(
            f"metadata['model'] must be {{'name': one of {sorted(MODELS)}, 'kwargs': {{}}}}"
        )
    labels, mode = metadata.get("labels"), metadata.get("mode")
    if not isinstance(labels, list | tuple) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"metadata['labels'] must be a list of structure names, got {labels!r}")
    if mode not in ("softmax", "sigmoid"):
        raise ValueError(f"metadata['mode'] must be 'softmax' or 'sigmoid', got {mode!r}")
    outputs = spec["kwargs"].get("num_classes")
    expected = len(labels) + (1 if mode == "softmax" else 0)
    if outputs is not None and outputs != expected:
        raise ValueError(
            f"a {mode} model for labels {list(labels)} needs num_classes={expected}, the model "
            f"has {outputs}; in softmax mode background is class 0 and not in labels"
        )

    token = uuid.uuid4().hex
    record: dict[str, Any] = {
        "input_size": None,
        "normalization": None,
        "epoch": None,
        "metrics": {},
        "config": {},
        **metadata,
        "format_version": FORMAT_VERSION,
        "cxrseg_version": __version__,
        "weights": f"{name}.safetensors",
        "token": token,
        "model": spec,
        "labels": list(labels),
    }
    json.dumps(record, default=to_jsonable)  # fail before writing anything
    tensors = {
        _strip_prefixes(key): value.detach().cpu().contiguous().clone()
        for key, value in inner.state_dict().items()
    }
    folder.mkdir(parents=True, exist_ok=True)
    _write_tensors(folder / record["weights"], tensors, token)
    json_path = folder / f"{name}.json"
    write_json(json_path, record)
    logger.debug("saved checkpoint %s (%d tensors)", json_path, len(tensors))
    return json_path


def _checkpoint_json(path: Path, name: str) -> Path:
    if path.is_dir():
        return path / f"{name}.json"
    if path.suffix in (".json", ".safetensors"):
        return path.with_suffix(".json")
    raise InputError(
        "is not a cxrseg checkpoint",
        path=path,
        hint="give the checkpoint folder, its .json or its .safetensors file",
    )


def load_checkpoint(
    path: str | Path, *, name: str = "model", map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint and load its weights; never unpickles anything.

    Args:
        path: The checkpoint folder (reads ``<name>.json``), or its ``.json`` or
            ``.safetensors`` file.
        name: File stem to read when ``path`` is a folder.
        map_location: Device for the weights and the model.

    Returns:
        The model in eval mode, and the metadata dict written by :func:`save_checkpoint`.

    Raises:
        InputError: A file is missing or unreadable, the checkpoint was made by a newer
            cxrseg, the model cannot be built, or the weights do not fit it.
    """
    json_path = _checkpoint_json(Path(path), name)
    metadata = _read_json(json_path)
    _check_version(metadata, json_path)
    spec = metadata.get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("kwargs"), dict):
        raise InputError("has no 'model' entry with 'name' and 'kwargs'", path=json_path)
    check_metadata(metadata, json_path)
    try:
        model = create_model(str(spec.get("name")), **spec["kwargs"])
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot build its model ({exc})", path=json_path) from exc
    weights = str(metadata.get("weights", ""))
    if not weights or Path(weights).name != weights:
        raise InputError(
            f"'weights' must name a file in its folder, got {weights!r}", path=json_path
        )
    weights_path = json_path.with_name(weights)
    tensors = _read_tensors(weights_path, metadata.get("token"), map_location)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise InputError(
            f"weights do not fit the model {spec.get('name')} {spec['kwargs']}: {exc}",
            path=weights_path,
        ) from exc
    return model.to(map_location).eval(), metadata


def check_metadata(metadata: Mapping[str, Any], path: Path) -> None:
    """Refuse metadata that could steer writes or allocations (the file may be tampered with).

    Labels become folder names, so each must be a plain name; the model's keyword arguments
    size its layers, so they must pass the training schema's bounds (depth 2..7, ...), with at
    most 4 input channels and :data:`MAX_LABELS` + 1 outputs.

    Raises:
        InputError: Naming the entry and its allowed values.
    """
    labels = metadata.get("labels")
    if not isinstance(labels, list) or not 0 < len(labels) <= MAX_LABELS:
        raise InputError(f"'labels' must list 1 to {MAX_LABELS} structure names", path=path)
    for label in labels:
        check_name(label, "label", path)
    spec = metadata.get("model") or {}
    name, kwargs = spec.get("name"), dict(spec.get("kwargs") or {})
    if name not in MODEL_OPTIONS:
        raise InputError(f"model {name!r} is not one of {sorted(MODEL_OPTIONS)}", path=path)
    for key, high in (("in_channels", 4), ("num_classes", MAX_LABELS + 1)):
        value = kwargs.pop(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise InputError(f"model {key}={value!r} must be a whole number 1..{high}", path=path)
    try:
        MODEL_OPTIONS[name](**kwargs)
    except InputError as exc:
        raise InputError(exc.reason, path=path, hint="use a checkpoint you trust.") from None


# --- resume state: nested containers as tagged JSON, tensors in safetensors -------------------


def _encode(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Return a JSON-able form of ``value``, moving tensors into ``tensors`` under key paths."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        key = path if path not in tensors else f"{path}#{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, f"{path}/{k}", tensors) for k, v in value.items()}
        return {
            "__items__": [
                [_encode(k, f"{path}/key{i}", tensors), _encode(v, f"{path}/{k}", tensors)]
                for i, (k, v) in enumerate(value.items())
            ]
        }
    raise TypeError(f"cannot store {path} ({type(value).__name__}) in the resume state")


def _decode(node: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        return tensors[node["__tensor__"]]
    if "__ndarray__" in node:
        return np.array(node["__ndarray__"], dtype=np.dtype(node["dtype"]))
    if "__tuple__" in node:
        return tuple(_decode(v, tensors) for v in node["__tuple__"])
    if "__items__" in node:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in node["__items__"]}
    return {k: _decode(v, tensors) for k, v in node.items()}


@dataclass
class ResumeState:
    """What :func:`load_resume_state` returns besides restoring optimizer and scheduler.

    Attributes:
        epoch: The epoch stored (typically the last finished one).
        rng_state: The RNG states as saved (tensors, NumPy bit-generator dicts, tuples kept).
        extra: Further values as saved (e.g. best metric, early-stopping counter).
    """

    epoch: int
    rng_state: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def save_resume_state(
    folder: str | Path,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    rng_state: Any = None,
    epoch: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``resume.safetensors`` and ``resume.json`` into ``folder``; return the JSON's path.

    Args:
        folder: Output folder, created if needed.
        optimizer: Its ``state_dict`` is stored.
        scheduler: A learning-rate scheduler (anything with ``state_dict``), or ``None``.
        rng_state: Nested dicts/lists/tuples of tensors, NumPy arrays and plain values, e.g.
            ``{"torch": torch.get_rng_state(), "numpy": rng.bit_generator.state,
            "python": random.getstate()}``.
        epoch: The epoch the state belongs to.
        extra: Further JSON-able values (tensors allowed) to restore.

    Raises:
        TypeError: A value is neither a tensor, an array, a container nor a plain value.
    """
    folder = Path(folder)
    tensors: dict[str, torch.Tensor] = {}
    state = {
        "optimizer": _encode(optimizer.state_dict(), "optimizer", tensors),
        "scheduler": None
        if scheduler is None
        else _encode(scheduler.state_dict(), "scheduler", tensors),
        "rng_state": _encode(rng_state, "rng_state", tensors),
        "extra": _encode(dict(extra or {}), "extra", tensors),
    }
    token = uuid.uuid4().hex
    record = {
        "format_version": FORMAT_VERSION,
        "cxrseg_version": __version__,
        "token": token,
        "epoch": int(epoch),
        "optimizer_class": type(optimizer).__name__,
        "scheduler_class": None if scheduler is None else type(scheduler).__name__,
        "state": state,
    }
    folder.mkdir(parents=True, exist_ok=True)
    _write_tensors(folder / f"{RESUME_NAME}.safetensors", tensors, token)
    json_path = folder / f"{RESUME_NAME}.json"
    write_json(json_path, record)
    return json_path


def load_resume_state(
    folder: str | Path,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    *,
    map_location: str | torch.device = "cpu",
) -> ResumeState:
    """Restore ``optimizer`` and ``scheduler`` in place from ``folder``; return the rest.

    Args:
        folder: The folder given to :func:`save_resume_state` (or its ``resume.json``).
        optimizer: Receives the stored state; must be of the same class as the saved one.
        scheduler: Receives the stored scheduler state, if one was saved.
        map_location: Device of the loaded tensors (the optimizer moves its state to its
            parameters' device anyway).

    Raises:
        InputError: A file is missing, unreadable, from a newer cxrseg or a different save,
            or the optimizer/scheduler class differs from the saved one.
    """
    folder = Path(folder)
    json_path = folder if folder.suffix == ".json" else folder / f"{RESUME_NAME}.json"
    record = _read_json(json_path)
    _check_version(record, json_path)
    tensors = _read_tensors(
        json_path.with_suffix(".safetensors"), record.get("token"), map_location
    )
    try:
        state = _decode(record["state"], tensors)
        if optimizer is not None:
            _check_class("optimizer", optimizer, record.get("optimizer_class"), json_path)
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            _check_class("scheduler", scheduler, record.get("scheduler_class"), json_path)
            scheduler.load_state_dict(state["scheduler"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"resume state does not fit ({exc!r})", path=json_path) from exc
    return ResumeState(
        epoch=int(record.get("epoch", 0)), rng_state=state["rng_state"], extra=state["extra"]
    )


def _check_class(what: str, obj: Any, saved: Any, path: Path) -> None:
    if type(obj).__name__ != saved:
        raise InputError(
            f"holds the state of a {saved} {what}, not of a {type(obj).__name__}",
            path=path,
            hint=f"resume with the same {what} as the original run",
        )
