"""Geometry: backward maps of the spatial ops, no randomness, NumPy only (public names).

A *map* is a pair ``(map_x, map_y)`` of float32 arrays of shape (H, W) in the ``cv2.remap``
convention: output pixel ``(x, y)`` takes its value from the source position
``(map_x[y, x], map_y[y, x])``, in pixel-index units (pixel centres at integer positions, the
top-left pixel centre at ``(0, 0)``). Every function takes its parameters explicitly, so a
random transform only draws numbers and any sample can be replayed.

Applying op ``A`` and then op ``B`` to an image gives ``out(p) = in(A(B(p)))``, so the map of
the chain is ``A``'s map evaluated at ``B``'s positions (:func:`compose_maps`, or
:func:`chain_map` for a whole chain given by its parameters); the data is then resampled once
(:mod:`cxrseg.augment.resample_cv`, :mod:`cxrseg.augment.resample_torch`).

This module gathers the public names of :mod:`.maps` (identity, affine, flip,
elastic), :mod:`.mesh` (Augmentor's mesh distortions) and
:mod:`.compose`.
"""

from __future__ import annotations

from cxrseg.augment.geometry.compose import chain_map, compose_maps
from cxrseg.augment.geometry.maps import (
    MapPair,
    Maps,
    MeshSpec,
    Step,
    affine_map,
    affine_matrix,
    compose_affine,
    elastic_map,
    flip_map,
    identity_map,
    tile_edges,
)
from cxrseg.augment.geometry.mesh import (
    CORNERS,
    METHODS,
    gaussian_sigmas,
    mesh_displacement,
    mesh_map,
)

__all__ = [
    "CORNERS",
    "METHODS",
    "MapPair",
    "Maps",
    "MeshSpec",
    "Step",
    "affine_map",
    "affine_matrix",
    "chain_map",
    "compose_affine",
    "compose_maps",
    "elastic_map",
    "flip_map",
    "gaussian_sigmas",
    "identity_map",
    "mesh_displacement",
    "mesh_map",
    "tile_edges",
]
