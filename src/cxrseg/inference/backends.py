"""Runtimes that turn a normalised batch into logits: PyTorch or ONNX Runtime.

Both take ``(N, 1, S, S)`` float32 NumPy batches and return ``(N, C, S, S)`` float32 NumPy
logits, so everything around them (resizing, flips, post-processing) is shared.
:class:`OnnxBackend` never imports torch.

A checkpoint predicted on the CPU (``runtime="auto"``) runs where that CPU is fastest:

- on CPUs with native bfloat16 (Intel AMX or AVX512-BF16, AMD Zen 4 and later; see
  :mod:`cxrseg.training.precision`), in PyTorch with bfloat16 autocast and channels-last
  tensors, about 2x faster than ONNX Runtime in float32 there;
- elsewhere in ONNX Runtime (float32) when it is installed, 2 to 3 times faster than PyTorch
  in float32: :func:`onnx_from_torch` exports the network into memory (nothing is written),
  checks the session's logits against PyTorch's once, and falls back to PyTorch with a warning
  if they differ.

``docs/benchmarks.md`` has the figures. :class:`TorchBackend` folds batch norm into the
convolutions. Every backend says how it computes (``runtime``, ``precision``) and why it was
chosen (``reason``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cxrseg.errors import InputError
from cxrseg.inference.model_file import ModelFile, import_onnxruntime

__all__ = [
    "RUNTIMES",
    "Backend",
    "OnnxBackend",
    "TorchBackend",
    "choose_cpu_runtime",
    "onnx_from_torch",
    "open_backend",
]

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
RUNTIMES = ("auto", "torch", "onnxruntime")
"""``auto``: for checkpoints on the CPU, PyTorch in bfloat16 where the CPU has it natively,
else ONNX Runtime when it is installed, else PyTorch."""
_ORT_OPTIONS = ("threads", "spinning")


class Backend(Protocol):
    """Runs the network on a batch."""

    device: str
    runtime: str
    precision: str
    reason: str

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
        amp: Autocast where the device computes it natively: bfloat16 on CUDA (float16
            where bfloat16 is missing) and on CPUs with native bfloat16 (see
            :func:`cxrseg.training.precision.autocast_dtype`); float32 elsewhere.
        channels_last: Use the channels-last memory format (faster convolutions on most
            hardware).
        fold_norm: Run a copy of the model with each batch norm folded into the convolution
            before it (:func:`cxrseg.models.fusion.fold_batch_norm`; the caller's model is left
            as it is).
    """

    def __init__(
        self,
        model: Any,
        device: str = "auto",
        *,
        amp: bool = True,
        channels_last: bool = True,
        fold_norm: bool = True,
    ):
        # lazy: start-up time (torch and the precision query; the ONNX path runs without them)
        import torch

        from cxrseg.training.precision import autocast_dtype, precision_name

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
        self.runtime = "torch"
        self.channels_last = channels_last
        if fold_norm:
            # lazy: start-up time (models imports torch; the ONNX path runs without it)
            from cxrseg.models.fusion import fold_batch_norm

            model = fold_batch_norm(model)
        self.model = model.to(self.torch_device).eval()
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.amp_dtype, why = autocast_dtype(self.torch_device, amp)
        self.precision = precision_name(self.amp_dtype)
        self.reason = why

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
        # NCHW for NumPy: channels-last logits would make every per-channel step 10x slower
        return logits.float().contiguous().cpu().numpy()


