"""Spatial and intensity augmentation of radiographs and their masks.

:mod:`cxrseg.augment.functional` holds the pure geometry (backward maps), and
:mod:`cxrseg.augment.resample` applies a map to an image and its masks with OpenCV. The
``torch`` backend for batches on any device is :mod:`cxrseg.augment.torch_backend`; it is not
imported here, so importing this package does not import torch.
"""

from __future__ import annotations

from cxrseg.augment.functional import (
    MapPair,
    Maps,
    affine_map,
    affine_matrix,
    compose_affine,
    compose_maps,
    elastic_map,
    flip_map,
    gaussian_sigmas,
    identity_map,
    mesh_displacement,
    mesh_map,
    tile_edges,
)
from cxrseg.augment.resample import remap, warp

__all__ = [
    "MapPair",
    "Maps",
    "affine_map",
    "affine_matrix",
    "compose_affine",
    "compose_maps",
    "elastic_map",
    "flip_map",
    "gaussian_sigmas",
    "identity_map",
    "mesh_displacement",
    "mesh_map",
    "remap",
    "tile_edges",
    "warp",
]

# Random transforms and the Pipeline (Augmentor's method names). The offline augment-to-disk
# job reads datasets, so it sits above this package: cxrseg.augment_offline.augment_dataset.
from cxrseg.augment.pipeline import Pipeline  # noqa: E402
from cxrseg.augment.transforms import TRANSFORMS  # noqa: E402

__all__ += ["TRANSFORMS", "Pipeline"]
