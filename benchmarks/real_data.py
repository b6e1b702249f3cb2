"""Real radiographs: the default recipe trained on Montgomery, Shenzhen and both, tested held out.

Not a test. For each training set (``montgomery``, ``shenzhen``, ``both``) the script trains
the default ``cxrseg train`` recipe (:class:`cxrseg.training.TrainConfig` defaults: U-Net depth
5, base 12, Dice + CE, AdamW with a cosine schedule, the default augmentation) at 256 px
(``--mode cpu``) or 512 px (``--mode gpu``), predicts the held-out test cases of each set it
trained on with the post-processing chosen on validation, evaluates them with
:func:`cxrseg.evaluation.evaluate`, and prints one row per (training set, test set) beside the
published U-Net figures (lungs, held-out test, 512 px): Dice 0.982 on Montgomery and about
0.955-0.96 on Shenzhen.

Splits are seeded and saved once per set (``OUT/splits/<set>.json``: 20 % test, 15 %
validation); ``both`` trains on the union of the two training parts and is tested on each
set's own test part, the very cases the single-set models are tested on. Metrics are computed
at the images' 512 x 512 size (predictions are restored to it); HD95 is in pixels.

The time budget (``--minutes-per-set``) sets the number of epochs: a few timed training steps
of the recipe's model on this machine give the seconds per epoch, and the epochs are the
recipe's (``TrainConfig().epochs``) or as many as fit, whichever is fewer (``--epochs``
forces a number). An interrupted set resumes from its ``last/`` checkpoint; a finished set is
read back from ``OUT/<set>/result.json``.

CPU (about 30 minutes per set on 2 cores)::

    .venv/bin/python benchmarks/real_data.py --mode cpu --sets montgomery,shenzhen,both

GPU (512 px)::

    python benchmarks/real_data.py --mode gpu --out runs/real-gpu

Smoke run (minutes)::

    .venv/bin/python benchmarks/real_data.py --sets montgomery --minutes-per-set 2 --out /tmp/rd

Five-fold cross-validation of each set instead (``benchmarks/real_data_cv.py``; 60 minutes of
fold budgets in all, one thread)::

    .venv/bin/python benchmarks/real_data.py --folds 5 --minutes 60 --threads 1 --out runs/real-cv
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
SETS = ("montgomery", "shenzhen")
PUBLISHED = {"montgomery": "0.982", "shenzhen": "0.955-0.96"}
#: Training size and device of each ``--mode``.
MODES: dict[str, tuple[int, str]] = {"cpu": (256, "cpu"), "gpu": (512, "cuda")}
TEST_FRACTION = 0.2


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder holding montgomery/ and shenzhen/"
    )
    parser.add_argument(
        "--mode",
        choices=sorted(MODES),
        default="cpu",
        help="cpu: 256 px on the CPU; gpu: 512 px on CUDA",
    )
    parser.add_argument(
        "--sets",
        default=None,
        help="training sets, comma-separated: montgomery, shenzhen, both (default: all; "
        "with --folds: montgomery,shenzhen)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/real"))
    parser.add_argument(
        "--minutes-per-set",
        type=float,
        default=30.0,
        help="training time budget per set (sets the epochs)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="force the epochs")
    parser.add_argument(
        "--folds", type=int, default=None, help="cross-validate each set with K folds instead"
    )
    parser.add_argument(
        "--minutes", type=float, default=60.0, help="--folds: budget of all folds of all sets"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> int:
    args = parse()
    if args.sets is None:
        args.sets = ",".join(SETS) if args.folds is not None else "montgomery,shenzhen,both"
    wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in (*SETS, "both")]
    if args.folds is not None and "both" in wanted:
        unknown.append("both (not with --folds)")
    if unknown or not wanted:
        print(f"--sets {args.sets!r}: use montgomery, shenzhen and/or both", file=sys.stderr)
        return 2
    missing = [s for s in SETS if not (args.data / s / "images").is_dir()]
    if missing:
        print(
            f"skipped: no {', '.join(missing)} under {args.data} (the real data folder is "
            "not part of the project; pass --data DIR)",
            file=sys.stderr,
        )
        return 0
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mode == "gpu" and not torch.cuda.is_available():
        print("--mode gpu needs a CUDA GPU; use --mode cpu", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    if args.folds is not None:
        from real_data_cv import run_cv

        return run_cv(args, wanted)
    splits = {name: make_set_splits(args, name) for name in SETS}
    rows: list[dict[str, Any]] = []
    for name in wanted:
        rows += run_set(args, name, splits)
        print_table(rows)
    write_results(args, rows)
    return 0


# --- data and splits ----------------------------------------------------------------------


def make_set_splits(args: argparse.Namespace, name: str) -> Any:
    """The seeded train/val/test split of one set, saved in OUT/splits/<set>.json."""
    from cxrseg.data import discover, load_or_create_splits
    from cxrseg.training import TrainConfig

    val = TrainConfig().val_fraction
    ids = discover(args.data / name).case_ids
    return load_or_create_splits(
        args.out / "splits" / f"{name}.json",
        ids,
        seed=args.seed,
        val_fraction=val,
        test_fraction=TEST_FRACTION,
    )


def training_data(args: argparse.Namespace, name: str, splits: dict[str, Any]) -> tuple[Path, Path]:
    """The dataset folder and splits file of a training set; ``both`` links the two sets."""
    if name != "both":
        return args.data / name, args.out / "splits" / f"{name}.json"
    folder = args.out / "both-data"
    for part in SETS:
        for sub in ("images", "masks"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            for path in sorted((args.data / part / sub).iterdir()):
                link = folder / sub / path.name
                if not link.exists():
                    link.symlink_to(path.resolve())
    union = [splits[s] for s in SETS]
    train = [i for s in union for i in s.train]
    val = [i for s in union for i in s.val]
    both = replace(
        union[0],
        train=train,
        val=val,
        test=[i for s in union for i in s.test],
        folds=[(train, val)],
    )
    path = args.out / "splits" / "both.json"
    path.write_text(json.dumps(both.to_dict(), indent=1) + "\n", encoding="utf-8")
    return folder, path


# --- one training set ---------------------------------------------------------------------


def recipe(args: argparse.Namespace, n_train: int, n_val: int) -> tuple[Any, str]:
    """The default recipe at the mode's size, with the epochs that fit the budget."""
    from cxrseg.training import TrainConfig

    size, device = MODES[args.mode]
    config = TrainConfig(size=size, device=device, test_fraction=TEST_FRACTION, seed=args.seed)
    if args.epochs:
        return config.replace(epochs=args.epochs), f"{args.epochs} epochs (--epochs)"
    epoch_s, batch = seconds_per_epoch(config, n_train, n_val)
    fit = max(1, math.floor(args.minutes_per_set * 60 * 0.9 / epoch_s))
    epochs = min(config.epochs, fit)
    why = (
        f"about {epoch_s:.0f} s per epoch (batch {batch}) -> {fit} fit in "
        f"{args.minutes_per_set:g} min; recipe {config.epochs}"
    )
    return config.replace(epochs=epochs, batch_size=batch), why


