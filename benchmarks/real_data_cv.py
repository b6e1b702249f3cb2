"""K-fold cross-validation of the default recipe on Montgomery and Shenzhen (``--folds``).

Each set is cross-validated on its own with ``cxrseg train DATA --out OUT/cv-<set> --folds K``
(:func:`cxrseg.crossval.train_folds`): the default recipe at the mode's size, every case
predicted once by the fold model that did not train on it, scored at the images' 512 x 512
size. The table puts the out-of-fold Dice beside the published U-Net figures (held-out test,
512 px: 0.982 Montgomery, 0.955-0.96 Shenzhen) and beside the previously shipped ``lungs``
model's held-out figures (0.9748 Montgomery, 0.9570 Shenzhen).

The total budget (``--minutes``) is shared among all folds of all sets in proportion to
``cases ** 0.75`` (an epoch costs in proportion to the cases, but a small set needs more epochs
per case), so Montgomery (111 cases) and Shenzhen (453) folds get about 3 and 9 minutes of a
60-minute budget. Each fold fits its training to its budget with the recipe's time budget
(``time_budget``), or, with a cxrseg that has none, with the epochs a timed step says fit.

Rerunning the command continues where it stopped (finished folds are skipped, an interrupted
fold resumes) and prints the table; ``OUT/results-cv.md`` and ``.json`` hold it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

SETS = ("montgomery", "shenzhen")
PUBLISHED = {"montgomery": "0.982", "shenzhen": "0.955-0.96"}
OLD_SHIPPED = {"montgomery": 0.9748, "shenzhen": 0.9570}
#: Exponent of the set size in the budget shares.
WEIGHT_POWER = 0.75


def fold_minutes(args: argparse.Namespace, sizes: dict[str, int]) -> dict[str, float]:
    """Minutes per fold of each set: the budget shared in proportion to ``cases ** 0.75``."""
    weights = {name: n**WEIGHT_POWER for name, n in sizes.items()}
    total = sum(weights.values())
    return {name: args.minutes * w / total / args.folds for name, w in weights.items()}


def run_cv(args: argparse.Namespace, wanted: list[str]) -> int:
    """Cross-validate each wanted set; print and write the table."""
    from cxrseg.data import discover

    # shares of both sets, so that `--sets montgomery` gives the folds the budget of the full run
    sizes = {name: len(discover(args.data / name).cases) for name in SETS}
    minutes = fold_minutes(args, sizes)
    rows = []
    for name in wanted:
        rows.append(cv_set(args, name, minutes[name]))
        print(table(rows), flush=True)
    write(args, rows)
    return 0


def cv_config(args: argparse.Namespace, name: str, minutes: float) -> tuple[Any, dict[str, Any]]:
    """The default recipe at the mode's size, fitted to ``minutes`` per fold."""
    from real_data import MODES, recipe

    from cxrseg.training import TrainConfig

    size, device = MODES[args.mode]
    config = TrainConfig(size=size, device=device, seed=args.seed)
    if args.epochs:
        return config.replace(epochs=args.epochs), {"budget": f"{args.epochs} epochs"}
    if "time_budget" in config.to_dict():
        budget = round(minutes * 60)
        return config.replace(time_budget=budget), {"budget": f"{minutes:.1f} min (time_budget)"}
    from cxrseg.data import discover

    n = len(discover(args.data / name).cases)
    per_fold_train = n - n // args.folds
    fitted, why = recipe(_Minutes(args, minutes), per_fold_train, n // args.folds)
    return fitted.replace(test_fraction=0.0), {"budget": f"{minutes:.1f} min ({why})"}


class _Minutes(argparse.Namespace):
    """``args`` with ``minutes_per_set`` set to one fold's minutes, for ``recipe``."""

    def __init__(self, args: argparse.Namespace, minutes: float):
        super().__init__(**{**vars(args), "minutes_per_set": minutes, "epochs": None})


def cv_set(args: argparse.Namespace, name: str, minutes: float) -> dict[str, Any]:
    """Cross-validate one set (or continue it); return its table row."""
    from cxrseg.crossval import train_folds
    from cxrseg.training import TrainConfig

    out = args.out / f"cv-{name}"
    config, info = cv_config(args, name, minutes)
    if (out / "config.yaml").is_file():
        config = TrainConfig.from_yaml(out / "config.yaml")  # as started
        if config.time_budget:
            minutes = config.time_budget / 60
            info = {"budget": f"{minutes:.1f} min (time_budget, as started)"}
    print(f"{name}: {args.folds} folds, {info['budget']} per fold -> {out}", file=sys.stderr)

    def report(event: dict[str, Any]) -> None:
        if event["event"] == "fold":
            print(f"  fold {event['fold']}: {event['status']}", file=sys.stderr, flush=True)
        elif event["event"] == "epoch":
            print(f"    epoch {event['epoch']}: val Dice {event['val_dice_mean']:.4f} "
                  f"({event['epoch_s']:.0f} s)", file=sys.stderr, flush=True)  # fmt: skip

    start = time.perf_counter()
    record = train_folds(args.data / name, out, config, folds=args.folds, on_event=report).record
    structure = record["structures"][0]
    stats = record["summary"][structure]
    folds = record["fold_results"]
    epochs = [f["epoch"] for f in folds]
    trained = []
    for k in range(record["k"]):
        with open(out / f"fold_{k}" / "metrics.csv", encoding="utf-8") as handle:
            last = list(csv.DictReader(handle))[-1]
        trained.append(float(last["elapsed_s"]) / 60)
    fold_dice = record["fold_dice"][structure]
    return {
        "set": name, "k": record["k"], "n": record["n_cases"], "size": config.size,
        "budget": info["budget"], "minutes_per_fold": minutes,
        "epochs": f"{min(epochs)}-{max(epochs)}" if min(epochs) != max(epochs) else str(epochs[0]),
        "train_minutes": sum(trained), "wall_minutes": (time.perf_counter() - start) / 60,
        "dice": stats["dice"]["mean"], "dice_std": stats["dice"]["std"],
        "fold_dice_min": min(fold_dice), "fold_dice_max": max(fold_dice),
        "jaccard": stats["jaccard"]["mean"], "hd95_px": stats["hd95"]["median"],
        "postprocessing": record["postprocessing"],
        "published": PUBLISHED[name], "old_shipped": OLD_SHIPPED[name],
    }  # fmt: skip


COLUMNS = ("set", "folds", "cases", "size", "budget per fold", "epochs per fold",
           "CV Dice mean ± sd", "fold means", "Jaccard", "HD95 px (median)", "train min",
           "published Dice", "old shipped model (held out)")  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = (
            r["set"], str(r["k"]), str(r["n"]), str(r["size"]), r["budget"], r["epochs"],
            f"{r['dice']:.4f} ± {r['dice_std']:.4f}",
            f"{r['fold_dice_min']:.4f}-{r['fold_dice_max']:.4f}", f"{r['jaccard']:.4f}",
            f"{r['hd95_px']:.1f}", f"{r['train_minutes']:.1f}", r["published"],
            f"{r['old_shipped']:.4f}",
        )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """OUT/results-cv.json and OUT/results-cv.md (table, command, machine)."""
    import os
    import platform

    import torch

    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
               f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    command = "python benchmarks/real_data.py " + " ".join(sys.argv[1:])
    record = {"command": command, "machine": machine, "rows": rows}
    (args.out / "results-cv.json").write_text(json.dumps(record, indent=1) + "\n", "utf-8")
    text = f"Command: `{command}`\n\nMachine: {machine}\n\n{table(rows)}\n"
    (args.out / "results-cv.md").write_text(text, encoding="utf-8")
    print(f"\nwritten: {Path(args.out) / 'results-cv.md'}", file=sys.stderr)
