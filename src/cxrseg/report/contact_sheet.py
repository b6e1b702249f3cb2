"""Contact sheet: a grid of case thumbnails with each structure's mask drawn over the image.

Each structure gets a colour of the Okabe-Ito palette (readable with colour-vision
deficiencies), drawn as a translucent fill with an opaque one-pixel contour, so overlapping
structures stay visible. Thumbnails keep the image's aspect ratio (letterboxed on black), carry
the case id underneath, and a legend strip names the colours. Cases that could not be read get
a grey tile; cases listed as ``flagged`` (e.g. with errors) get a red frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from cxrseg.data import Dataset, load_case
from cxrseg.io import atomic_write

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
RGB = tuple[int, int, int]

#: Okabe-Ito colours (without black), in the order structures are coloured.
PALETTE: tuple[RGB, ...] = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
)
_CAPTION = 14
_FLAG: RGB = (220, 30, 30)


def structure_colors(names: Sequence[str]) -> dict[str, RGB]:
    """Colour of each structure, cycling through :data:`PALETTE`."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def overlay(
    image: np.ndarray,
    masks: Mapping[str, np.ndarray],
    colors: Mapping[str, RGB] | None = None,
    alpha: float = 0.35,
) -> np.ndarray:
    """Draw masks over a grayscale image.

    Args:
        image: (H, W) float image in [0, 1].
        masks: (H, W) masks per structure; non-zero is foreground.
        colors: RGB colour per structure; defaults to :func:`structure_colors`.
        alpha: Opacity of the fill (contours are opaque).

    Returns:
        (H, W, 3) uint8 RGB image.

    Raises:
        ValueError: ``image`` is not 2-D, a mask has another shape, or ``alpha`` is not in [0, 1].
    """
    import cv2

    if image.ndim != 2:
        raise ValueError(f"image must be (H, W), got shape {image.shape}; pass one channel.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    colors = dict(colors) if colors is not None else structure_colors(list(masks))
    gray = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    out = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    kernel = np.ones((3, 3), np.uint8)
    for name, mask in masks.items():
        if mask.shape != image.shape:
            raise ValueError(
                f"mask {name!r} has shape {mask.shape}, image has {image.shape}; resize it first."
            )
        region = mask != 0
        color = np.array(colors.get(name, PALETTE[0]), np.float32)
        out[region] = (1.0 - alpha) * out[region] + alpha * color
        edge = region & ~cv2.erode(region.astype(np.uint8), kernel).astype(bool)
        out[edge] = color
    return out.astype(np.uint8)


def _thumbnail(
    image: np.ndarray, masks: Mapping[str, np.ndarray], colors: Mapping[str, RGB], tile: int
) -> np.ndarray:
    """Letterboxed (tile, tile, 3) overlay of a case."""
    import cv2

    height, width = image.shape
    scale = tile / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    small = cv2.resize(image.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_AREA)
    small_masks = {
        name: cv2.resize(m.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_AREA) >= 0.5
        for name, m in masks.items()
    }
    out = np.zeros((tile, tile, 3), np.uint8)
    top, left = (tile - new_h) // 2, (tile - new_w) // 2
    out[top : top + new_h, left : left + new_w] = overlay(small, small_masks, colors)
    return out


def _text(canvas: np.ndarray, text: str, x: int, y: int, color: RGB = (255, 255, 255)) -> None:
    import cv2

    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.35, color, 1, cv2.LINE_AA)


