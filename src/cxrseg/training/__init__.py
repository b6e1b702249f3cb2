"""Training: configuration, seeding, the loop, checkpoints, distributed helpers, a whole run.

``from cxrseg.training import TrainConfig, train`` is the entry point::

    result = train("data/montgomery", "runs/mont256", TrainConfig(size=256))

Submodules: :mod:`~cxrseg.training.config` (one ``TrainConfig`` dataclass),
:mod:`~cxrseg.training.defaults` (options picked from the data),
:mod:`~cxrseg.training.seeding`, :mod:`~cxrseg.training.loop` (epoch functions),
:mod:`~cxrseg.training.run` (run folder, resume), :mod:`~cxrseg.training.checkpoint`,
:mod:`~cxrseg.training.distributed`, :mod:`~cxrseg.training.curves` and
:mod:`~cxrseg.training.quality_ranges` (plausible ranges for the quality flags). Names are imported
on first use, so importing a submodule does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cxrseg.training.checkpoint import load_checkpoint, save_checkpoint
    from cxrseg.training.config import TrainConfig
    from cxrseg.training.events import TrainEvent
    from cxrseg.training.loop import TrainingStopped
    from cxrseg.training.quality_ranges import add_quality_ranges, learn_quality_ranges
    from cxrseg.training.run import TrainResult, train

__all__ = [
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "TrainingStopped",
    "add_quality_ranges",
    "learn_quality_ranges",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]

_HOMES = {
    "TrainConfig": "cxrseg.training.config",
    "TrainEvent": "cxrseg.training.events",
    "TrainResult": "cxrseg.training.run",
    "TrainingStopped": "cxrseg.training.loop",
    "add_quality_ranges": "cxrseg.training.quality_ranges",
    "learn_quality_ranges": "cxrseg.training.quality_ranges",
    "load_checkpoint": "cxrseg.training.checkpoint",
    "save_checkpoint": "cxrseg.training.checkpoint",
    "train": "cxrseg.training.run",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'cxrseg.training' has no attribute {name!r}")
