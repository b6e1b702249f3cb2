"""Spatial and intensity augmentation of radiographs and their masks.

The modules by role:

- geometry: :mod:`~cxrseg.augment.geometry` (backward maps; public names) with
  :mod:`.geometry.maps`, :mod:`.geometry.mesh`, :mod:`.geometry.compose` and the numba
  :mod:`.geometry.kernels`.
- resampling twins: :mod:`~cxrseg.augment.resample_cv` (NumPy arrays, OpenCV) and
  :mod:`~cxrseg.augment.resample_torch` (torch tensors on any device).
- transforms: :mod:`~cxrseg.augment.base`, :mod:`~cxrseg.augment.transforms` (spatial, and the
  ``TRANSFORMS`` registry) and :mod:`~cxrseg.augment.intensity`.
- the pipeline: :mod:`~cxrseg.augment.pipeline` (``Pipeline``), its Augmentor-name methods
  :mod:`~cxrseg.augment.pipeline_methods`, its targets :mod:`~cxrseg.augment.pipeline_targets`
  and its batch path on torch :mod:`~cxrseg.augment.pipeline_batch`.

Importing this package does not import torch. Only ``Pipeline.sample`` from a discovered
dataset (through :func:`cxrseg.data.load_case`) and the pipeline's own YAML file touch files;
the offline job that reads a dataset and writes
augmented samples sits above this package and :mod:`cxrseg.data`: :mod:`cxrseg.augment_offline`.
"""

from __future__ import annotations

from cxrseg.augment.geometry import (
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
from cxrseg.augment.resample_cv import remap, warp

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

# Random transforms and the Pipeline (Augmentor's method names).
from cxrseg.augment.pipeline import Pipeline  # noqa: E402
from cxrseg.augment.transforms import TRANSFORMS  # noqa: E402

__all__ += ["TRANSFORMS", "Pipeline"]
