"""cxrseg: chest radiograph segmentation from folder to report.

The names most scripts need are available from the package itself::

    import cxrseg

    dataset = cxrseg.discover("data/montgomery")
    pipeline = cxrseg.Pipeline(seed=0).random_distortion(1, 5, 5, 8)

Importing the package does no I/O and imports neither torch nor OpenCV: every name below
except the errors and ``__version__`` is looked up in its submodule on first use
(``cxrseg.Pipeline`` imports :mod:`cxrseg.augment.pipeline`, ``cxrseg.UNet`` imports torch).
The full API lives in the submodules: :mod:`cxrseg.io`, :mod:`cxrseg.data`,
:mod:`cxrseg.phantom`, :mod:`cxrseg.augment`, :mod:`cxrseg.models`, :mod:`cxrseg.training`,
:mod:`cxrseg.inference`, :mod:`cxrseg.postprocess`, :mod:`cxrseg.metrics`,
:mod:`cxrseg.evaluation`, :mod:`cxrseg.inference.export` and :mod:`cxrseg.pretrained` (the shipped
lung model).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cxrseg._version import __version__
from cxrseg.errors import CxrsegError, InputError

if TYPE_CHECKING:
    from cxrseg.augment.pipeline import Pipeline
    from cxrseg.augment_offline import augment_dataset
    from cxrseg.data import (
        Case,
        Dataset,
        discover,
        load_case,
        load_or_create_splits,
        make_splits,
        validate,
    )
    from cxrseg.evaluation import evaluate
    from cxrseg.inference import Predictor, predict_paths
    from cxrseg.inference.export import export_model
    from cxrseg.io import (
        ImageInfo,
        read_image,
        read_image_info,
        read_mask,
        write_image,
        write_mask,
    )
    from cxrseg.metrics import segmentation_metrics
    from cxrseg.models import UNet, create_model
    from cxrseg.phantom import STRUCTURES, make_phantom, write_phantom_dataset
    from cxrseg.postprocess import PostprocessConfig
    from cxrseg.training import TrainConfig, train

#: Public name -> the module that defines it (imported on first access).
_LAZY: dict[str, str] = {
    # reading and writing files
    "ImageInfo": "cxrseg.io",
    "read_image": "cxrseg.io",
    "read_image_info": "cxrseg.io",
    "read_mask": "cxrseg.io",
    "write_image": "cxrseg.io",
    "write_mask": "cxrseg.io",
    # datasets
    "Case": "cxrseg.data",
    "Dataset": "cxrseg.data",
    "discover": "cxrseg.data",
    "validate": "cxrseg.data",
    "load_case": "cxrseg.data",
    "make_splits": "cxrseg.data",
    "load_or_create_splits": "cxrseg.data",
    # synthetic data
    "STRUCTURES": "cxrseg.phantom",
    "make_phantom": "cxrseg.phantom",
    "write_phantom_dataset": "cxrseg.phantom",
    # augmentation
    "Pipeline": "cxrseg.augment.pipeline",
    "augment_dataset": "cxrseg.augment_offline",
    # models and training (torch)
    "UNet": "cxrseg.models",
    "create_model": "cxrseg.models",
    "TrainConfig": "cxrseg.training",
    "train": "cxrseg.training",
    # prediction, post-processing, evaluation, export
    "Predictor": "cxrseg.inference",
    "predict_paths": "cxrseg.inference",
    "PostprocessConfig": "cxrseg.postprocess",
    "segmentation_metrics": "cxrseg.metrics",
    "evaluate": "cxrseg.evaluation",
    "export_model": "cxrseg.inference.export",
}

__all__ = [
    "Case",
    "CxrsegError",
    "Dataset",
    "ImageInfo",
    "InputError",
    "Pipeline",
    "PostprocessConfig",
    "Predictor",
    "STRUCTURES",
    "TrainConfig",
    "UNet",
    "__version__",
    "augment_dataset",
    "create_model",
    "discover",
    "evaluate",
    "export_model",
    "load_case",
    "load_or_create_splits",
    "make_phantom",
    "make_splits",
    "predict_paths",
    "read_image",
    "read_image_info",
    "read_mask",
    "segmentation_metrics",
    "train",
    "validate",
    "write_image",
    "write_mask",
    "write_phantom_dataset",
]


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access (PEP 562)."""
    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module 'cxrseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """Only the public API: no helpers, no imported modules, no submodules already loaded."""
    return sorted(__all__)