def contact_sheet(
    tiles: Sequence[tuple[str, np.ndarray | None, Mapping[str, np.ndarray]]],
    structures: Sequence[str],
    tile: int = 128,
    columns: int | None = None,
    flagged: frozenset[str] | set[str] = frozenset(),
) -> np.ndarray:
    """Arrange case overlays in a grid with captions and a legend.

    Args:
        tiles: ``(case_id, image or None when unreadable, masks)`` per case.
        structures: Structure names, in legend order.
        tile: Thumbnail side in pixels (>= 32).
        columns: Grid columns; defaults to about the square root of the number of tiles.
        flagged: Case ids to frame in red.

    Returns:
        (H, W, 3) uint8 RGB sheet.

    Raises:
        ValueError: No tiles, ``tile`` below 32 or ``columns`` below 1.
    """
    if not tiles:
        raise ValueError("no cases to draw; pass at least one (case_id, image, masks).")
    if tile < 32:
        raise ValueError(f"tile must be at least 32 pixels, got {tile}.")
    if columns is None:
        columns = max(1, int(np.ceil(np.sqrt(len(tiles)))))
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}.")
    colors = structure_colors(structures)
    rows = -(-len(tiles) // columns)
    cell_h = tile + _CAPTION
    legend_h = 18
    sheet = np.full((rows * cell_h + legend_h, columns * tile, 3), 24, np.uint8)
    for index, (case_id, image, masks) in enumerate(tiles):
        y, x = (index // columns) * cell_h, (index % columns) * tile
        if image is None:
            cell = np.full((tile, tile, 3), 96, np.uint8)
            _text(cell, "unreadable", 4, tile // 2)
        else:
            cell = _thumbnail(image, masks, colors, tile)
        if case_id in flagged:
            cell[:2], cell[-2:], cell[:, :2], cell[:, -2:] = _FLAG, _FLAG, _FLAG, _FLAG
        sheet[y : y + tile, x : x + tile] = cell
        label = case_id if len(case_id) * 6 <= tile else case_id[: tile // 6 - 1] + "~"
        _text(sheet, label, x + 2, y + tile + 10)
    x = 4
    base = rows * cell_h
    for name in structures:
        sheet[base + 5 : base + 13, x : x + 8] = colors[name]
        _text(sheet, name, x + 11, base + 13)
        x += 11 + 7 * len(name) + 10
    return sheet


def pick_evenly(items: Sequence[str], limit: int) -> list[str]:
    """Up to ``limit`` items spread evenly over ``items`` (first and last included)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}.")
    if len(items) <= limit:
        return list(items)
    picks = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in dict.fromkeys(picks.tolist())]


def write_contact_sheet(
    path: str | Path,
    dataset: Dataset,
    case_ids: Sequence[str] | None = None,
    max_cases: int = 36,
    tile: int = 128,
    flagged: frozenset[str] | set[str] = frozenset(),
    progress: Progress | None = None,
) -> Path:
    """Write a contact sheet PNG of a dataset's cases.

    Args:
        path: The PNG to write (atomically); its folder is created.
        dataset: A :class:`cxrseg.data.Dataset`.
        case_ids: Cases to draw; defaults to all. At most ``max_cases`` are drawn, spread
            evenly over the list.
        max_cases: Upper bound on thumbnails.
        tile: Thumbnail side in pixels.
        flagged: Case ids to frame in red (e.g. those with errors).
        progress: Called with ``(done, total)`` after each case.

    Returns:
        The path written.

    Raises:
        ValueError: ``path`` does not end in ``.png``, or the arguments of :func:`contact_sheet`.
    """
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"contact sheet path must end in .png, got {path.name!r}.")
    chosen = pick_evenly(case_ids if case_ids is not None else dataset.case_ids, max_cases)
    tiles: list[tuple[str, np.ndarray | None, Mapping[str, np.ndarray]]] = []
    for done, case_id in enumerate(chosen, start=1):
        try:
            image, masks = load_case(dataset.case(case_id), dataset)
            tiles.append((case_id, image, masks))
        except Exception as exc:  # a broken case gets a grey tile; validation reports why
            logger.debug("contact sheet: cannot draw %s: %s", case_id, exc)
            tiles.append((case_id, None, {}))
        if progress is not None:
            progress(done, len(chosen))
    sheet = contact_sheet(tiles, dataset.structures, tile=tile, flagged=flagged)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")
    logger.info("wrote contact sheet %s (%d cases)", path, len(tiles))
    return path
