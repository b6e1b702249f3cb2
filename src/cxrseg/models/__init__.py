"""Segmentation networks and a plain dict registry of them.

``create_model("unet", in_channels=1, num_classes=3)`` builds a model by name; checkpoints
store that name and the resolved keyword arguments, so a model can be rebuilt without code.

Registered names:

- ``"unet"``: :class:`UNet` with its defaults (depth 5, base 32, about 7.8 M parameters).
- ``"unet_small"``: :class:`UNet` with depth 4 and base 16 (about 0.5 M parameters), for quick
  runs on a CPU and for tests.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from cxrseg.models.blocks import NORMS, UPSAMPLES, ConvBlock, Down, Up, make_norm
from cxrseg.models.unet import PAD_MODES, UNet

__all__ = [
    "MODELS",
    "NORMS",
    "PAD_MODES",
    "UPSAMPLES",
    "ConvBlock",
    "Down",
    "UNet",
    "Up",
    "count_parameters",
    "create_model",
    "make_norm",
    "model_spec",
]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
    "unet_small": partial(UNet, depth=4, base_channels=16),
}
"""Model factories by name; keyword arguments given to :func:`create_model` override defaults."""


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` with keyword arguments ``kwargs``.

    Raises:
        ValueError: ``name`` is not in :data:`MODELS` (the message lists the names), or the
            model rejects an argument.
    """
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(
            f"model {name!r} is not known; use one of {', '.join(map(repr, sorted(MODELS)))}"
        ) from None
    return factory(**kwargs)


def model_spec(model: nn.Module) -> dict[str, Any]:
    """Return ``{"name": ..., "kwargs": {...}}`` such that ``create_model`` rebuilds ``model``.

    The model must be an instance of a class registered directly in :data:`MODELS` and carry
    its resolved constructor arguments in a ``config`` dict, as :class:`UNet` does.

    Raises:
        TypeError: The model's class is not registered or it has no ``config``.
    """
    for name, factory in MODELS.items():
        config = getattr(model, "config", None)
        if type(model) is factory and isinstance(config, dict):
            return {"name": name, "kwargs": dict(config)}
    raise TypeError(
        f"cannot describe a {type(model).__name__} for create_model; register its class in "
        f"cxrseg.models.MODELS and give it a 'config' dict of its constructor arguments"
    )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Return the number of parameters of ``model`` (only those requiring grad if asked)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
