"""JSON files: one reader that names the file and the fix, one atomic writer.

Every JSON record cxrseg keeps (checkpoint metadata, splits, run records, summaries) goes
through this pair, so each is written atomically with a final newline and each read error
reads alike.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrseg.errors import InputError
from cxrseg.io.writing import atomic_write

__all__ = ["parse_json", "parse_yaml", "read_json", "to_jsonable", "write_json"]


def to_jsonable(value: Any) -> Any:
    """``json.dumps`` ``default``: NumPy scalars and arrays, paths and dataclasses as JSON.

    Raises:
        TypeError: Any other type (as ``json.dumps`` does).
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"cannot store a {type(value).__name__} in JSON: {value!r}")


def write_json(path: str | Path, data: Any, *, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON (``indent``, final newline) atomically; returns the path."""
    path = Path(path)
    text = json.dumps(data, indent=indent, default=to_jsonable)
    with atomic_write(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path


def parse_json(text: str) -> Any:
    """``json.loads`` for text from a file: nesting too deep for Python to parse (``[[[[...``
    a hundred thousand times) is a :class:`json.JSONDecodeError`, as any other bad JSON, so the
    caller's message for a broken file covers it (not a ``RecursionError``)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply to parse", text, 0) from None


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` with the same rule: nesting too deep is a ``yaml.YAMLError``."""
    import yaml  # lazy: start-up time (only the commands that read YAML need it)

    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise yaml.YAMLError("nested too deeply to parse") from None


def read_json(path: str | Path, *, what: str = "the JSON file", hint: str | None = None) -> dict:
    """The object a JSON file holds.

    Args:
        path: The file.
        what: How the error names the file's role (``"checkpoint JSON"``).
        hint: The fix the error suggests (default: check the path or rewrite the file).

    Raises:
        InputError: The file is missing, unreadable, not JSON, or holds no JSON object.
    """
    path = Path(path)
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("file not found", path=path, hint=hint or "check the path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not readable JSON ({exc})", path=path, hint=hint) from exc
    if not isinstance(data, dict):
        raise InputError(f"{what} must hold an object", path=path, hint=hint)
    return data
