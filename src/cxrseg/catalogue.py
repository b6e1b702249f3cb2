"""The catalogue of the models shipped in ``cxrseg/pretrained/``: names, folders, model cards.

NumPy-free and torch-free, so training (``--init lungs``) and the CLI can look a model up
without importing inference; :mod:`cxrseg.pretrained` adds :func:`cxrseg.pretrained.load`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrseg.errors import InputError

__all__ = [
    "PRETRAINED",
    "PretrainedModel",
    "available",
    "describe",
    "model_path",
    "resolve",
]

_HERE = Path(__file__).resolve().parent / "pretrained"
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class PretrainedModel:
    """One shipped model: its name, one line on what it does, and its licence."""

    name: str
    summary: str
    license: str

    @property
    def folder(self) -> Path:
        """The checkpoint folder inside the installed package."""
        return _HERE / self.name

    @property
    def card(self) -> Path:
        """The model card (Markdown)."""
        return self.folder / "MODEL_CARD.md"

    @property
    def license_file(self) -> Path:
        """The licence statement of the weights (Markdown)."""
        return self.folder / "LICENSE.md"


#: Shipped models by name.
PRETRAINED: dict[str, PretrainedModel] = {
    "lungs": PretrainedModel(
        name="lungs",
        summary="both lungs in one mask, frontal (PA/AP) adult chest radiographs",
        license="CC BY-NC-SA 4.0",
    ),
}


def available() -> list[str]:
    """Names of the shipped models, sorted."""
    return sorted(PRETRAINED)


def model_path(name: str) -> Path:
    """The checkpoint folder of a shipped model (pass it wherever a run folder is accepted).

    Raises:
        InputError: ``name`` is not a shipped model, or its files are missing from this
            installation.
    """
    entry = PRETRAINED.get(name)
    if entry is None:
        raise InputError(
            f"no shipped model is called {name!r}",
            hint=f"use one of: {', '.join(available())} (or give a run folder or checkpoint)",
        )
    for file in ("model.json", "model.safetensors"):
        if not (entry.folder / file).is_file():
            raise InputError(
                f"the shipped model {name!r} is missing {file} in this installation",
                path=entry.folder,
                hint="reinstall cxrseg (pip install --force-reinstall cxrseg), or rebuild the "
                "model with scripts/train_lung_model.py --install",
            )
    return entry.folder


def resolve(model: str | Path) -> Path:
    """``model`` as a path, or the folder of the shipped model of that name.

    An existing file or folder wins over a shipped model's name, so a run folder called
    ``lungs`` in the working directory is still found.
    """
    if Path(model).exists() or str(model) not in PRETRAINED:
        return Path(model)
    return model_path(str(model))


def describe(name: str) -> dict[str, Any]:
    """What :command:`cxrseg models` shows of a shipped model.

    Returns:
        Name, summary, licence, structures, input size, parameter count, weight file size in
        MB, the held-out figures of ``results.json`` (empty when it is absent), and the paths
        of the model card and of the licence statement.
    """
    folder = model_path(name)
    entry = PRETRAINED[name]
    metadata = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    weights = folder / "model.safetensors"
    results_file = folder / "results.json"
    results = json.loads(results_file.read_text(encoding="utf-8")) if results_file.is_file() else {}
    return {
        "name": name,
        "summary": entry.summary,
        "license": entry.license,
        "structures": list(metadata.get("labels", [])),
        "input_size": metadata.get("input_size"),
        "parameters": _parameter_count(weights),
        "weights_mb": weights.stat().st_size / 1e6,
        "results": results.get("rows", []),
        "card": str(entry.card),
        "license_file": str(entry.license_file),
    }


def _parameter_count(weights: Path) -> int:
    """Trainable values in a safetensors file (batch-norm statistics left out), from its header."""
    with weights.open("rb") as file:
        size = int.from_bytes(file.read(8), "little")
        header = json.loads(file.read(size))
    total = 0
    for key, tensor in header.items():
        if key != "__metadata__" and not key.endswith(_BUFFERS):
            count = 1
            for dim in tensor["shape"]:
                count *= dim
            total += count
    return total