class OnnxBackend:
    """An ONNX model in an ONNX Runtime session (NumPy only, no torch).

    Args:
        model: The ``.onnx`` file, or the serialised model itself (bytes).
        device: ``"auto"`` (CUDA execution provider when onnxruntime has one), ``"cpu"`` or
            ``"cuda"``.
        threads: Intra-op threads; ``None`` lets ONNX Runtime pick (one per physical core).
        spinning: Let idle worker threads spin between operators. Off by default: on a
            machine shared with other jobs, spinning burns CPU time that the others need
            without making prediction faster (measured in ``docs/benchmarks.md``).
    """

    def __init__(
        self,
        model: str | Path | bytes,
        device: str = "auto",
        *,
        threads: int | None = None,
        spinning: bool = False,
    ):
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
        options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spinning)))
        source = model if isinstance(model, bytes) else str(model)
        where = None if isinstance(model, bytes) else model
        try:
            self.session = ort.InferenceSession(
                source, options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InputError(f"cannot open the ONNX model ({exc})", path=where) from exc
        self.device = "cuda" if use_cuda else "cpu"
        self.runtime = "onnxruntime"
        self.precision = "float32"
        self.reason = "ONNX Runtime float32: an exported .onnx model"
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


def open_backend(
    model: ModelFile, device: str = "auto", runtime: str = "auto", **options: Any
) -> Backend:
    """The backend for a located model: ONNX Runtime for ``.onnx``; for checkpoints see
    :func:`choose_cpu_runtime` on the CPU, PyTorch on CUDA.

    Args:
        model: From :func:`cxrseg.inference.model_file.locate_model`.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` (or ``"cuda:N"`` for PyTorch).
        runtime: One of :data:`RUNTIMES` (checkpoints only; an ``.onnx`` model always runs
            in ONNX Runtime).
        options: Passed to the backend (``amp``, ``channels_last``, ``fold_norm`` /
            ``threads``, ``spinning``).

    Raises:
        InputError: The model cannot be loaded, the device is not available, or
            ``runtime="onnxruntime"`` without onnxruntime or on CUDA.
    """
    base = _check_device(device)
    if runtime not in RUNTIMES:
        raise InputError(f"runtime {runtime!r} is not one of {RUNTIMES}",
                         hint="use --runtime auto, torch or onnxruntime")  # fmt: skip
    ort_options = {k: v for k, v in options.items() if k in _ORT_OPTIONS}
    torch_options = {k: v for k, v in options.items() if k not in _ORT_OPTIONS}
    if model.kind == "onnx":
        return OnnxBackend(model.path, device, **ort_options)
    # lazy: start-up time (torch only for checkpoints, not for .onnx models)
    import torch

    from cxrseg.training.checkpoint import load_checkpoint

    network, _ = load_checkpoint(model.path)
    cpu = base == "cpu" or (base == "auto" and not torch.cuda.is_available())
    if runtime == "onnxruntime" and not cpu:
        raise InputError(
            f"--runtime onnxruntime runs checkpoints on the CPU, not on {device}",
            hint="use --device cpu, or export the model for onnxruntime-gpu",
        )
    reason = "--runtime torch" if runtime == "torch" else "on the GPU, PyTorch"
    if cpu and runtime != "torch":
        runtime, reason = choose_cpu_runtime(runtime, bool(options.get("amp", True)))
    if runtime == "onnxruntime":
        import_onnxruntime()  # says how to install it
        size = int(model.metadata["input_size"])
        strict = reason == "--runtime onnxruntime"
        backend = onnx_from_torch(network, size, strict=strict, **ort_options)
        if backend is not None:
            backend.reason = reason
            return backend
        reason = "the ONNX export disagreed with PyTorch"
    torch_backend = TorchBackend(network, device, **torch_options)
    torch_backend.reason = f"{reason}; {torch_backend.reason}"
    return torch_backend


def choose_cpu_runtime(runtime: str, amp: bool = True) -> tuple[str, str]:
    """The runtime of a checkpoint on the CPU, and why.

    ``"auto"`` picks PyTorch where the CPU computes bfloat16 natively (bfloat16 autocast,
    channels-last: about 2x faster than ONNX Runtime's float32 there, ``docs/benchmarks.md``),
    else ONNX Runtime when it is installed (2-3x faster than PyTorch in float32), else PyTorch.
    """
    if runtime != "auto":
        return runtime, f"--runtime {runtime}"
    # lazy: start-up time (the precision query imports torch)
    from cxrseg.training.precision import autocast_dtype

    dtype, why = autocast_dtype("cpu", amp)
    if dtype is not None:
        return "torch", "auto: PyTorch in bfloat16 beats ONNX Runtime in float32 on this CPU"
    if _has_onnxruntime():
        return "onnxruntime", f"auto: {why}; ONNX Runtime beats PyTorch in float32"
    return "torch", "auto: onnxruntime is not installed"


def _has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def onnx_from_torch(
    network: Any,
    size: int,
    *,
    threads: int | None = None,
    spinning: bool = False,
    strict: bool = False,
    atol: float = 1e-3,
    rtol: float = 1e-3,
    seed: int = 0,
) -> OnnxBackend | None:
    """Run a PyTorch network in ONNX Runtime on the CPU, exported in memory and checked.

    The network is exported (``torch.onnx.export(..., dynamo=False)``, fixed ``size`` x
    ``size`` input, dynamic batch) into a bytes buffer, never to a file, and its logits on one
    random image are compared with PyTorch's.

    Args:
        network: ``(N, 1, size, size) -> (N, C, size, size)`` logits.
        size: The checkpoint's ``input_size``.
        threads: Intra-op threads; ``None`` uses as many as PyTorch (``torch.get_num_threads``).
        spinning: As in :class:`OnnxBackend`.
        strict: Raise instead of returning ``None`` when the export fails or disagrees.
        atol: Absolute tolerance of the check on the logits.
        rtol: Relative tolerance of the check.
        seed: Seed of the random check image.

    Returns:
        The backend, or ``None`` (with a warning logged) when the export failed or its
        logits differ from PyTorch's beyond tolerance; the caller then keeps PyTorch.

    Raises:
        InputError: Only with ``strict``: the export failed or disagrees.
    """
    # lazy: start-up time (torch and the ONNX exporter only when a checkpoint runs in ONNX Runtime)
    import torch

    from cxrseg.inference.export import onnx_bytes

    network = network.eval()
    generator = torch.Generator().manual_seed(seed)
    probe = torch.randn(1, 1, size, size, generator=generator)
    try:
        payload = onnx_bytes(network, probe, dynamic_size=False)
        threads = torch.get_num_threads() if threads is None else threads
        backend = OnnxBackend(payload, "cpu", threads=threads, spinning=spinning)
        with torch.inference_mode():
            expected = network(probe).numpy()
        actual = backend(probe.numpy())
        diff = float(np.max(np.abs(actual - expected)))
        agrees = actual.shape == expected.shape and np.allclose(actual, expected, rtol, atol)
    except Exception as exc:  # the exporter and onnxruntime raise many types
        reason = f"the in-memory ONNX export failed ({type(exc).__name__}: {exc})"
    else:
        if agrees:
            logger.debug("running in ONNX Runtime (max abs diff %.3g to PyTorch)", diff)
            return backend
        reason = (
            f"ONNX Runtime's logits differ from PyTorch's by up to {diff:.3g} "
            f"(tolerance atol={atol:g}, rtol={rtol:g})"
        )
    if strict:
        raise InputError(reason, hint="use --runtime torch")
    logger.warning("%s; predicting with PyTorch instead", reason)
    return None
