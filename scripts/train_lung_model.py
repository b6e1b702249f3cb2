"""Train, test and install the lung model shipped in cxrseg (``cxrseg predict --model lungs``).

This is the exact recipe of the shipped weights, kept so anyone can rebuild and check them.

1. ``OUT/data`` links the Montgomery and Shenzhen images and masks of ``--data`` into one
   dataset (case ids do not collide: ``MCUCXR_*`` and ``CHNCXR_*``) with a ``dataset.json`` that
   names the 0/255 masks ``lungs``. Nothing is copied and the shared folder is never written.
2. ``OUT/splits.json``: each set is split on its own with the seed, exactly as
   ``benchmarks/real_data.py`` does (20 % test, 15 % validation), and the parts are joined, so
   the model is tested on the same held-out cases as the benchmark's models.
3. The ``cxrseg train`` command printed on the console trains the model (the default recipe at
   256 px, 30 epochs unless ``--epochs`` says otherwise).
4. ``OUT/model`` is the best checkpoint with its post-processing settled on validation
   evidence only: the anatomical steps for two lungs (keep the two largest components, fill
   holes) are switched on where the run's validation report shows they did not lower Dice,
   even when they raised it by less than the 1e-4 that ``cxrseg train`` asks of a step before
   it keeps it (they remove islands such as a gastric bubble taken for lung).
5. The plausible ranges of the quality flags are learned from the training cases and stored in
   ``OUT/model/model.json`` (:func:`cxrseg.training.add_quality_ranges`).
6. That model predicts every held-out test case once; ``cxrseg.evaluation.evaluate`` scores
   each set's cases and both together at 512 x 512, and the table is printed and saved in
   ``OUT/results.json``.
7. ``--install`` copies the model into ``src/cxrseg/pretrained/lungs/`` with the measured
   figures in ``results.json`` next to it (the model card, ``MODEL_CARD.md``, quotes them).

Run (about 45-60 minutes on 2 CPU cores)::

    .venv/bin/python scripts/train_lung_model.py --out runs/lungs-model --install

An interrupted run goes on from its last epoch when the same command is given again.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
INSTALL_DIR = ROOT / "src" / "cxrseg" / "pretrained" / "lungs"
SETS = ("montgomery", "shenzhen")
TEST_FRACTION = 0.2
VAL_FRACTION = 0.15
LABELS = {"labels": {"background": 0, "lungs": 255}}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="has montgomery/, shenzhen/"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/lungs-model"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--base-channels", type=int, default=None, help="U-Net width (default 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--install", action="store_true", help="copy the model into the package")
    return parser.parse_args()


def main() -> int:
    args = parse()
    missing = [s for s in SETS if not (args.data / s / "images").is_dir()]
    if missing:
        print(f"{args.data}: no {', '.join(missing)} folder; point --data at them", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    data = link_data(args)
    splits = set_splits(args)
    run = args.out / "run"
    train(args, data, write_splits(args, splits), run)
    model = settle_model(args, run)
    quality_ranges(data, splits, model)
    rows = test_sets(args, data, model, splits)
    results = {
        "command": "python scripts/train_lung_model.py " + " ".join(sys.argv[1:]),
        "train_minutes": round(training_minutes(run), 1),
        "postprocessing": json.loads((model / "model.json").read_text("utf-8"))["postprocessing"],
        "rows": rows,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print_table(rows)
    if args.install:
        install(model, results)
    return 0


def link_data(args: argparse.Namespace) -> Path:
    """OUT/data: symbolic links to both sets' files, and a dataset.json naming the lungs."""
    folder = args.out / "data"
    for name in SETS:
        for sub in ("images", "masks"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            for path in sorted((args.data / name / sub).iterdir()):
                link = folder / sub / path.name
                if not link.exists():
                    link.symlink_to(path.resolve())
    (folder / "dataset.json").write_text(json.dumps(LABELS) + "\n", encoding="utf-8")
    return folder


def set_splits(args: argparse.Namespace) -> dict[str, Any]:
    """Each set's seeded split, as benchmarks/real_data.py makes it."""
    from cxrseg.data import discover, make_splits

    return {
        name: make_splits(
            discover(args.data / name).case_ids,
            seed=args.seed,
            val_fraction=VAL_FRACTION,
            test_fraction=TEST_FRACTION,
        )
        for name in SETS
    }


def write_splits(args: argparse.Namespace, splits: dict[str, Any]) -> Path:
    """OUT/splits.json: the union of the two sets' train, validation and test parts."""
    parts = list(splits.values())
    train = [i for s in parts for i in s.train]
    val = [i for s in parts for i in s.val]
    test = [i for s in parts for i in s.test]
    union = replace(parts[0], train=train, val=val, test=test, folds=[(train, val)])
    path = args.out / "splits.json"
    path.write_text(json.dumps(union.to_dict(), indent=1) + "\n", encoding="utf-8")
    return path


def train(args: argparse.Namespace, data: Path, splits: Path, run: Path) -> None:
    """Run ``cxrseg train`` (or resume it, or skip it when it finished)."""
    log = run / "train.log"
    lines = log.read_text(encoding="utf-8").split("\n") if log.is_file() else []
    last = next((line for line in reversed(lines) if line.strip()), "")
    if " end: " in last:  # a finished run's log ends "end: completed ..." (or early_stopping)
        print(f"{run}: finished earlier ({last.split(' end: ')[1]})", file=sys.stderr)
        return
    command = [
        "cxrseg", "train", str(data), "--out", str(run), "--size", str(args.size),
        "--epochs", str(args.epochs), "--seed", str(args.seed), "--splits", str(splits),
    ]  # fmt: skip
    if (run / "last" / "resume.json").is_file():
        command.append("--resume")
    elif args.base_channels:
        config = args.out / "train.yaml"
        config.write_text(f"model_kwargs:\n  base_channels: {args.base_channels}\n", "utf-8")
        command += ["--config", str(config)]
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    executable = Path(sys.executable).with_name("cxrseg")
    subprocess.run([str(executable), *command[1:]], check=True, env=env)


#: The anatomical post-processing steps for a structure holding both lungs.
ANATOMICAL = {"keep_components": 2, "fill_holes": True}


def settle_model(args: argparse.Namespace, run: Path) -> Path:
    """OUT/model: the best checkpoint, with the anatomical steps that never hurt validation."""
    folder = args.out / "model"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "best" / "model.safetensors", folder / "model.safetensors")
    meta = json.loads((run / "best" / "model.json").read_text(encoding="utf-8"))
    report = meta["postprocessing_report"]["structures"]["lungs"]
    config = dict(meta["postprocessing"]["lungs"])
    for step in report["steps"]:
        name = step["step"]
        if name in ANATOMICAL and step["dice_after"] >= step["dice_before"] and not step["worse"]:
            config[name] = ANATOMICAL[name]
    meta["postprocessing"] = {"lungs": config}
    meta["postprocessing_note"] = (
        "scripts/train_lung_model.py: anatomical steps (keep 2 components, fill holes) kept "
        "where they did not lower validation Dice"
    )
    (folder / "model.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(f"post-processing of the shipped model: {config}", file=sys.stderr)
    return folder


def quality_ranges(data: Path, splits: dict[str, Any], model: Path) -> None:
    """The plausible ranges of the quality flags, learned from the training cases of both sets.

    ``cxrseg train`` stores them in every checkpoint; this learns them again from the same
    cases (:func:`cxrseg.training.add_quality_ranges`), so a run made before it did has them.
    """
    from cxrseg.data import discover
    from cxrseg.training import add_quality_ranges

    train_ids = [case_id for split in splits.values() for case_id in split.train]
    ranges = add_quality_ranges(model, discover(data), train_ids)
    print(f"quality ranges learned from {ranges['n_cases']} training cases", file=sys.stderr)


def test_sets(
    args: argparse.Namespace, data: Path, model: Path, splits: dict[str, Any]
) -> list[dict[str, Any]]:
    """Predict every held-out case once; score each set's test cases and both together."""
    from cxrseg.data import discover
    from cxrseg.evaluation import evaluate
    from cxrseg.inference import Predictor, predict_paths

    held_out = {name: set(split.test) for name, split in splits.items()}
    held_out["all"] = set().union(*held_out.values())
    dataset = discover(data)
    cases = [case for case in dataset.cases if case.case_id in held_out["all"]]
    predictions = args.out / "predictions"
    predict_paths(Predictor.from_checkpoint(model), [case.image for case in cases], predictions)
    rows = []
    for name, ids in held_out.items():
        reference = replace(dataset, cases=[case for case in cases if case.case_id in ids])
        result = evaluate(predictions, reference, args.out / f"evaluation-{name}",
                          allow_missing=True)  # fmt: skip
        summary = result.summary["lungs"]
        rows.append(
            {
                "test": name,
                "n_test": len(result.cases),
                "dice_mean": summary["dice"]["mean"],
                "dice_median": summary["dice"]["median"],
                "dice_std": summary["dice"]["std"],
                "dice_p5": summary["dice"]["p05"],
                "jaccard_mean": summary["jaccard"]["mean"],
                "hd95_px_median": summary["hd95"]["median"],
            }
        )
    return rows


def training_minutes(run: Path) -> float:
    """The epochs' wall time, from the run's metrics.csv (resumed runs included)."""
    with (run / "metrics.csv").open(encoding="utf-8") as file:
        return sum(float(row["epoch_s"]) for row in csv.DictReader(file)) / 60


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| held-out test | n | Dice mean ± std | median | 5th pct | Jaccard | HD95 px (median) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['test']} | {r['n_test']} | {r['dice_mean']:.4f} ± {r['dice_std']:.4f} | "
            f"{r['dice_median']:.4f} | {r['dice_p5']:.4f} | {r['jaccard_mean']:.4f} | "
            f"{r['hd95_px_median']:.1f} |"
        )


def install(model: Path, results: dict[str, Any]) -> None:
    """Copy the model and the figures into src/cxrseg/pretrained/lungs/."""
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "model.json"):
        shutil.copyfile(model / name, INSTALL_DIR / name)
    (INSTALL_DIR / "results.json").write_text(json.dumps(results, indent=1) + "\n", "utf-8")
    print(f"installed in {INSTALL_DIR}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
