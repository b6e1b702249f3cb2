"""Transforms: the base of every random transform (draw parameters, then apply them).

A transform is a frozen dataclass whose first field is ``probability``. It is checked when built
(:class:`~cxrseg.errors.InputError`, a ``ValueError``, or ``TypeError``, naming the value and the
fix), draws one sample's parameters with :meth:`RandomTransform.sample_params`, and describes
itself with :meth:`RandomTransform.to_dict` for pipeline YAML files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from cxrseg.errors import InputError

Params = dict[str, Any]
"""One sample's parameters of one transform: JSON-able, with ``applied`` always present."""


def check_number(
    op: str,
    field: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool = False,
) -> float:
    """Return ``value`` as a float, or raise naming ``op``, ``field`` and the allowed range.

    Args:
        op: Transform name, for the message.
        field: Argument name, for the message.
        value: The value given.
        minimum: Lowest allowed value (excluded when ``strict``).
        maximum: Highest allowed value (included).
        strict: Whether ``minimum`` itself is refused.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{op}: {field}={value!r} must be a number, not {type(value).__name__}.")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"{op}: {field}={value!r} is not finite.", hint="give a finite number.")
    below = minimum is not None and (number <= minimum if strict else number < minimum)
    above = maximum is not None and number > maximum
    if below or above:
        low = "-inf" if minimum is None else f"{minimum:g}"
        high = "inf" if maximum is None else f"{maximum:g}"
        interval = f"{'(' if strict else '['}{low}, {high}]"
        raise InputError(
            f"{op}: {field}={value!r} is outside {interval}.",
            hint=f"give {field} within {interval}.",
        )
    return number


def check_integer(op: str, field: str, value: object, *, minimum: int) -> int:
    """Return ``value`` as an int (integral floats accepted), or raise naming the value."""
    number = check_number(op, field, value)
    if not number.is_integer():
        raise InputError(
            f"{op}: {field}={value!r} is not a whole number.",
            hint=f"give an integer such as {field}={math.floor(number)}.",
        )
    if number < minimum:
        raise InputError(
            f"{op}: {field}={value!r} is below {minimum}.",
            hint=f"give an integer {field} >= {minimum}.",
        )
    return int(number)


def check_probability(op: str, value: object) -> float:
    """Return a probability in [0, 1] as a float, or raise naming the value."""
    return check_number(op, "probability", value, minimum=0.0, maximum=1.0)


def check_range(
    op: str,
    low_field: str,
    low: object,
    high_field: str,
    high: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool = False,
) -> tuple[float, float]:
    """Check a ``[low, high]`` pair: both within limits and ``low <= high``."""
    lo = check_number(op, low_field, low, minimum=minimum, maximum=maximum, strict=strict)
    hi = check_number(op, high_field, high, minimum=minimum, maximum=maximum, strict=strict)
    if lo > hi:
        raise InputError(
            f"{op}: {low_field}={low!r} is greater than {high_field}={high!r}.",
            hint=f"give {low_field} <= {high_field}.",
        )
    return lo, hi


def check_choice(op: str, field: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` when it is one of ``choices``, or raise listing them."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(
            f"{op}: {field}={value!r} is not one of {', '.join(map(repr, choices))}.",
            hint=f"give one of {', '.join(choices)}.",
        )
    return value


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
