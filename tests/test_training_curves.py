"""metrics.csv and curves.png of a run folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from cxrseg.training.curves import metric_columns, plot_curves, read_metrics_csv, write_metrics_csv

ROWS = [
    {"epoch": e, "train_loss": 1 / e, "val_loss": 1.5 / e, "val_dice_lungs": 1 - 0.3 / e,
     "val_dice_heart": 1 - 0.5 / e, "val_dice_mean": 1 - 0.4 / e, "lr": 1e-3, "epoch_s": 2.0,
     "elapsed_s": 2.0 * e}
    for e in range(1, 6)
]  # fmt: skip


def test_metrics_csv_round_trip(tmp_path: Path) -> None:
    columns = metric_columns(["lungs", "heart"])
    write_metrics_csv(tmp_path / "metrics.csv", ROWS, columns)
    rows = read_metrics_csv(tmp_path / "metrics.csv")
    assert list(rows[0]) == columns
    assert [r["val_dice_heart"] for r in rows] == [float(f"{1 - 0.5 / e:.6g}") for e in range(1, 6)]


def test_missing_values_are_written_empty_and_read_as_nan(tmp_path: Path) -> None:
    write_metrics_csv(tmp_path / "m.csv", [{"epoch": 1, "train_loss": 0.5}], metric_columns(["a"]))
    (row,) = read_metrics_csv(tmp_path / "m.csv")
    assert row["train_loss"] == 0.5 and math.isnan(row["val_loss"])


def test_curves_png_draws_both_panels(tmp_path: Path) -> None:
    plot_curves(tmp_path / "curves.png", ROWS, ["lungs", "heart"], title="run")
    image = Image.open(tmp_path / "curves.png")
    assert image.format == "PNG" and image.size == (1000, 420)
    pixels = set(map(tuple, np.asarray(image.convert("RGB")).reshape(-1, 3).tolist()))
    assert (31, 119, 180) in pixels and (255, 127, 14) in pixels  # first two series colours


def test_curves_of_a_single_epoch_still_render(tmp_path: Path) -> None:
    plot_curves(tmp_path / "one.png", ROWS[:1], ["lungs"])
    assert Image.open(tmp_path / "one.png").size == (1000, 420)
