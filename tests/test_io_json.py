"""io.read_json / io.write_json: the one JSON pair every record goes through."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cxrseg.errors import InputError
from cxrseg.io import read_json, write_json


@dataclass
class _Point:
    x: int
    y: int


def test_write_then_read_gives_the_data_back_with_numpy_paths_and_dataclasses(
    tmp_path: Path,
) -> None:
    data = {"a": np.float32(0.5), "b": np.arange(3), "c": Path("x/y"), "d": _Point(1, 2)}
    path = write_json(tmp_path / "r.json", data, indent=1)
    assert path.read_text(encoding="utf-8").endswith("}\n")
    assert read_json(path) == {"a": 0.5, "b": [0, 1, 2], "c": "x/y", "d": {"x": 1, "y": 2}}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left behind


@pytest.mark.parametrize(
    ("text", "message"),
    [(None, "file not found"), ("{oops", "not readable JSON"), ("[1, 2]", "must hold an object")],
)
def test_a_bad_file_is_named_with_the_fix(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "r.json"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        read_json(path, hint="rewrite it")
    assert caught.value.path == path and caught.value.hint == "rewrite it"


def test_an_unknown_type_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="object"):
        write_json(tmp_path / "r.json", {"x": object()})
    assert not (tmp_path / "r.json").exists()
