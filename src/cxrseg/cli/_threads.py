"""``--threads N``: one option that caps every CPU thread pool a command uses.

PyTorch, ONNX Runtime (which takes PyTorch's count for checkpoints), OpenCV, Numba and the
BLAS libraries each start their own pool, by default one thread per core. On a shared machine
that oversubscribes the cores, so ``--threads`` sets them all: the environment variables the
libraries read when they load (the commands import them lazily, after this runs) and the
setters of those already loaded. The CLI owns the process, so this lives here and not in the
library, which never changes global state.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

#: Read by OpenMP (PyTorch), MKL, OpenBLAS and Numba when they load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS")  # fmt: skip

Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        metavar="N",
        help="CPU threads of PyTorch, ONNX Runtime, OpenCV and Numba.",
        show_default="one per core",
    ),
]


def use_threads(threads: int | None) -> None:
    """Cap the thread pools of PyTorch, OpenCV, Numba and BLAS at ``threads`` (None: leave)."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"threads={threads} must be at least 1")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if "numba" in sys.modules:  # else NUMBA_NUM_THREADS applies when it loads
        numba = sys.modules["numba"]
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    # lazy: start-up time (every command that takes --threads loads OpenCV anyway)
    import cv2

    cv2.setNumThreads(threads)
    if "torch" in sys.modules:  # last: Numba's OpenMP pool, started above, resets OpenMP's
        sys.modules["torch"].set_num_threads(threads)  # count, which PyTorch shares
