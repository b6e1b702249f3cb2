"""The float precision a device computes in: bfloat16 autocast where the hardware has it natively.

One rule serves training and prediction, governed by the same ``amp`` option (``--no-amp``):

- CUDA: bfloat16 where the GPU supports it, else float16 (training adds a gradient scaler).
- CPU: bfloat16 where the CPU computes it natively (Intel AMX or AVX512-BF16; AMD Zen 4 and
  later have AVX512-BF16), where oneDNN's bfloat16 convolutions run 2-3x faster than float32.
  Elsewhere float32: bfloat16 emulated on older vector units is slower than float32.

The CPU is asked through PyTorch's own queries (:func:`torch.cpu.get_capabilities`, then
oneDNN's bfloat16 check); any query that is missing or fails counts as "no", so an unknown CPU
keeps float32. Autocast keeps the weights, the loss and the optimiser in float32: only the
convolutions and matrix products run in bfloat16.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

__all__ = ["NATIVE_BF16_FLAGS", "autocast_dtype", "cpu_bf16_support", "precision_name"]

logger = logging.getLogger(__name__)

#: CPU features (names as :func:`torch.cpu.get_capabilities` spells them) that compute
#: bfloat16 natively.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def _cpu_capabilities() -> dict[str, Any]:
    """PyTorch's view of the CPU; empty when this torch cannot say."""
    try:
        return dict(torch.cpu.get_capabilities())
    except Exception as exc:  # an older torch or an unknown CPU: no native bf16 then
        logger.debug("torch.cpu.get_capabilities() failed: %s", exc)
        return {}


def _onednn_bf16() -> bool:
    """Whether oneDNN (mkldnn) is built in and runs bfloat16 kernels on this CPU."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except Exception as exc:
        logger.debug("oneDNN bfloat16 query failed: %s", exc)
        return False


def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU computes bfloat16 natively, and a one-line reason naming the evidence."""
    caps = _cpu_capabilities()
    name = str(caps.get("cpu_name") or "this CPU")
    flags = [flag for flag in NATIVE_BF16_FLAGS if caps.get(flag)]
    if not flags:
        return False, f"{name} has no native bfloat16 ({' or '.join(NATIVE_BF16_FLAGS)})"
    if not _onednn_bf16():
        return False, f"{name} has {'+'.join(flags)} but torch's oneDNN cannot use bfloat16"
    return True, f"{name} has native bfloat16 ({'+'.join(flags)})"


def autocast_dtype(device: torch.device | str, amp: bool = True) -> tuple[torch.dtype | None, str]:
    """The autocast dtype for ``device`` (``None``: plain float32) and why.

    Args:
        device: Where the model runs.
        amp: The ``amp`` option; ``False`` always gives float32.
    """
    device = torch.device(device)
    if not amp:
        return None, "float32: amp is off (--no-amp)"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "bfloat16 autocast: the GPU supports bfloat16"
        return torch.float16, "float16 autocast: the GPU has no bfloat16"
    if device.type == "cpu":
        native, why = cpu_bf16_support()
        if native:
            return torch.bfloat16, f"bfloat16 autocast: {why}"
        return None, f"float32: {why}"
    return None, f"float32 on {device.type}"


def precision_name(dtype: torch.dtype | None) -> str:
    """``"bfloat16"``, ``"float16"`` or ``"float32"`` (``None``) for logs and records."""
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")
