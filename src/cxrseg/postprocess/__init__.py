"""Post-processing of predicted masks per structure, and its choice on validation data.

Steps, applied in this order by :func:`postprocess_mask`:

1. keep the ``k`` largest connected components (:func:`keep_largest_components`): ``k = 2`` for a
   structure that holds both lungs, 1 for one lung or the heart. Keeping only the largest
   component, as nnU-Net does, would delete a lung when both lungs share a label;
2. remove components smaller than a fraction of the **largest** component
   (:func:`remove_small_components`). Relative to the largest rather than to the total area, so
   the threshold does not move with the number of specks;
3. fill holes (:func:`fill_holes`): background not connected to the image border;
4. smooth (:func:`smooth`): morphological opening then closing with a disk.

Components use 8-connectivity by default (diagonal neighbours touch), the usual choice for 2-D
masks and the dual of the 4-connected background that :func:`fill_holes` uses.

:func:`choose_postprocessing` tries every step on validation predictions, in the order above,
and keeps one only where it raises the structure's mean Dice by more than ``epsilon`` without
lowering any other structure's mean Dice (nnU-Net's ``determine_postprocessing``). Every
structure is offered keep-largest, the heart and the clavicles as well as the lungs, with its
own ``k`` (its references' usual count, or one more). The steps live in
:mod:`~cxrseg.postprocess.steps`, the choice in :mod:`~cxrseg.postprocess.choice`. The chosen
:class:`PostprocessConfig` per structure is JSON-able (``to_dict`` / ``from_dict``) so it can be
stored in a checkpoint and overridden.
"""

from __future__ import annotations

from cxrseg.postprocess.choice import (
    TWO_COMPONENT_NAMES,
    choose_postprocessing,
    default_config,
    typical_component_count,
)
from cxrseg.postprocess.steps import (
    PostprocessConfig,
    fill_holes,
    keep_largest_components,
    postprocess_mask,
    postprocess_masks,
    remove_small_components,
    smooth,
)

__all__ = [
    "TWO_COMPONENT_NAMES",
    "PostprocessConfig",
    "choose_postprocessing",
    "default_config",
    "fill_holes",
    "keep_largest_components",
    "postprocess_mask",
    "postprocess_masks",
    "remove_small_components",
    "smooth",
    "typical_component_count",
]
