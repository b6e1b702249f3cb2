"""Offline augmentation to disk: Augmentor's ``sample(n)`` workflow, resumable and replayable.

Sample ``k`` (0 <= k < n) augments case ``k % len(cases)`` (cases in natural order) with
``index=k``, ``epoch=0``, and is written in the standard layout under the id
``<source_id>_aug<k:05d>``::

    out/images/<id>.png                 8-bit (16-bit when the source image is)
    out/masks/<structure>/<id>.png      0/255
    out/pipeline.yaml                   the pipeline, seed included (Pipeline.from_yaml loads it)
    out/manifest.jsonl                  one line per finished sample: id, source, index, seed,
                                        epoch, size, resize and the parameters drawn

Every file is written atomically, and a sample's manifest line is appended (flushed and fsynced)
only after its files are in place. A rerun with the same arguments skips the samples the
manifest lists whose files exist, redoes the rest and removes leftover temporary files; a
rerun with another pipeline, seed, size or dataset is refused. The input is never written.
Results do not depend on ``workers``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrseg.augment.pipeline import Pipeline
from cxrseg.checks import check_choice, check_integer
from cxrseg.data import discover, load_case
from cxrseg.data.loading import RESIZE_MODES, resize_pair
from cxrseg.errors import InputError
from cxrseg.io import atomic_write, parse_json, read_image_info, write_image, write_mask
from cxrseg.io.folders import LOCK_NAME, folder_lock

__all__ = [
    "RESIZE_MODES",
    "AugmentSummary",
    "augment_dataset",
    "read_manifest",
    "replay_record",
]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
PIPELINE_FILE = "pipeline.yaml"


@dataclass(frozen=True)
class AugmentSummary:
    """What :func:`augment_dataset` did.

    Attributes:
        out: The output folder.
        total: Samples requested (``n``).
        written: Samples written by this run.
        skipped: Samples already finished by an earlier run.
        manifest: Path of ``manifest.jsonl``.
    """

    out: Path
    total: int
    written: int
    skipped: int
    manifest: Path


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``manifest.jsonl``; an unreadable (half-written) line is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = parse_json(line)
        except json.JSONDecodeError:
            logger.warning("%s:%d: unreadable manifest line skipped", path, number)
            continue
        if isinstance(record, dict) and "id" in record and "index" in record:
            records.append(record)
    return records


def _write_manifest(path: Path, records: list[dict[str, Any]]) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _sample_id(source_id: str, index: int) -> str:
    return f"{source_id}_aug{index:05d}"


def _sample_files(out: Path, sample_id: str, structures: list[str]) -> list[Path]:
    return [
        out / "images" / f"{sample_id}.png",
        *(out / "masks" / s / f"{sample_id}.png" for s in structures),
    ]


def _remove_temporaries(out: Path, structures: list[str]) -> None:
    """Remove ``atomic_write`` leftovers (``.<name>.tmp-*``) of an interrupted run."""
    for folder in [out, out / "images", *(out / "masks" / s for s in structures)]:
        for leftover in folder.glob(".*.tmp-*") if folder.is_dir() else []:
            leftover.unlink(missing_ok=True)


def _check_out(out: Path, dataset: Any, pipeline: Pipeline) -> None:
    """Refuse an output folder inside the input, or one holding another run or other files."""
    if dataset.contains(out) or any(out.resolve() == Path(d).resolve() for d in dataset.input_dirs):
        raise InputError(
            "the output folder is inside the input dataset; writing there would mix augmented "
            "samples into the source.",
            path=out,
            hint="choose --out outside the dataset folder.",
        )
    if out.exists() and not out.is_dir():
        raise InputError("the output path is a file.", path=out, hint="choose a folder for --out.")
    saved = out / PIPELINE_FILE
    if saved.exists():
        if Pipeline.from_yaml(saved) != pipeline:
            raise InputError(
                "the folder holds a run with another pipeline or seed; continuing it would mix "
                "two augmentations.",
                path=out,
                hint="choose a new --out, or rerun with the same pipeline and --seed.",
            )
    elif out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir()):
        raise InputError(
            "the output folder is not empty and holds no earlier augment run (pipeline.yaml).",
            path=out,
            hint="choose a new or empty folder for --out.",
        )


def augment_dataset(
    dataset: Any,
    out: str | Path,
    n: int,
    *,
    pipeline: Pipeline,
    size: int = 512,
    resize: str = "squash",
    seed: int | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> AugmentSummary:
    """Write ``n`` augmented image/mask pairs of ``dataset`` under ``out`` (see module doc).

    Args:
        dataset: A :class:`cxrseg.data.Dataset`, or a folder that ``cxrseg.data.discover`` reads.
        out: Output folder, outside the dataset; created if missing.
        n: Number of samples, cycling through the cases in order.
        pipeline: The augmentation.
        size: Side of the square images written, in pixels.
        resize: ``squash`` or ``letterbox`` (see :func:`resize_pair`), applied before augmenting.
        seed: Replaces the pipeline's seed when given.
        workers: Threads; the output is the same for any number.
        progress: Called as ``progress(done, n)``, finished samples of earlier runs included.

    Returns:
        An :class:`AugmentSummary`.

    Raises:
        InputError: Bad arguments, an empty dataset, a pipeline that cannot use ``size``, an
            output folder inside the input or holding another run.
    """
    n = check_integer("augment", "n", n, minimum=1)
    size = check_integer("augment", "size", size, minimum=8)
    resize = check_choice("augment", "resize", resize, RESIZE_MODES)
    workers = check_integer("augment", "workers", workers, minimum=1)
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"pipeline must be a Pipeline, not {type(pipeline).__name__}.")
    if seed is not None:
        pipeline = Pipeline.from_dict({**pipeline.to_dict(), "seed": seed})
    pipeline.check_size(size, size)
    if not hasattr(dataset, "cases"):
        dataset = discover(dataset)
    if not dataset.cases:
        raise InputError(
            "the dataset has no image with masks to augment.",
            path=dataset.root,
            hint="check the folder layout with `cxrseg inspect`.",
        )
    out = Path(out)
    _check_out(out, dataset, pipeline)
    with folder_lock(out, "augment"):  # one command at a time writes into a folder
        return _write_samples(dataset, out, n, pipeline, size, resize, workers, progress)


def _write_samples(
    dataset: Any,
    out: Path,
    n: int,
    pipeline: Pipeline,
    size: int,
    resize: str,
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> AugmentSummary:
    """The samples of :func:`augment_dataset` not yet in ``out``, then the final manifest."""
    structures = list(dataset.structures)

    manifest = out / MANIFEST
    records = read_manifest(manifest)
    settings = {"seed": pipeline.seed, "size": size, "resize": resize}
    cases = dataset.cases
    for record in records:
        k = int(record["index"])
        mismatch = {key: record.get(key) for key in settings if record.get(key) != settings[key]}
        if k < n and record.get("source_id") != cases[k % len(cases)].case_id:
            mismatch["source_id"] = record.get("source_id")
        if mismatch:
            raise InputError(
                f"the folder holds samples made with other settings {mismatch} (now {settings} "
                "on this dataset).",
                path=out,
                hint="rerun with the same dataset and options, or choose a new --out.",
            )
    done = {
        int(r["index"]): r
        for r in records
        if all(p.exists() for p in _sample_files(out, r["id"], structures))
    }
    kept = sorted(done.values(), key=lambda r: int(r["index"]))
    if manifest.exists():  # drops half-written lines and samples whose files are gone
        _write_manifest(manifest, kept)
    _remove_temporaries(out, structures)
    if not (out / PIPELINE_FILE).exists():
        pipeline.save_yaml(out / PIPELINE_FILE)

    todo = [k for k in range(n) if k not in done]
    skipped = n - len(todo)
    logger.info("augment: %d samples to write, %d already done, into %s", len(todo), skipped, out)
    if progress is not None:
        progress(skipped, n)

    def make(k: int) -> dict[str, Any]:
        return _make_sample(dataset, k, out, pipeline, size, resize)

    with open(manifest, "a", encoding="utf-8") as log:

        def finish(record: dict[str, Any], count: int) -> None:
            log.write(json.dumps(record) + "\n")
            log.flush()
            os.fsync(log.fileno())
            if progress is not None:
                progress(skipped + count, n)

        if workers == 1:
            for count, k in enumerate(todo, 1):
                finish(make(k), count)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(make, k) for k in todo]
                try:
                    for count, future in enumerate(as_completed(futures), 1):
                        finish(future.result(), count)
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    final = sorted(read_manifest(manifest), key=lambda r: int(r["index"]))
    _write_manifest(manifest, final)
    return AugmentSummary(out, n, len(todo), skipped, manifest)


def _load_resized(
    dataset: Any, case: Any, size: int, resize: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    image, masks = load_case(case, dataset)
    return resize_pair(image, masks, size, resize)


def replay_record(
    record: dict[str, Any], dataset: Any, pipeline: Pipeline
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Recompute a manifest sample from its source case and recorded parameters.

    Args:
        record: One line of ``manifest.jsonl``.
        dataset: The dataset the run read.
        pipeline: The run's pipeline (``Pipeline.from_yaml(out / "pipeline.yaml")``).

    Returns:
        The float32 (H, W) image and uint8 0/1 masks, as written (before 8/16-bit rounding).
    """
    case = dataset.case(record["source_id"])
    image, masks = _load_resized(dataset, case, int(record["size"]), record["resize"])
    return pipeline.replay(image, masks, record["params"])


def _make_sample(
    dataset: Any, k: int, out: Path, pipeline: Pipeline, size: int, resize: str
) -> dict[str, Any]:
    """Load, resize, augment and write sample ``k``; return its manifest record."""
    case = dataset.cases[k % len(dataset.cases)]
    image, masks = _load_resized(dataset, case, size, resize)
    image, masks, params = pipeline.apply_with_params(image, masks, index=k, epoch=0)
    bit_depth = 16 if read_image_info(case.image, pixel_range=False).bit_depth > 8 else 8
    sample_id = _sample_id(case.case_id, k)
    for structure, mask in masks.items():
        write_mask(
            out / "masks" / structure / f"{sample_id}.png", (mask > 0).astype(np.uint8) * 255
        )
    write_image(out / "images" / f"{sample_id}.png", image, bit_depth=bit_depth)
    return {
        "id": sample_id,
        "source_id": case.case_id,
        "source": str(case.image),
        "index": k,
        "seed": pipeline.seed,
        "epoch": 0,
        "size": size,
        "resize": resize,
        "bit_depth": bit_depth,
        "params": params,
    }
