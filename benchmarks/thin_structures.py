"""What helps thin structures (the clavicles): short phantom trainings, one change at a time.

Every variant trains the same U-Net on the same phantoms (``--train`` training and ``--val``
validation cases, drawn at 256 px) for the same number of epochs, from the same seed, and
reports its best validation Dice per structure and its training time. The variants:

- ``baseline``: the default recipe at ``--size`` (128 px), a fixed cosine over the epochs;
- ``size256``: the input size picked from the thinnest structure (the clavicle shaft is about
  2 px thick at 128 px and 4 px at 256 px);
- ``weights``: the loss weighs the clavicle channels 3x;
- ``deep``: deep supervision (auxiliary heads on the coarser decoder levels);
- ``batch8``: a larger batch (8 instead of 4), the same epochs;
- ``converging``: the default schedule and stop rule instead of ``--epochs`` (at most 300).

The U-Net is the default one with ``--base`` (8) channels, so that all five fit in half an
hour of one shared core. Run::

    OMP_NUM_THREADS=1 python benchmarks/thin_structures.py --out /tmp/thin

It prints a Markdown table; docs/training.md quotes it with the command.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from cxrseg.data import discover, make_splits
from cxrseg.phantom import write_phantom_dataset
from cxrseg.training import TrainConfig, train

CLAVICLES = ("left_clavicle", "right_clavicle")
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "weights": {"class_weights": [1.0, 1.0, 1.0, 3.0, 3.0]},
    "deep": {"deep_supervision": True},
    "batch8": {"batch_size": 8},
    "size256": {"size": 256},
    "converging": {"schedule": "plateau", "patience": None, "epochs": 300},
}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=32)
    parser.add_argument("--val", type=int, default=12)
    parser.add_argument("--base", type=int, default=8, help="U-Net base channels")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    return parser.parse_args()


def main() -> None:
    args = parse()
    torch.set_num_threads(1)
    data = args.out / "phantoms"
    if not (data / "dataset.json").is_file():
        write_phantom_dataset(data, args.train + args.val, size=256, seed=args.seed)
    ids = discover(data).case_ids
    splits = make_splits(ids, seed=args.seed, val_fraction=args.val / len(ids), test_fraction=0)
    splits_file = args.out / "splits.json"
    splits_file.write_text(json.dumps(splits.to_dict()) + "\n", encoding="utf-8")
    rows = [run(args, data, splits_file, name) for name in args.variants]
    (args.out / "results.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print_table(rows, args)


def run(args: argparse.Namespace, data: Path, splits: Path, name: str) -> dict[str, Any]:
    """Train one variant (or read its finished run) and return its row."""
    out = args.out / name
    record = out / "row.json"
    if record.is_file():
        return json.loads(record.read_text(encoding="utf-8"))
    change = dict(VARIANTS[name])
    model = {"depth": 5, "base_channels": args.base,
             "deep_supervision": change.pop("deep_supervision", False)}  # fmt: skip
    options = {"size": args.size, "epochs": args.epochs, "batch_size": 4, "patience": 0,
               "schedule": "cosine", "seed": args.seed, "device": "cpu", "workers": 0,
               "model_kwargs": model, **change}  # fmt: skip
    start = time.perf_counter()
    result = train(data, out, TrainConfig(**options), splits=splits)
    row = {
        "variant": name,
        "minutes": (time.perf_counter() - start) / 60,
        "best_epoch": result.best_epoch,
        **{f"dice_{k}": v for k, v in result.best_dice.items()},
        "dice_clavicles": sum(result.best_dice[k] for k in CLAVICLES) / 2,
    }
    record.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return row


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"{args.train} training / {args.val} validation phantoms, {args.epochs} epochs, "
          f"seed {args.seed}; best validation Dice")  # fmt: skip
    print("| variant | clavicles | lungs | heart | minutes |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        lungs = (r["dice_left_lung"] + r["dice_right_lung"]) / 2
        print(f"| {r['variant']} | {r['dice_clavicles']:.4f} | {lungs:.4f} | "
              f"{r['dice_heart']:.4f} | {r['minutes']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
