"""Declarative option schemas whose refusals read as one :class:`InputError` per bad value.

A schema is a pydantic model in strict mode: one field is one line with its type, default and
bounds (``epochs: int = Field(30, ge=1)``), so adding an option is adding a line. Strict mode
means no silent coercion: ``amp: "no"`` is refused instead of being read as a true string, and
``epochs: 2.5`` is refused instead of being rounded. The one exception is a float given as text
in exponent form: YAML 1.1 (PyYAML) reads ``lr: 1e-3`` as the *string* ``"1e-3"``, so such
strings are read as numbers (:data:`Real`).

pydantic's own messages are rewritten into this project's form, ``name=value must be ...``
plus a fix, from the field's declared type and bounds, so the bounds live in one place.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

import annotated_types as at
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from cxrseg.errors import InputError

__all__ = ["Real", "Schema", "describe_bounds", "schema_error"]


def _number_from_text(value: Any) -> Any:
    """``"1e-3"`` (YAML 1.1 reads an exponent without a dot as text) becomes 0.001."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


#: A finite float; text that spells a number (YAML's ``1e-3``) is read as that number.
Real = Annotated[float, BeforeValidator(_number_from_text), Field(allow_inf_nan=False)]

_KIND = {"int": "a whole number", "float": "a finite number", "bool": "true or false",
         "dict": "a mapping of name: value", "list": "a list", "str": "text"}  # fmt: skip
_OPERATORS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_BOUND_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


class Schema(BaseModel):
    """Base of the option schemas: strict types, unknown keys refused, errors as InputError.

    Subclasses declare fields and may override :meth:`check` for rules that join several
    fields. ``prefix`` is put in front of option names in messages (``"model_kwargs."``).
    """

    model_config = ConfigDict(strict=True, extra="forbid", validate_assignment=True)
    prefix: ClassVar[str] = ""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise schema_error(type(self), exc) from None
        self.check()

    def check(self) -> None:
        """Rules between fields; raise :class:`InputError`. Nothing by default."""


def describe_bounds(schema: type[BaseModel], name: str) -> str:
    """The declared bounds of a field as text: ``">= 1"``, ``"in [0, 1)"``, ``"from 2 to 7"``."""
    field = schema.model_fields.get(name)
    low = high = None
    for item in field.metadata if field is not None else ():
        if isinstance(item, (at.Ge, at.Gt)):
            low = (">=", item.ge) if isinstance(item, at.Ge) else (">", item.gt)
        elif isinstance(item, (at.Le, at.Lt)):
            high = ("<=", item.le) if isinstance(item, at.Le) else ("<", item.lt)
    if low and high:
        if low[0] == ">=" and high[0] == "<=":
            return f"from {low[1]} to {high[1]}"
        left, right = "[" if low[0] == ">=" else "(", "]" if high[0] == "<=" else ")"
        return f"in {left}{low[1]}, {high[1]}{right}"
    bound = low or high
    return f"{bound[0]} {bound[1]}" if bound else ""


def _kind(schema: type[BaseModel], loc: tuple[Any, ...], error_type: str) -> str:
    """What a value must be, from the declared type (or, inside a list, from the error)."""
    if len(loc) > 1:
        text = "float" if error_type in _BOUND_ERRORS else error_type
    else:
        field = schema.model_fields.get(str(loc[0]))
        text = str(field.annotation) if field is not None else ""
    if error_type == "finite_number":
        text = "float"
    for key in ("bool", "dict", "list", "int", "float", "str"):
        if key in text:
            return _KIND[key]
    return "a valid value"


def _one_message(schema: type[BaseModel], error: Any) -> tuple[str, str]:
    """``(reason, fix)`` for one pydantic error."""
    loc = tuple(error["loc"])
    top = str(loc[0]) if loc else ""
    prefix = getattr(schema, "prefix", "")
    name = prefix + top + "".join(f"[{part}]" for part in loc[1:])
    value, kind = error.get("input"), error["type"]
    if kind == "literal_error":
        expected = (error.get("ctx") or {}).get("expected")
        return f"{name}={value!r} is not one of {expected}.", f"set {name} to one of them."
    if kind == "too_short":
        return f"{name}={value!r} must not be empty.", f"give values, or leave {name} out."
    if kind == "bool_type":
        return f"{name}={value!r} must be true or false.", f"write {name}: false or true, unquoted."
    bounds = describe_bounds(schema, top) if len(loc) == 1 else ""
    if len(loc) > 1 and kind in _BOUND_ERRORS:
        ctx = error.get("ctx") or {}
        bounds = " ".join(f"{_OPERATORS[key]} {ctx[key]}" for key in _OPERATORS if key in ctx)
    if isinstance(value, float) and not math.isfinite(value):
        kind = "finite_number"
    what = " ".join(filter(None, (_kind(schema, loc, kind), bounds)))
    # "lr=0.0 must be > 0": a number out of range needs only the range
    said = bounds if kind in _BOUND_ERRORS and _kind(schema, loc, kind) == _KIND["float"] else what
    field = schema.model_fields.get(top)
    default = (
        ""
        if field is None or field.is_required()
        else f" (default {field.get_default(call_default_factory=True)!r})"
    )
    return f"{name}={value!r} must be {said}.", f"set {name} to {what}, or leave it out{default}."


def schema_error(schema: type[BaseModel], exc: ValidationError) -> InputError:
    """One :class:`InputError` naming every refused option of ``exc`` and how to fix it."""
    errors = exc.errors(include_url=False)
    unknown = [str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        prefix = getattr(schema, "prefix", "")
        valid = ", ".join(sorted(schema.model_fields))
        where = f"{prefix.rstrip('.')} " if prefix else ""
        return InputError(
            f"unknown option(s) {', '.join(prefix + u for u in unknown)}.",
            hint=f"valid {where}options are: {valid}.",
        )
    parts = [_one_message(schema, error) for error in errors]
    reason = " ".join(reason for reason, _ in parts)
    hint = " ".join(dict.fromkeys(fix for _, fix in parts))
    return InputError(reason, hint=hint)
