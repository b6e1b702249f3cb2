"""Export a trained model to ONNX or TorchScript, checked against PyTorch.

:func:`export_model` loads a run's best checkpoint (or any checkpoint), exports the network
(``(N, 1, S, S)`` normalised images -> ``(N, C, S, S)`` logits; resizing, normalisation and
post-processing stay outside, as :class:`cxrseg.inference.Predictor` does them), runs the
exported model on a random batch and compares it with PyTorch's output; only a model that
agrees within tolerance is written.

- ONNX: the legacy TorchScript-based exporter (``dynamo=False``; the dynamo exporter needs
  ``onnxscript``), opset 17 by default, dynamic batch, height and width axes. Height and width
  must be multiples of ``2 ** (depth - 1)`` (the padding of other sizes is fixed at export);
  the predictor always feeds the training size. The metadata JSON is embedded in the model's
  ``metadata_props`` under ``"cxrseg"``, and written next to it as ``<name>.json``.
  ``cxrseg predict model.onnx`` then runs it through ONNX Runtime without torch.
- TorchScript: ``torch.jit.trace`` saved with ``torch.jit.save``, the metadata embedded as the
  extra file ``cxrseg.json`` and written next to it. A TorchScript archive holds code and
  tensors, not pickled Python objects, but ``torch.jit.load`` still runs the code it holds:
  load only archives you trust.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cxrseg._version import __version__
from cxrseg.errors import CxrsegError, InputError
from cxrseg.inference.model_file import (
    METADATA_KEY,
    import_onnxruntime,
    locate_model,
    model_info,
)
from cxrseg.io import atomic_write
from cxrseg.training.checkpoint import load_checkpoint

__all__ = [
    "EXPORT_FORMATS",
    "ExportCheckError",
    "default_export_path",
    "export_model",
    "onnx_bytes",
]

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx", "torchscript")
_SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
_STEM = {"onnx": "model", "torchscript": "model_torchscript"}
_DROPPED = ("weights", "token")


class ExportCheckError(CxrsegError):
    """The exported model does not reproduce PyTorch's output; nothing was written."""


def default_export_path(source: str | Path, format: str) -> Path:
    """``<folder>/export/model.onnx`` (or ``model_torchscript.pt``) for a run or checkpoint.

    ``<folder>`` is ``source`` when it is a folder, else the folder of the file.
    """
    source = Path(source)
    folder = source if source.is_dir() else source.parent
    return folder / "export" / f"{_STEM[_check_format(format)]}{_SUFFIX[format]}"


def _check_format(format: str) -> str:
    if format not in EXPORT_FORMATS:
        raise InputError(f"export format {format!r} is not one of {EXPORT_FORMATS}",
                         hint="use --format onnx or --format torchscript")  # fmt: skip
    return format


