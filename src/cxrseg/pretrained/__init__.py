"""Models that ship inside the package: segment a radiograph without training or downloading.

Each shipped model is a checkpoint folder under ``cxrseg/pretrained/<name>/`` (safetensors
weights, the ``model.json`` metadata every cxrseg checkpoint has, the measured figures in
``results.json`` and a ``MODEL_CARD.md``)::

    from cxrseg.pretrained import load

    predictor = load("lungs")                  # a cxrseg.inference.Predictor
    masks = predictor.predict(image).masks     # {"lungs": (H, W) bool}

On the command line: ``cxrseg predict --model lungs IMAGES... --out DIR``, ``cxrseg models``
(the list) and ``cxrseg models lungs`` (the card). Nothing is fetched from the network: the
weights are files of the installed package, read without unpickling.

``scripts/train_lung_model.py`` in the repository rebuilds ``lungs`` from the public
Montgomery and Shenzhen sets; its model card says what it was trained on, how well it does,
under which licence the weights may be used and what it must not be used for.
"""

from __future__ import annotations

from typing import Any

from cxrseg.catalogue import (
    PRETRAINED,
    PretrainedModel,
    available,
    describe,
    model_path,
    resolve,
)
from cxrseg.inference import Predictor

__all__ = [
    "PRETRAINED",
    "PretrainedModel",
    "available",
    "describe",
    "load",
    "model_path",
    "resolve",
]


def load(name: str, device: str = "auto", **options: Any) -> Predictor:
    """A :class:`~cxrseg.inference.Predictor` for a shipped model.

    Args:
        name: A name from :func:`available`.
        device, options: As :meth:`cxrseg.inference.Predictor.from_checkpoint`.
    """
    return Predictor.from_checkpoint(model_path(name), device=device, **options)
