"""Synthetic chest radiographs with known masks: the embedded default data for tests and the demo.

:func:`make_phantom` draws a posteroanterior chest radiograph from a seed: body outline, two lungs
of varied shape, size and position, heart, spine, ribs, clavicles and humeral heads, then lung
texture, global gamma / contrast / brightness, an optional smooth intensity gradient, Gaussian
noise and a slight blur. Every shape is defined in normalised coordinates, so any image size
(square or rectangular) gives the same anatomy scaled to it.

Masks follow the SCR conventions: the heart is subtracted from both lungs (the lungs never overlap
the heart), while the clavicles overlap the upper lungs. The radiological convention applies: the
patient's left lung appears on the image's right side.

:func:`write_phantom_dataset` writes ``n`` phantoms in the standard layout::

    out/images/phantom_0001.png              8-bit grayscale
    out/masks/<structure>/phantom_0001.png   0/255
    out/dataset.json                         names, label indices, seeds, size, generator
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrseg._version import __version__
from cxrseg.checks import check_int
from cxrseg.errors import InputError
from cxrseg.io import write_image, write_json, write_mask
from cxrseg.phantom.anatomy import (
    LEFT,
    RIGHT,
    body_outline,
    clavicle_outline,
    fill,
    heart_outline,
    largest_component,
    lung_outline,
)
from cxrseg.phantom.render import render

__all__ = ["STRUCTURES", "Phantom", "make_phantom", "write_phantom_dataset"]

logger = logging.getLogger(__name__)

STRUCTURES = ("left_lung", "right_lung", "heart", "left_clavicle", "right_clavicle")

MIN_SIZE = 32
"""Smallest side length in pixels; below it the clavicles and heart may vanish."""
MAX_SIZE = 2048
"""Largest side length in pixels: drawing one takes about 55 bytes a pixel (225 MB at 2048)."""


@dataclass(frozen=True)
class Phantom:
    """One synthetic radiograph and its masks.

    Attributes:
        image: float32 array (H, W) in [0, 1]; bright means dense (bone, soft tissue).
        masks: uint8 0/1 array (H, W) per structure, keyed and ordered as :data:`STRUCTURES`.
        seed: The seed it was drawn from.
    """

    image: np.ndarray
    masks: dict[str, np.ndarray]
    seed: int

    def stacked_masks(self) -> np.ndarray:
        """Return the masks as one uint8 0/1 array (C, H, W) in :data:`STRUCTURES` order."""
        return np.stack([self.masks[name] for name in STRUCTURES])


def make_phantom(seed: int, size: int | tuple[int, int] = 256) -> Phantom:
    """Draw one synthetic chest radiograph and its masks.

    The same ``seed`` and ``size`` give a bit-identical result; the random draws do not depend
    on ``size`` (except the pixel noise), so one seed gives the same anatomy at every size.

    Args:
        seed: Non-negative integer seeding ``np.random.default_rng``.
        size: Side length for a square image, or ``(H, W)``; each side at least 32 pixels.

    Returns:
        The phantom: image (H, W) float32 in [0, 1] and one uint8 0/1 mask (H, W) per structure.

    Raises:
        TypeError: If ``seed`` or ``size`` is not an integer / pair of integers.
        ValueError: If ``seed`` is negative or a side is smaller than 32 pixels.
    """
    seed = check_int("seed", seed, minimum=0, hint="; pass e.g. seed=0.")
    h, w = _parse_size(size)
    rng = np.random.default_rng(seed)

    right = lung_outline(rng, RIGHT, width_scale=1.0)
    left = lung_outline(rng, LEFT, width_scale=float(rng.uniform(0.86, 0.95)))
    heart = heart_outline(rng, left)
    clavicles = {RIGHT: clavicle_outline(rng, RIGHT, right)}
    clavicles[LEFT] = clavicle_outline(rng, LEFT, left)
    body = body_outline(rng, right, left)

    heart_mask = fill(heart, h, w)
    masks = {
        "left_lung": largest_component(fill(left, h, w) & (1 - heart_mask)),
        "right_lung": largest_component(fill(right, h, w) & (1 - heart_mask)),
        "heart": heart_mask,
        "left_clavicle": fill(clavicles[LEFT], h, w),
        "right_clavicle": fill(clavicles[RIGHT], h, w),
    }
    image = render(rng, h, w, body, masks, (right, left), clavicles)
    return Phantom(image=image, masks=masks, seed=seed)


def write_phantom_dataset(
    out: str | Path,
    n: int,
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    *,
    overwrite: bool = False,
) -> list[str]:
    """Write ``n`` phantoms in the standard layout under ``out``.

    Case ``i`` (1-based) uses a seed derived from ``(seed, i)``; the derived seeds are recorded in
    ``out/dataset.json``. Only the files named above are written; nothing is deleted.

    Args:
        out: Destination folder; created if missing.
        n: Number of cases, at least 1.
        size: Side length or ``(H, W)`` of every image, each side at least 32 pixels.
        seed: Non-negative base seed.
        progress: Optional ``progress(done, total)`` callback, called after each case.
        overwrite: Write into ``out`` even when ``out/images`` already holds files.

    Returns:
        The case ids written, ``phantom_0001`` ... in order.

    Raises:
        InputError: If ``out/images`` is not empty and ``overwrite`` is false, or ``out`` is a file.
        TypeError, ValueError: If ``n``, ``size`` or ``seed`` is invalid.
    """
    n = check_int("n", n, minimum=1, hint="; pass e.g. n=10.")
    seed = check_int("seed", seed, minimum=0, hint="; pass e.g. seed=0.")
    h, w = _parse_size(size)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a folder.", path=out, hint="choose a folder for --out.")
    images_dir = out / "images"
    if not overwrite and images_dir.is_dir() and any(images_dir.iterdir()):
        raise InputError(
            "already holds images; refusing to mix a new phantom set into it.",
            path=images_dir,
            hint="choose an empty or new folder, or pass overwrite=True (--overwrite).",
        )
    for folder in [images_dir, *(out / "masks" / name for name in STRUCTURES)]:
        folder.mkdir(parents=True, exist_ok=True)

    width = max(4, len(str(n)))
    case_ids: list[str] = []
    case_seeds: dict[str, int] = {}
    if progress is not None:
        progress(0, n)
    for i in range(1, n + 1):
        case_id = f"phantom_{i:0{width}d}"
        case_seed = _case_seed(seed, i)
        phantom = make_phantom(case_seed, (h, w))
        write_image(images_dir / f"{case_id}.png", phantom.image, bit_depth=8)
        for name in STRUCTURES:
            write_mask(out / "masks" / name / f"{case_id}.png", phantom.masks[name] * 255)
        case_ids.append(case_id)
        case_seeds[case_id] = case_seed
        if progress is not None:
            progress(i, n)

    meta = {
        "name": "cxrseg-phantom",
        "labels": {name: index for index, name in enumerate(STRUCTURES, start=1)},
        "structures": list(STRUCTURES),
        "mask_values": {"background": 0, "foreground": 255},
        "seed": seed,
        "size": [h, w],
        "num_cases": n,
        "case_seeds": case_seeds,
        "generator": f"cxrseg.phantom {__version__}",
    }
    write_json(out / "dataset.json", meta, indent=2)
    logger.debug("wrote %d phantoms of size %dx%d to %s", n, h, w, out)
    return case_ids


# --- arguments and small helpers ---


def _parse_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """Return ``(H, W)`` from an int or a pair, refusing sides below :data:`MIN_SIZE`."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        hw = (int(size), int(size))
    elif (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
    ):
        hw = (int(size[0]), int(size[1]))
    else:
        raise TypeError(f"size must be an int or an (H, W) pair of ints, got {size!r}.")
    if min(hw) < MIN_SIZE:
        raise ValueError(f"size {size!r} is too small; each side must be >= {MIN_SIZE} pixels.")
    if max(hw) > MAX_SIZE:
        raise ValueError(
            f"size {size!r} is too large; each side must be <= {MAX_SIZE} pixels (a "
            f"{MAX_SIZE} px phantom takes about 225 MB to draw; larger ones exhaust memory)."
        )
    return hw


def _case_seed(seed: int, index: int) -> int:
    """Derive the seed of case ``index`` from the base ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