def seconds_per_epoch(config: Any, n_train: int, n_val: int) -> tuple[float, int]:
    """Time a few training steps of the recipe's model on random batches of its size."""
    import torch

    from cxrseg.losses import SegmentationLoss
    from cxrseg.models import create_model
    from cxrseg.training.defaults import amp_dtype, pick_batch_size, pick_device

    device = pick_device(config.device)
    batch, _ = pick_batch_size(config, config.size, device, n_train)
    model = create_model(config.model, in_channels=1, num_classes=1, **config.model_kwargs)
    model.to(device).train()
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    loss_fn = SegmentationLoss(mode="sigmoid", kind=config.loss).to(device)
    images = torch.randn(batch, 1, config.size, config.size, device=device)
    target = (torch.rand(batch, 1, config.size, config.size, device=device) > 0.5).float()
    dtype = amp_dtype(config, device)  # bfloat16 on CUDA and on CPUs with native bfloat16

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = loss_fn(model(images).float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start, count = time.perf_counter(), 3
    for _ in range(count):
        step()
    sync()
    per_step = (time.perf_counter() - start) / count
    steps = math.ceil(n_train / batch) + math.ceil(n_val / batch) / 3  # validation: forward only
    return per_step * steps * 1.1, batch  # 10 %: data loading, augmentation, checkpoints


def run_set(args: argparse.Namespace, name: str, splits: dict[str, Any]) -> list[dict[str, Any]]:
    """Train on one set (or resume / read back), then test on each set it trained on."""
    from cxrseg.training import train

    folder = args.out / name
    done = folder / "result.json"
    if done.is_file():
        print(f"{name}: finished earlier, read back from {done}", file=sys.stderr)
        return list(json.loads(done.read_text(encoding="utf-8"))["rows"])
    data, splits_file = training_data(args, name, splits)
    tested = SETS if name == "both" else (name,)
    n_train = sum(len(splits[s].train) for s in tested)
    n_val = sum(len(splits[s].val) for s in tested)
    run = folder / "run"
    resume = (run / "last" / "resume.json").is_file()
    if resume:
        from cxrseg.training import TrainConfig

        config, why = TrainConfig.from_yaml(run / "config.yaml"), "as saved"
    else:
        config, why = recipe(args, n_train, n_val)
    print(
        f"{name}: {n_train} train / {n_val} val, {config.size} px, {config.epochs} epochs "
        f"({why}){', resuming' if resume else ''}",
        file=sys.stderr,
    )

    def report(event: dict[str, Any]) -> None:
        if event["event"] == "epoch":
            line = f"{event['epoch']}/{event['epochs']}: val Dice {event['val_dice_mean']:.4f}"
            print(f"  epoch {line} ({event['epoch_s']:.0f} s)", file=sys.stderr)

    start = time.perf_counter()
    result = train(
        data, run, None if resume else config, splits=splits_file, resume=resume, on_event=report
    )
    minutes = (time.perf_counter() - start) / 60
    trained = sum(float(row["epoch_s"]) for row in result.history) / 60
    rows = [
        {
            "train": name,
            "test": test,
            **test_set(args, name, test, splits[test]),
            "n_train": n_train,
            "n_val": n_val,
            "epochs": result.epoch,
            "size": config.size,
            "train_minutes": trained,
            "wall_minutes": minutes,
            "device": args.mode,
            "published_dice": PUBLISHED[test],
        }
        for test in tested
    ]
    done.write_text(json.dumps({"rows": rows}, indent=1) + "\n", encoding="utf-8")
    return rows


def test_set(args: argparse.Namespace, name: str, test: str, split: Any) -> dict[str, Any]:
    """Predict the held-out cases of ``test`` with the best model of ``name``; evaluate."""
    from cxrseg.data import discover
    from cxrseg.evaluation import evaluate
    from cxrseg.inference import Predictor, predict_paths

    reference = discover(args.data / test)
    held_out = set(split.test)
    reference = replace(reference, cases=[c for c in reference.cases if c.case_id in held_out])
    device = MODES[args.mode][1]
    predictor = Predictor.from_checkpoint(args.out / name / "run", device=device)
    predictions = args.out / name / f"predictions-{test}"
    predict_paths(predictor, [case.image for case in reference.cases], predictions)
    result = evaluate(predictions, reference, args.out / name / f"evaluation-{test}")
    summary = result.summary[result.structures[0]]
    return {
        "n_test": len(result.cases),
        "dice": summary["dice"]["mean"],
        "dice_std": summary["dice"]["std"],
        "jaccard": summary["jaccard"]["mean"],
        "hd95_px": summary["hd95"]["median"],
        "report": str(result.report_path),
    }


# --- output -------------------------------------------------------------------------------

COLUMNS = (
    "train -> test",
    "n train/val/test",
    "size",
    "epochs",
    "Dice mean ± std",
    "Jaccard",
    "HD95 px (median)",
    "train min",
    "published Dice",
)


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = (
            f"{r['train']} -> {r['test']}",
            f"{r['n_train']}/{r['n_val']}/{r['n_test']}",
            str(r["size"]),
            str(r["epochs"]),
            f"{r['dice']:.4f} ± {r['dice_std']:.4f}",
            f"{r['jaccard']:.4f}",
            f"{r['hd95_px']:.1f}",
            f"{r['train_minutes']:.1f}",
            r["published_dice"],
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(table(rows), flush=True)


def write_results(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """OUT/results.json and OUT/results.md (table, command, machine)."""
    import torch

    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
        + (f", {torch.cuda.get_device_name()}" if args.mode == "gpu" else "")
    )
    command = "python benchmarks/real_data.py " + " ".join(sys.argv[1:])
    (args.out / "results.json").write_text(
        json.dumps({"command": command, "machine": machine, "rows": rows}, indent=1) + "\n",
        encoding="utf-8",
    )
    text = f"Command: `{command}`\n\nMachine: {machine}\n\n{table(rows)}\n"
    (args.out / "results.md").write_text(text, encoding="utf-8")
    print(f"\nwritten: {args.out / 'results.md'}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
