"""Several processes (DDP through ``torchrun``) or one: the same training code runs in both.

``torchrun --nproc-per-node N -m cxrseg train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and
joins the process group (gloo on CPU, NCCL on CUDA). Without them it returns a single-process
:class:`DistInfo` and every helper here is a no-op, so the loop never branches on the mode.
Only the main process (rank 0) writes files and reports events.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "cleanup_distributed",
    "distributed_context",
    "init_distributed",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands among the processes of one run.

    Attributes:
        rank: Global rank (0 for a single process).
        world_size: Number of processes.
        local_rank: Rank on this machine; picks the GPU.
        enabled: Whether a process group is in use.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and reports progress."""
        return self.rank == 0


def init_distributed(device_type: str = "cpu") -> DistInfo:
    """Join the process group described by torchrun's environment variables, if any.

    Args:
        device_type: ``"cpu"`` uses the gloo backend, ``"cuda"`` uses NCCL and binds this
            process to GPU ``LOCAL_RANK``.

    Returns:
        This process's :class:`DistInfo`; a single-process one when ``WORLD_SIZE`` is unset
        or 1.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, True)
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    logger.info("joined %s process group: rank %d of %d", backend, rank, world_size)
    return DistInfo(rank, world_size, local_rank, True)


def cleanup_distributed(info: DistInfo) -> None:
    """Leave the process group joined by :func:`init_distributed`."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def distributed_context(device_type: str = "cpu") -> Iterator[DistInfo]:
    """Join the process group for the duration of a ``with`` block.

    Nested blocks share the group the outermost one joined, and only that one leaves it: a
    cross-validation keeps one group for all its folds (joining a second time in a process
    hangs under torchrun).
    """
    joined = not dist.is_initialized()
    info = init_distributed(device_type)
    try:
        yield info
    finally:
        if joined:
            cleanup_distributed(info)


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place) and return it."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(info: DistInfo) -> None:
    """Wait until every process gets here."""
    if info.enabled:
        dist.barrier()


def broadcast_object(value: Any, info: DistInfo) -> Any:
    """Rank 0's ``value`` on every process (a picklable object, sent once per run)."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
