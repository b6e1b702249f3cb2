"""Learn a model's plausible ranges from its training cases and store them with the model.

``cxrseg train`` calls :func:`learn_quality_ranges` on the training split and saves the result
in every checkpoint's metadata under ``"quality"``; :func:`add_quality_ranges` adds it to an
existing checkpoint (the shipped model's script uses it). Prediction flags cases outside these
ranges (:mod:`cxrseg.quality`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from cxrseg.data import Dataset, load_case
from cxrseg.io import read_json, write_json
from cxrseg.quality import learn_ranges

__all__ = ["add_quality_ranges", "learn_quality_ranges"]

logger = logging.getLogger(__name__)


def learn_quality_ranges(
    dataset: Dataset, case_ids: Sequence[str], *, workers: int = 2
) -> dict[str, Any]:
    """Ranges of :func:`cxrseg.quality.learn_ranges` over the cases ``case_ids`` of ``dataset``.

    Raises:
        ValueError: ``case_ids`` is empty.
    """
    cases = [dataset.case(case_id) for case_id in case_ids]
    if not cases:
        raise ValueError("learn_quality_ranges needs at least one training case id")

    def samples() -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            yield from pool.map(lambda case: load_case(case, dataset), cases)

    ranges = learn_ranges(samples())
    logger.info("learned quality ranges from %d training cases", len(cases))
    return ranges


def add_quality_ranges(
    checkpoint: str | Path, dataset: Dataset, case_ids: Sequence[str]
) -> dict[str, Any]:
    """Learn the ranges from ``case_ids`` and write them into ``checkpoint``'s ``model.json``.

    Args:
        checkpoint: A checkpoint folder (``model.json`` inside) or its ``.json`` file.
        dataset: The training dataset.
        case_ids: The model's training cases.

    Returns:
        The ranges written.
    """
    path = Path(checkpoint)
    path = path / "model.json" if path.is_dir() else path.with_suffix(".json")
    metadata = read_json(path, what="the checkpoint's metadata")
    ranges = learn_quality_ranges(dataset, case_ids)
    renamed = _rename_single(ranges, metadata.get("labels", []))
    metadata["quality"] = renamed
    write_json(path, metadata, indent=1)
    return renamed


def _rename_single(ranges: dict[str, Any], labels: Sequence[str]) -> dict[str, Any]:
    """One-structure data and model: the data's name (``foreground``) becomes the model's."""
    learned = ranges["structures"]
    if len(learned) == 1 and len(labels) == 1 and labels[0] not in learned:
        ranges = {**ranges, "structures": {labels[0]: next(iter(learned.values()))}}
    return ranges
