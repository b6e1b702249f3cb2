"""The package's front door: a light import and re-exports that resolve."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cxrseg

HEAVY = ("torch", "cv2", "numba", "onnxruntime")


def _modules_after(code: str) -> set[str]:
    """Names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_cxrseg_loads_no_heavy_library() -> None:
    loaded = _modules_after("import cxrseg")
    assert "cxrseg" in loaded
    assert not [name for name in HEAVY if name in loaded]


def test_import_cxrseg_loads_no_stage_module() -> None:
    loaded = _modules_after("import cxrseg")
    stages = sorted(m for m in loaded if m.startswith("cxrseg."))
    assert stages == ["cxrseg._version", "cxrseg.errors"]


def test_lazy_name_imports_only_its_own_module() -> None:
    loaded = _modules_after("import cxrseg\ncxrseg.read_image")
    assert "cxrseg.io" in loaded
    assert "torch" not in loaded and "cxrseg.training" not in loaded


@pytest.mark.parametrize("name", cxrseg.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(cxrseg, name) is not None


@pytest.mark.parametrize("name", sorted(cxrseg._LAZY))
def test_lazy_name_is_the_submodule_object(name: str) -> None:
    import importlib

    home = importlib.import_module(cxrseg._LAZY[name])
    assert getattr(cxrseg, name) is getattr(home, name)


def test_all_lists_exactly_the_lazy_names_and_the_eager_ones() -> None:
    eager = {"CxrsegError", "InputError", "__version__"}
    assert len(set(cxrseg.__all__)) == len(cxrseg.__all__)
    assert set(cxrseg.__all__) == eager | set(cxrseg._LAZY)


def test_dir_lists_exactly_the_public_api() -> None:
    cxrseg.read_image  # noqa: B018  # a loaded submodule (cxrseg.io) must not show either
    assert dir(cxrseg) == sorted(cxrseg.__all__)


def test_project_declares_both_licences_and_ships_their_files() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT AND CC-BY-NC-SA-4.0"
    files = [path for pattern in project["license-files"] for path in root.glob(pattern)]
    texts = "\n".join(path.read_text(encoding="utf-8") for path in files)
    assert "MIT License" in texts
    assert "Attribution-NonCommercial-ShareAlike 4.0 International" in texts
    assert "model.safetensors" in texts  # the statement says which files the CC licence covers


def test_unknown_name_raises_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        cxrseg.no_such_name  # noqa: B018


def test_input_error_is_a_value_error() -> None:
    assert issubclass(cxrseg.InputError, ValueError)
    assert issubclass(cxrseg.InputError, cxrseg.CxrsegError)
