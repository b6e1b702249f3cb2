"""What the benchmarks print about the machine: CPU model, its bfloat16 flags, torch's view."""

from __future__ import annotations

import platform
from pathlib import Path

BF16_FLAGS = ("amx_bf16", "avx512_bf16", "amx_tile", "avx512_fp16")


def cpu_header() -> str:
    """One line: the CPU's model name and bfloat16 flags (``/proc/cpuinfo``), torch's CPU
    capability and the precision cxrseg picks on this CPU, with the reason."""
    import torch

    from cxrseg.training.precision import autocast_dtype

    name, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    native = [flag for flag in BF16_FLAGS if flag in flags]
    return (f"CPU: {name}; flags: {' '.join(native) or 'no bf16 flags'}; torch "
            f"{torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}; "
            f"cxrseg picks {autocast_dtype('cpu')[1]}")  # fmt: skip
