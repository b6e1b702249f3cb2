"""Tiny on-disk datasets in each supported layout, for the cxrseg.data and inspect tests.

Images are small random 8-bit PNGs; masks are rectangles (0/255 unless told otherwise), so
every expected number in a test can be computed from the arrays written here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 32


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write a uint8/uint16 (H, W) array as PNG, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def radiograph(seed: int, size: int | tuple[int, int] = SIZE) -> np.ndarray:
    """Random uint8 (H, W) image."""
    shape = (size, size) if isinstance(size, int) else size
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def rect_mask(
    size: int | tuple[int, int] = SIZE, box: tuple[int, int, int, int] = (4, 4, 12, 16), value=255
) -> np.ndarray:
    """uint8 (H, W) mask with ``value`` inside rows box[0]:box[2], cols box[1]:box[3]."""
    shape = (size, size) if isinstance(size, int) else size
    mask = np.zeros(shape, np.uint8)
    top, left, bottom, right = box
    mask[top:bottom, left:right] = value
    return mask


def standard(
    root: Path,
    ids: Iterable[str] = ("case1", "case2"),
    structures: Iterable[str] | None = None,
    size: int = SIZE,
) -> Path:
    """``root/images/<id>.png`` with ``root/masks/<id>.png`` or ``masks/<structure>/<id>.png``."""
    for i, case_id in enumerate(ids):
        write_png(root / "images" / f"{case_id}.png", radiograph(i, size))
        if structures is None:
            write_png(root / "masks" / f"{case_id}.png", rect_mask(size))
        else:
            for k, name in enumerate(structures):
                box = (2 + 3 * k, 2, 6 + 3 * k, 10)
                write_png(root / "masks" / name / f"{case_id}.png", rect_mask(size, box))
    return root


def montgomery(root: Path, ids: Iterable[str] = ("MCUCXR_0001_0", "MCUCXR_0002_1")) -> Path:
    """Montgomery layout: ``CXR_png/`` + ``ManualMask/leftMask/`` + ``ManualMask/rightMask/``."""
    for i, case_id in enumerate(ids):
        write_png(root / "CXR_png" / f"{case_id}.png", radiograph(i))
        write_png(
            root / "ManualMask" / "leftMask" / f"{case_id}.png", rect_mask(box=(4, 18, 20, 28))
        )
        write_png(
            root / "ManualMask" / "rightMask" / f"{case_id}.png", rect_mask(box=(4, 4, 20, 14))
        )
    return root


def shenzhen(root: Path, ids: Iterable[str] = ("CHNCXR_0001_0", "CHNCXR_0002_1")) -> Path:
    """Shenzhen layout: ``CXR_png/<id>.png`` + ``mask/<id>_mask.png``."""
    for i, case_id in enumerate(ids):
        write_png(root / "CXR_png" / f"{case_id}.png", radiograph(i))
        write_png(root / "mask" / f"{case_id}_mask.png", rect_mask())
    return root


SCR_FOLDERS = ("heart", "left clavicle", "left lung", "right clavicle", "right lung")


def write_gif(path: Path, mask: np.ndarray) -> Path:
    """Write a 0/255 mask as a grayscale GIF (as the SCR database stores them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(path, format="GIF")
    return path


def jsrt_png(root: Path, folds: dict[str, Iterable[str]], image_size: int = 64) -> Path:
    """JSRT images as PNG in ``root/images`` and SCR GIF masks at half size in
    ``root/scratch/<fold>/masks/<structure>/<id>.gif``."""
    half = image_size // 2
    for f, (fold, ids) in enumerate(folds.items()):
        for i, case_id in enumerate(ids):
            write_png(root / "images" / f"{case_id}.png", radiograph(10 * f + i, image_size))
            for k, name in enumerate(SCR_FOLDERS):
                box = (2 + 2 * k, 2, 4 + 2 * k, half - 2)
                write_gif(
                    root / "scratch" / fold / "masks" / name / f"{case_id}.gif",
                    rect_mask(half, box),
                )
    return root


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of every file below ``root``."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
