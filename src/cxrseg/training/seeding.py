"""Seeds for everything random in a run, and the state a resume has to restore.

No global NumPy state is used anywhere: each purpose gets its own generator made from the run
seed and a few integers (epoch, sample index, ...), so a draw never depends on how many
workers or processes there are, nor on what ran before. Torch's global generator is seeded
once (it draws the initial weights and the dropout masks) and saved with the resume state.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

__all__ = [
    "get_rng_state",
    "numpy_generator",
    "seed_everything",
    "set_rng_state",
    "torch_generator",
]

logger = logging.getLogger(__name__)

#: Purposes of the generators made from the run seed; a new purpose gets a new number.
PURPOSES = {"weights": 0, "shuffle": 1, "augment": 2, "split": 3, "benchmark": 4}


def _entropy(seed: int, purpose: str, *keys: int) -> list[int]:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; use one of {sorted(PURPOSES)}.")
    return [int(seed), PURPOSES[purpose], *(int(k) for k in keys)]


def numpy_generator(seed: int, purpose: str, *keys: int) -> np.random.Generator:
    """A NumPy generator for one purpose, independent of every other one.

    Args:
        seed: The run seed.
        purpose: One of :data:`PURPOSES`.
        *keys: Further integers, e.g. ``epoch, index``.
    """
    return np.random.default_rng(np.random.SeedSequence(_entropy(seed, purpose, *keys)))


def torch_generator(seed: int, purpose: str, *keys: int) -> torch.Generator:
    """A CPU torch generator seeded like :func:`numpy_generator`."""
    state = np.random.SeedSequence(_entropy(seed, purpose, *keys)).generate_state(2, np.uint32)
    generator = torch.Generator()
    generator.manual_seed(int(state[0]) << 32 | int(state[1]))
    return generator


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed torch's global generators and optionally ask for deterministic algorithms.

    Args:
        seed: The run seed; torch's global generator (initial weights, dropout) gets
            ``seed``.
        deterministic: Call ``torch.use_deterministic_algorithms(True)`` and turn off the
            cuDNN benchmark, so that a run (and a resumed run) repeats bit for bit on CPU.
    """
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this before its first call to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(False)
    logger.debug("seeded torch with %d (deterministic=%s)", seed, deterministic)


def get_rng_state() -> dict[str, torch.Tensor]:
    """Torch's global generator states (CPU and every CUDA device) as uint8 tensors."""
    state = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            state[f"torch_cuda_{i}"] = cuda_state
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Restore what :func:`get_rng_state` returned (CUDA states only where CUDA exists)."""
    if "torch_cpu" in state:
        torch.set_rng_state(state["torch_cpu"].to(torch.uint8).cpu())
    if torch.cuda.is_available():
        for key, cuda_state in state.items():
            if key.startswith("torch_cuda_") and int(key[11:]) < torch.cuda.device_count():
                torch.cuda.set_rng_state(cuda_state.to(torch.uint8).cpu(), int(key[11:]))