def export_model(
    run_or_checkpoint: str | Path,
    out_path: str | Path,
    format: str = "onnx",
    *,
    check: bool = True,
    opset: int = 17,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    seed: int = 0,
) -> Path:
    """Export the model of a run or checkpoint; return the path written.

    Args:
        run_or_checkpoint: A run folder (its ``best/`` is used), a checkpoint folder, or a
            checkpoint's ``.json``/``.safetensors``.
        out_path: The file to write (``.onnx`` or ``.pt``); ``<stem>.json`` next to it
            receives the metadata.
        format: ``"onnx"`` or ``"torchscript"``.
        check: Compare the exported model with PyTorch on a random batch of two images.
        opset: ONNX opset version (17 or later).
        atol: Absolute tolerance of the check on the logits.
        rtol: Relative tolerance of the check.
        seed: Seed of the random check batch.

    Raises:
        InputError: Bad format, opset or paths, or a checkpoint that cannot be loaded.
        ExportCheckError: The exported model's logits differ from PyTorch's beyond
            tolerance (the message gives the largest difference); nothing is written.
    """
    import torch

    _check_format(format)
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 17:
        raise InputError(f"opset {opset!r} is too old; use 17 or later", hint="use --opset 17")
    if format == "onnx" and opset > max_opset():
        raise InputError(
            f"opset {opset} is newer than the installed exporter writes (torch "
            f"{torch.__version__}: opsets 17 to {max_opset()})",
            hint=f"use --opset {max_opset()} or lower, or upgrade torch.",
        )
    model_file = locate_model(run_or_checkpoint)
    if model_file.kind != "checkpoint":
        raise InputError("is already an exported model", path=model_file.path,
                         hint="export from the run folder or its checkpoint")  # fmt: skip
    info = model_info(model_file)
    out_path = Path(out_path)
    sidecar = out_path.with_suffix(".json")
    _check_targets(out_path, sidecar, model_file.path)
    model, _ = load_checkpoint(model_file.path)
    model.eval()
    size = info.input_size
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(1, 1, size, size, generator=generator)
    probe = torch.randn(2, 1, size, size, generator=generator)
    with torch.inference_mode():
        expected = model(probe).numpy()

    metadata = {k: v for k, v in model_file.metadata.items() if k not in _DROPPED}
    metadata["cxrseg_version"] = __version__
    metadata["export"] = {"format": format, "file": out_path.name,
                          "source": str(model_file.path), "input": "image", "output": "logits",
                          "torch_version": torch.__version__}  # fmt: skip
    if format == "onnx":
        metadata["export"]["opset"] = opset
        payload = onnx_bytes(model, example, opset)
        actual = _run_onnx(payload, probe.numpy()) if check else None
    else:
        scripted = _trace(model, example)
        with torch.inference_mode():
            actual = scripted(probe).numpy() if check else None
    if actual is not None:
        diff = float(np.max(np.abs(actual - expected)))
        if not np.allclose(actual, expected, rtol=rtol, atol=atol):
            raise ExportCheckError(
                f"the {format} export differs from PyTorch by up to {diff:.3g} (tolerance "
                f"atol={atol:g}, rtol={rtol:g}); nothing was written. Fix: report this with "
                f"the torch ({torch.__version__}) and model versions, or try another opset."
            )
        metadata["export"]["max_abs_diff"] = diff
        logger.info("%s export matches PyTorch (max abs diff %.3g)", format, diff)
    text = json.dumps(metadata, indent=2)
    with atomic_write(out_path) as tmp:
        if format == "onnx":
            tmp.write_bytes(_with_metadata(payload, text))
        else:
            with _quiet_export():
                torch.jit.save(scripted, str(tmp), _extra_files={"cxrseg.json": text})
    with atomic_write(sidecar) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return out_path


def _check_targets(out_path: Path, sidecar: Path, source: Path) -> None:
    if out_path.suffix.lower() not in (".onnx", ".pt", ".ts"):
        raise InputError("the export file must end in .onnx (ONNX) or .pt (TorchScript)",
                         path=out_path)  # fmt: skip
    if sidecar.resolve() == source.resolve() or (
        sidecar.is_file() and "export" not in json.loads(sidecar.read_text(encoding="utf-8"))
    ):
        raise InputError(
            f"writing the metadata to {sidecar.name} would replace a checkpoint's JSON",
            path=out_path,
            hint="export into another folder or under another name (--out)",
        )


@contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the legacy exporter's deprecation notice and the tracer's shape warnings."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def max_opset() -> int:
    """Newest ONNX opset the installed torch exporter (the TorchScript-based one) writes."""
    from torch.onnx import _constants  # lazy: start-up time

    names = ("ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", "ONNX_MAX_OPSET")
    return int(next((getattr(_constants, n) for n in names if hasattr(_constants, n)), 17))


def onnx_bytes(model: Any, example: Any, opset: int = 17, *, dynamic_size: bool = True) -> bytes:
    """Serialise a network to ONNX in memory (``image`` in, ``logits`` out), nothing written.

    Args:
        model: The network in eval mode.
        example: A ``(1, 1, S, S)`` tensor that traces it.
        opset: ONNX opset version.
        dynamic_size: Make height and width dynamic too (the batch axis always is); a fixed
            size lets ONNX Runtime plan every shape ahead.
    """
    import io

    import torch

    buffer = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}
    with _quiet_export():
        torch.onnx.export(
            model,
            (example,),
            buffer,  # type: ignore[arg-type]  # a file-like object works, the stubs say path
            dynamo=False,
            opset_version=opset,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": axes, "logits": axes},
        )
    return buffer.getvalue()


def _with_metadata(payload: bytes, text: str) -> bytes:
    """The ONNX model with the metadata JSON in its ``metadata_props``."""
    try:
        import onnx
    except ImportError as exc:
        raise InputError("ONNX export needs the onnx package, which is not installed",
                         hint="onnx is a dependency of cxrseg: reinstall it (pip install cxrseg) "
                         "or pip install onnx") from exc  # fmt: skip
    proto = onnx.load_from_string(payload)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {METADATA_KEY: text})
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _run_onnx(payload: bytes, batch: np.ndarray) -> np.ndarray:
    ort = import_onnxruntime()
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"image": batch})[0])


def _trace(model: Any, example: Any) -> Any:
    import torch

    with _quiet_export(), torch.no_grad():
        return torch.jit.trace(model, example, check_trace=False)
