"""The run folder's ``metrics.csv`` and ``curves.png`` (loss and Dice per epoch).

The history is a list of flat dicts, one per epoch, kept in the resume state and rewritten in
full after each epoch, so a resumed run's files match an uninterrupted run's. The figure is
drawn with Pillow (two panels: train/validation loss, validation Dice per structure), which
avoids a plotting dependency.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from cxrseg.io import atomic_write

__all__ = ["metric_columns", "plot_curves", "read_metrics_csv", "write_metrics_csv"]

_COLORS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
]


def metric_columns(structures: Sequence[str]) -> list[str]:
    """Column order of ``metrics.csv`` for the given structures."""
    dice = [f"val_dice_{name}" for name in structures]
    return ["epoch", "train_loss", "val_loss", *dice, "val_dice_mean", "lr", "epoch_s", "elapsed_s"]


def write_metrics_csv(path: str | Path, rows: Sequence[dict[str, Any]], columns: list[str]) -> None:
    """Write one row per epoch (atomically); missing values are left empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format(row.get(k)) for k in columns})
    with atomic_write(Path(path)) as tmp:
        Path(tmp).write_text(buffer.getvalue(), encoding="utf-8")


def read_metrics_csv(path: str | Path) -> list[dict[str, float]]:
    """Read ``metrics.csv`` back as floats (empty cells become NaN)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return [
            {k: float(v) if v != "" else math.nan for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# --- figure -------------------------------------------------------------------------------


def plot_curves(
    path: str | Path,
    rows: Sequence[dict[str, Any]],
    structures: Sequence[str],
    title: str = "",
) -> None:
    """Draw the loss and Dice curves as a PNG (atomically).

    Args:
        path: Output ``.png``.
        rows: History as written to ``metrics.csv``.
        structures: Structure names whose ``val_dice_<name>`` to draw.
        title: Text above the panels.
    """
    width, height = 1000, 420
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(13)
    if title:
        draw.text((width // 2, 6), title, fill="black", font=font, anchor="ma")
    epochs = [float(r["epoch"]) for r in rows]
    loss_series = {
        "train loss": [_num(r.get("train_loss")) for r in rows],
        "val loss": [_num(r.get("val_loss")) for r in rows],
    }
    dice_series = {name: [_num(r.get(f"val_dice_{name}")) for r in rows] for name in structures}
    if len(structures) > 1:
        dice_series["mean"] = [_num(r.get("val_dice_mean")) for r in rows]
    finite_loss = [v for s in loss_series.values() for v in s if math.isfinite(v)]
    finite_dice = [v for s in dice_series.values() for v in s if math.isfinite(v)]
    loss_top = max(finite_loss, default=1.0) * 1.05 or 1.0
    dice_low = math.floor(min(finite_dice, default=0.0) * 10) / 10
    loss_box = (0, 24, width // 2, height)
    _panel(draw, font, loss_box, epochs, loss_series, (0.0, loss_top), "loss", legend_top=True)
    dice_box = (width // 2, 24, width, height)
    dice_range = (min(dice_low, 0.9), 1.0)
    _panel(draw, font, dice_box, epochs, dice_series, dice_range, "validation Dice", False)
    with atomic_write(Path(path)) as tmp:
        canvas.save(tmp, format="PNG")


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = high - low
    if span <= 0:
        return [low]
    raw = span / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * step:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _panel(
    draw: ImageDraw.ImageDraw,
    font: Any,
    box: tuple[int, int, int, int],
    epochs: list[float],
    series: dict[str, list[float]],
    y_range: tuple[float, float],
    name: str,
    legend_top: bool,
) -> None:
    x0, y0, x1, y1 = box[0] + 60, box[1] + 24, box[2] - 20, box[3] - 45
    draw.rectangle((x0, y0, x1, y1), outline="black")
    draw.text(((x0 + x1) // 2, y0 - 4), name, fill="black", font=font, anchor="md")
    draw.text(((x0 + x1) // 2, y1 + 26), "epoch", fill="black", font=font, anchor="ma")
    e_low, e_high = (min(epochs), max(epochs)) if epochs else (0.0, 1.0)
    if e_high == e_low:
        e_low, e_high = e_low - 0.5, e_high + 0.5
    low, high = y_range

    def to_xy(epoch: float, value: float) -> tuple[float, float]:
        fx = (epoch - e_low) / (e_high - e_low)
        fy = (min(max(value, low), high) - low) / (high - low)
        return x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)

    for tick in _ticks(low, high):
        _, ty = to_xy(e_low, tick)
        draw.line((x0 - 4, ty, x0, ty), fill="black")
        draw.line((x0 + 1, ty, x1 - 1, ty), fill=(230, 230, 230))
        draw.text((x0 - 7, ty), f"{tick:.3g}", fill="black", font=font, anchor="rm")
    for tick in _ticks(e_low, e_high, 6):
        if tick == int(tick):
            tx, _ = to_xy(tick, low)
            draw.line((tx, y1, tx, y1 + 4), fill="black")
            draw.text((tx, y1 + 6), str(int(tick)), fill="black", font=font, anchor="ma")
    for i, (label, values) in enumerate(series.items()):
        color = _COLORS[i % len(_COLORS)]
        points = [to_xy(e, v) for e, v in zip(epochs, values, strict=True) if math.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        for px, py in points if len(points) <= 60 else []:
            draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=color)
        ly = y0 + 14 + 18 * i if legend_top else y1 - 14 - 18 * (len(series) - 1 - i)
        draw.line((x1 - 150, ly, x1 - 125, ly), fill=color, width=3)
        draw.text((x1 - 118, ly), label, fill="black", font=font, anchor="lm")
