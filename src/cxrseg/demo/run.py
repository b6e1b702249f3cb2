""":func:`run_demo`: the demo folder prepared, the steps run in order, the record written."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cxrseg.demo.settings import DEFAULT_OUT, MARKER, OUTPUTS, STEPS, DemoResult, DemoSettings
from cxrseg.demo.steps import STAGES
from cxrseg.errors import InputError
from cxrseg.io import write_json

__all__ = ["EventCallback", "run_demo"]

logger = logging.getLogger(__name__)

EventCallback = Callable[[dict[str, Any]], None]


def run_demo(
    out: str | Path = DEFAULT_OUT,
    settings: DemoSettings | None = None,
    *,
    overwrite: bool = False,
    device: str = "auto",
    on_event: EventCallback | None = None,
) -> DemoResult:
    """Generate phantoms, augment, train, predict the held-out phantoms, evaluate.

    Args:
        out: Demo folder; must be new or empty, or hold an earlier demo with ``overwrite``.
        settings: Sizes and seed; default :meth:`DemoSettings.full`.
        overwrite: Replace an earlier demo in ``out`` (only the names in :data:`OUTPUTS` are
            removed; other files are left alone).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` for training and prediction.
        on_event: Receives dicts: ``{"event": "step", "step", "index", "steps"}`` when a step
            starts, ``{"event": "progress", "step", "done", "total"}`` during it, the
            training's ``{"event": "epoch", ...}`` (see :func:`cxrseg.training.train`), and
            ``{"event": "done", "step", "seconds", "message"}`` when it ends.

    Returns:
        Mean test Dice per structure, step timings and the report path.

    Raises:
        InputError: ``out`` holds other files, or a stage refused its input.
    """
    settings = settings or DemoSettings.full()
    out = Path(out)
    emit = on_event or (lambda event: None)
    _prepare_folder(out, overwrite)
    write_json(out / MARKER, {"status": "running", "settings": asdict(settings)}, indent=1)
    state: dict[str, Any] = {"device": device, "emit": emit}
    seconds = _run_steps(out, settings, state, emit)
    result = DemoResult(out, settings, state["dice"], seconds, state["report"], state["summary"])
    _write_record(result)
    return result


def _run_steps(
    out: Path, settings: DemoSettings, state: dict[str, Any], emit: EventCallback
) -> dict[str, float]:
    """Run :data:`STEPS` in order, sharing ``state``; the wall time of each."""
    seconds: dict[str, float] = {}
    for index, step in enumerate(STEPS, 1):
        emit({"event": "step", "step": step, "index": index, "steps": len(STEPS)})

        def progress(done: int, total: int, step: str = step) -> None:
            emit({"event": "progress", "step": step, "done": done, "total": total})

        start = time.perf_counter()
        message = STAGES[step](out, settings, state, progress)
        seconds[step] = time.perf_counter() - start
        logger.info("demo %s: %.1f s, %s", step, seconds[step], message)
        emit({"event": "done", "step": step, "seconds": seconds[step], "message": message})
    return seconds


def _write_record(result: DemoResult) -> None:
    """``demo.json`` of a finished demo: settings, Dice, timings, the report."""
    record = {"status": "finished", "settings": asdict(result.settings), "dice": result.dice,
              "mean_dice": result.mean_dice, "seconds": result.seconds,
              "total_seconds": result.total_seconds, "report": str(result.report)}  # fmt: skip
    write_json(result.out / MARKER, record, indent=1)


def _prepare_folder(out: Path, overwrite: bool) -> None:
    """Refuse a file or a folder with foreign content; clear an earlier demo if asked."""
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a folder.", path=out, hint="choose a folder for --out.")
    if not out.is_dir() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    if not (out / MARKER).is_file():
        raise InputError(
            f"the folder is not empty and holds no earlier demo ({MARKER}); nothing was changed.",
            path=out,
            hint="choose a new or empty folder with --out.",
        )
    if not overwrite:
        raise InputError(
            "the folder holds an earlier demo; nothing was changed.",
            path=out,
            hint="add --overwrite to replace it, or choose another --out.",
        )
    for name in OUTPUTS:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    logger.info("removed the earlier demo in %s", out)
