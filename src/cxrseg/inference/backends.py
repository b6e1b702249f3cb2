"""Runtimes that turn a normalised batch into logits: PyTorch or ONNX Runtime.

Both take ``(N, 1, S, S)`` float32 NumPy batches and return ``(N, C, S, S)`` float32 NumPy
logits, so everything around them (resizing, flips, post-processing) is shared.
:class:`OnnxBackend` never imports torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cxrseg.errors import InputError
from cxrseg.inference.model_file import ModelFile, import_onnxruntime

__all__ = ["Backend", "OnnxBackend", "TorchBackend", "open_backend"]

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


class Backend(Protocol):
    """Runs the network on a batch."""

    device: str

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(N, 1, S, S) float32 normalised images -> (N, C, S, S) float32 logits."""
        ...


def _check_device(device: str) -> str:
    base = device.split(":", 1)[0]
    if base not in DEVICES or (":" in device and base != "cuda"):
        raise InputError(f"device {device!r} is not one of {DEVICES} (or cuda:N)",
                         hint="use --device auto, cpu or cuda")  # fmt: skip
    return base


class TorchBackend:
    """A PyTorch model in eval mode, under ``torch.inference_mode``.

    Args:
        model: The network (``(N, 1, H, W) -> (N, C, H, W)`` logits).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        amp: On CUDA, run in bfloat16 (float16 where bfloat16 is missing) autocast.
        channels_last: Use the channels-last memory format (faster convolutions on most
            hardware).
    """

    def __init__(
        self, model: Any, device: str = "auto", *, amp: bool = True, channels_last: bool = True
    ):
        import torch

        base = _check_device(device)
        if base == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif base == "cuda" and not torch.cuda.is_available():
            raise InputError(
                f"--device {device} was requested but torch finds no CUDA GPU "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda})",
                hint="use --device cpu, or install a CUDA build of torch on a machine with a GPU",
            )
        self.torch_device = torch.device(device)
        self.device = str(self.torch_device)
        self.channels_last = channels_last
        self.model = model.to(self.torch_device).eval()
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.amp_dtype = None
        if amp and self.torch_device.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
            self.amp_dtype = torch.bfloat16 if bf16 else torch.float16

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        inputs = inputs.to(self.torch_device, non_blocking=True)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.amp_dtype is not None:
                with torch.autocast(self.torch_device.type, dtype=self.amp_dtype):
                    logits = self.model(inputs)
            else:
                logits = self.model(inputs)
        return logits.float().cpu().numpy()


class OnnxBackend:
    """An ONNX model in an ONNX Runtime session (NumPy only, no torch).

    Args:
        path: The ``.onnx`` file.
        device: ``"auto"`` (CUDA execution provider when onnxruntime has one), ``"cpu"`` or
            ``"cuda"``.
        threads: Intra-op threads; ``None`` lets ONNX Runtime pick (one per physical core).
    """

    def __init__(self, path: str | Path, device: str = "auto", *, threads: int | None = None):
        ort = import_onnxruntime()
        base = _check_device(device)
        available = ort.get_available_providers()
        has_cuda = "CUDAExecutionProvider" in available
        if base == "cuda" and not has_cuda:
            raise InputError(
                f"--device {device} was requested but onnxruntime has no CUDA provider "
                f"(available: {', '.join(available)})",
                hint="use --device cpu, or pip install onnxruntime-gpu",
            )
        use_cuda = base == "cuda" or (base == "auto" and has_cuda)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else []
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InputError(f"cannot open the ONNX model ({exc})", path=path) from exc
        self.device = "cuda" if use_cuda else "cpu"
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    @property
    def output_channels(self) -> int | None:
        """Channels of the output, when the graph states it."""
        shape = self.session.get_outputs()[0].shape
        return shape[1] if len(shape) == 4 and isinstance(shape[1], int) else None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        feed = {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        (logits,) = self.session.run([self.output_name], feed)
        return np.asarray(logits, dtype=np.float32)


def open_backend(model: ModelFile, device: str = "auto", **options: Any) -> Backend:
    """The backend for a located model: PyTorch for checkpoints, ONNX Runtime for ``.onnx``.

    Args:
        model: From :func:`cxrseg.inference.model_file.locate_model`.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` (or ``"cuda:N"`` for PyTorch).
        options: Passed to the backend (``amp``, ``channels_last`` / ``threads``).

    Raises:
        InputError: The model cannot be loaded, or the device is not available.
    """
    _check_device(device)
    if model.kind == "onnx":
        return OnnxBackend(model.path, device, **options)
    from cxrseg.training.checkpoint import load_checkpoint

    network, _ = load_checkpoint(model.path)
    return TorchBackend(network, device, **options)
