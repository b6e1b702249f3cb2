"""Transforms: the base of every random transform (draw parameters, then apply them).

A transform is a frozen dataclass whose first field is ``probability``. It is checked when built
(:class:`~cxrseg.errors.InputError`, a ``ValueError``, or ``TypeError``, naming the value and the
fix), draws one sample's parameters with :meth:`RandomTransform.sample_params`, and describes
itself with :meth:`RandomTransform.to_dict` for pipeline YAML files.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from cxrseg.checks import check_probability, check_range

Params = dict[str, Any]
"""One sample's parameters of one transform: JSON-able, with ``applied`` always present."""


@dataclass(frozen=True)
class RandomTransform:
    """A transform applied with a probability; parameters are drawn, then used by pure code.

    Subclasses set ``name`` (the op name in pipelines and YAML), normalise their
    fields in :meth:`validate`, and draw their numbers in :meth:`draw`.
    """

    name: ClassVar[str] = ""

    probability: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "probability", check_probability(self.name, self.probability))
        self.validate()

    def validate(self) -> None:
        """Check and normalise the fields other than ``probability`` (subclasses)."""

    def check_size(self, height: int, width: int) -> None:
        """Raise :class:`~cxrseg.errors.InputError` when an image of this size cannot be used."""

    def sample_params(self, rng: np.random.Generator, height: int, width: int) -> Params:
        """Draw one sample's parameters.

        Args:
            rng: The sample's generator for this transform.
            height: Image height in pixels.
            width: Image width in pixels.

        Returns:
            ``{"applied": rng.random() < probability, ...numbers drawn when applied}``.
        """
        self.check_size(height, width)
        applied = bool(rng.random() < self.probability)
        params: Params = {"applied": applied}
        if applied:
            params.update(self.draw(rng, height, width))
        return params

    def draw(self, rng: np.random.Generator, height: int, width: int) -> Params:
        """Draw the numbers of an applied sample (subclasses)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The op name and constructor arguments, as stored in pipeline YAML files."""
        return {"op": self.name, **{f.name: getattr(self, f.name) for f in fields(self)}}

    def set_field(self, field: str, value: Any) -> None:
        """Store a normalised value on the frozen instance (used by :meth:`validate`)."""
        object.__setattr__(self, field, value)


class UniformRange:
    """Mixin for a transform drawing one number uniformly from ``[low field, high field]``.

    Subclasses name the two fields in ``bounds``, the parameter key in ``key`` and the limits
    passed to :func:`check_range` in ``limits``.
    """

    bounds: ClassVar[tuple[str, str]] = ("", "")
    key: ClassVar[str] = ""
    limits: ClassVar[dict[str, Any]] = {}
    name: ClassVar[str]

    def validate(self) -> None:
        low, high = self.bounds
        lo, hi = check_range(
            self.name, low, getattr(self, low), high, getattr(self, high), **self.limits
        )
        object.__setattr__(self, low, lo)
        object.__setattr__(self, high, hi)

    def draw(self, rng: np.random.Generator, height: int, width: int) -> Params:
        low, high = self.bounds
        return {self.key: rng.uniform(getattr(self, low), getattr(self, high))}
