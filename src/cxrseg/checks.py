"""Argument checks shared by every layer: a bad value raises naming the argument and the fix.

Arguments come in one order: (``op``,) ``name``, ``value``, then keywords.

- ``check_number`` / ``check_integer`` / ``check_range`` / ``check_probability`` /
  ``check_choice`` / ``check_index`` check user settings (pipeline operations, job options):
  :class:`~cxrseg.errors.InputError` (a ``ValueError``) naming ``op: name=value`` and a hint,
  ``TypeError`` for a value that is not a number.
- ``check_int`` / ``check_one_of`` / ``check_fraction`` check constructor arguments of library
  objects (models, phantoms, splits): ``TypeError`` / ``ValueError`` reading
  ``name must be ..., got value``.

Configuration files have their own schema (:mod:`cxrseg.training.schema`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cxrseg.errors import InputError

__all__ = [
    "check_choice",
    "check_fraction",
    "check_index",
    "check_int",
    "check_integer",
    "check_number",
    "check_one_of",
    "check_probability",
    "check_range",
]


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


def check_index(name: str, value: object) -> int:
    """Return a non-negative integer (sample index, count) as an int, or raise naming it."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise InputError(
            f"{name}={value!r} must be a non-negative integer.", hint=f"give {name} as 0, 1, 2, ..."
        )
    return int(value)


def check_int(
    name: str, value: Any, *, minimum: int, maximum: int | None = None, hint: str = ""
) -> int:
    """Return an integer (not a bool) within ``[minimum, maximum]``, or raise.

    Raises:
        TypeError: ``name must be an int, got value`` (then ``hint``).
        ValueError: ``name must be >= minimum`` (or ``between minimum and maximum``),
            ``got value``.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {value!r}{hint}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name} must be {bounds}, got {value}{hint}")
    return int(value)


def check_one_of(name: str, value: Any, options: Sequence[str]) -> str:
    """Return ``value`` when it is one of ``options``, else ``ValueError`` listing them."""
    if value not in options:
        raise ValueError(
            f"{name}={value!r} is not known; use one of {', '.join(map(repr, options))}"
        )
    return value


def check_fraction(name: str, value: Any) -> float:
    """Return a number in ``[0, 1)`` as a float, else ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}.")
    return float(value)
