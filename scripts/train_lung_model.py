"""Train, test and install the lung model shipped in cxrseg (``cxrseg predict --model lungs``).

This is the exact recipe of the shipped weights (version 3), kept so anyone can rebuild and
check them. Version 1 (30 epochs, cosine, default augmentation) was shipped before; version 2
(fine-tuned from version 1) was a trial that was not shipped. docs/benchmarks.md ("The
shipped lung model") compares them.

1. ``OUT/data`` links the Montgomery and Shenzhen images and masks of ``--data`` into one
   dataset (case ids do not collide: ``MCUCXR_*`` and ``CHNCXR_*``) with a ``dataset.json`` that
   names the 0/255 masks ``lungs``. Nothing is copied and the shared folder is never written.
2. ``OUT/splits.json``: each set is split on its own with the seed, exactly as
   ``benchmarks/real_data.py`` does (20 % test, 15 % validation), and the parts are joined, so
   the model is tested on the same held-out cases as the benchmark's models and version 1.
3. ``OUT/train.yaml`` + the ``cxrseg train`` command printed on the console train the model
   at 256 px: ``--schedule plateau`` is the default recipe (the learning rate held until the
   smoothed validation Dice stops improving, then annealed), ``cosine`` decays it over all the
   epochs ``--time-budget`` affords (version 3). The augmentation (``--augmentation``,
   :data:`AUGMENTATIONS`) is the default geometry with intensity widened for lungs: stronger
   contrast and gamma, bright opacities so dense infiltrates stay lung, dark gas patches so a
   gastric bubble is not lung; ``dense`` (version 3) draws larger, more frequent opacities up
   to fully opaque. ``--init`` starts from another model's weights, ``--lr`` sets the peak
   learning rate.
4. ``OUT/model`` is the best checkpoint with its post-processing settled on validation
   evidence only (the anatomical steps for two lungs, keep the two largest components and fill
   holes, are switched on where the run's validation report shows they did not lower Dice).
5. The plausible ranges of the quality flags are learned from the training cases and stored in
   ``OUT/model/model.json`` (:func:`cxrseg.training.add_quality_ranges`).
6. That model predicts every held-out test case once; ``cxrseg.evaluation.evaluate`` scores
   each set's cases and both together at 512 x 512. ``OUT/results.json`` holds the figures
   (mean, std, median, 5th percentile Dice, Jaccard, HD95) beside those of the model installed
   when the run started (``OUT/previous_results.json``), and ``OUT/MODEL_CARD.md`` is written
   from them (``scripts/lung_model_card.py``).
7. ``--install`` copies ``model.safetensors``, ``model.json``, ``results.json`` and
   ``MODEL_CARD.md`` into ``src/cxrseg/pretrained/lungs/`` (the weights' LICENSE.md stays).

Run (the time budget covers the training; prediction and scoring take about 2 more minutes)::

    .venv/bin/python scripts/train_lung_model.py --out runs/lungs-v3o --threads 1 \\
        --schedule cosine --augmentation dense --time-budget 90m --install

An interrupted run goes on from its last epoch when the same command is given again (the
budget counts the time already spent); a finished run is not trained again.
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

import yaml

from cxrseg.training.config import default_augmentation

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
INSTALL_DIR = ROOT / "src" / "cxrseg" / "pretrained" / "lungs"
SETS = ("montgomery", "shenzhen")
TEST_FRACTION = 0.2
VAL_FRACTION = 0.15
LABELS = {"labels": {"background": 0, "lungs": 255}}
INSTALLED = ("model.safetensors", "model.json", "results.json", "MODEL_CARD.md")
#: The shipped model's version that this recipe makes (version 2 was a trial, not shipped).
MODEL_VERSION = 3

#: What the lung model adds to the default augmentation's geometry: intensity widened for
#: lungs, opacities that stay lung and dark gas-like patches.
BRIGHT_OPACITY: dict[str, Any] = {
    "op": "opacity", "probability": 0.35, "min_level": 0.6, "max_level": 0.95,
    "max_amount": 0.9, "min_radius": 0.05, "max_radius": 0.2, "max_count": 3,
}  # fmt: skip
LUNG_INTENSITY: list[dict[str, Any]] = [
    BRIGHT_OPACITY,
    {"op": "opacity", "probability": 0.2, "min_level": 0.0, "max_level": 0.15,
     "max_amount": 0.8, "min_radius": 0.03, "max_radius": 0.08, "max_count": 2},
    {"op": "brightness", "probability": 0.5, "min_factor": 0.8, "max_factor": 1.2},
    {"op": "contrast", "probability": 0.5, "min_factor": 0.65, "max_factor": 1.4},
    {"op": "gamma", "probability": 0.5, "min_gamma": 0.65, "max_gamma": 1.6},
    {"op": "blur", "probability": 0.15, "min_sigma": 0.5, "max_sigma": 1.5},
    {"op": "gaussian_noise", "probability": 0.15, "min_std": 0.0, "max_std": 0.03},
]  # fmt: skip
_INTENSITY_OPS = {"brightness", "contrast", "gamma", "blur", "gaussian_noise", "opacity"}
#: Denser opacities: more often, larger (up to 0.3 of the side, most of a lung), more of
#: them, and up to fully opaque, for COVID-19/ARDS-like films and white-outs.
DENSE_OPACITY: dict[str, Any] = {
    "op": "opacity", "probability": 0.6, "min_level": 0.55, "max_level": 0.95,
    "max_amount": 1.0, "min_radius": 0.05, "max_radius": 0.3, "max_count": 4,
}  # fmt: skip


def lung_augmentation(dense: bool = False) -> dict[str, Any]:
    """The default augmentation's geometric operations, then :data:`LUNG_INTENSITY`.

    ``dense`` replaces its :data:`BRIGHT_OPACITY` by :data:`DENSE_OPACITY`.
    """
    geometry = [op for op in default_augmentation()["operations"]
                if op["op"] not in _INTENSITY_OPS]  # fmt: skip
    bright = DENSE_OPACITY if dense else BRIGHT_OPACITY
    intensity = [bright if op is BRIGHT_OPACITY else op for op in LUNG_INTENSITY]
    return {"operations": [*geometry, *intensity]}


#: The augmentations the lung model can train with (``--augmentation``).
AUGMENTATIONS: dict[str, dict[str, Any] | None] = {
    "lung": lung_augmentation(),
    "dense": lung_augmentation(dense=True),
    "default": None,  # cxrseg train's own
}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="has montgomery/, shenzhen/"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/lungs-model"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--time-budget", default=None, help="training wall clock: 1h, 50m, ...")
    parser.add_argument("--epochs", type=int, default=None, help="cap (default: the recipe's)")
    parser.add_argument("--base-channels", type=int, default=None, help="U-Net width (default 12)")
    parser.add_argument("--init", default=None, help="start from this checkpoint folder")
    parser.add_argument(
        "--schedule",
        default="plateau",
        choices=("plateau", "cosine", "poly"),
        help="plateau: train until validation stops improving; cosine/poly: decay over the "
        "whole --time-budget (or --epochs), no early stop",
    )
    parser.add_argument(
        "--augmentation",
        default="lung",
        choices=tuple(AUGMENTATIONS),
        help="lung: the default geometry plus LUNG_INTENSITY; dense: the same with "
        "DENSE_OPACITY; default: cxrseg train's own",
    )
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
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
    previous = keep_previous(args)
    data = link_data(args)
    splits = set_splits(args)
    run = args.out / "run"
    train(args, data, write_splits(args, splits), run)
    model = settle_model(args, run)
    quality_ranges(data, splits, model)
    rows = test_sets(args, data, model, splits)
    results = describe(args, run, model, rows, previous)
    write_outputs(args, model, results)
    print_table(rows, previous)
    if args.install:
        install(args.out / "model")
    return 0


def keep_previous(args: argparse.Namespace) -> dict[str, Any]:
    """OUT/previous_results.json: the installed model's figures, saved once at the first run."""
    saved = args.out / "previous_results.json"
    if not saved.is_file():
        shutil.copyfile(INSTALL_DIR / "results.json", saved)
    return json.loads(saved.read_text(encoding="utf-8"))


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
    if " end: " in last:  # a finished run's log ends "end: <why> at epoch ..."
        print(f"{run}: finished earlier ({last.split(' end: ')[1]})", file=sys.stderr)
        return
    command = ["cxrseg", "train", str(data), "--out", str(run), "--splits", str(splits)]
    if (run / "last" / "resume.json").is_file():
        command.append("--resume")
    else:
        command += ["--config", str(write_config(args))]
        if args.init:
            command += ["--init", str(args.init)]
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    executable = Path(sys.executable).with_name("cxrseg")
    subprocess.run([str(executable), *command[1:]], check=True, env=env)


def write_config(args: argparse.Namespace) -> Path:
    """OUT/train.yaml: the recipe's options that differ from ``cxrseg train``'s defaults."""
    options: dict[str, Any] = {"size": args.size, "seed": args.seed}
    if AUGMENTATIONS[args.augmentation] is not None:
        options["augmentation"] = AUGMENTATIONS[args.augmentation]
    if args.schedule != "plateau":  # a fixed decay runs to its end: no early stop
        options.update(schedule=args.schedule, patience=0)
    if args.time_budget:
        options["time_budget"] = args.time_budget
    if args.epochs:
        options["epochs"] = args.epochs
    if args.lr:
        options["lr"] = args.lr
    if args.base_channels:
        options["model_kwargs"] = {"base_channels": args.base_channels}
    path = args.out / "train.yaml"
    path.write_text(yaml.safe_dump(options, sort_keys=False), encoding="utf-8")
    return path


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
        name, value = step["step"], step["value"]
        anatomical = ANATOMICAL.get(name) == value
        if anatomical and step["dice_after"] >= step["dice_before"] and not step["worse"]:
            config[name] = value
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
    if predictions.exists():  # a model from an earlier try: predict again
        shutil.rmtree(predictions)
    predict_paths(Predictor.from_checkpoint(model), [case.image for case in cases], predictions)
    rows = []
    for name, ids in held_out.items():
        reference = replace(dataset, cases=[case for case in cases if case.case_id in ids])
        target = args.out / f"evaluation-{name}"
        shutil.rmtree(target, ignore_errors=True)
        result = evaluate(predictions, reference, target, allow_missing=True)
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
                "hd95_px_mean": summary["hd95"]["mean"],
            }
        )
    return rows


def describe(
    args: argparse.Namespace,
    run: Path,
    model: Path,
    rows: list[dict[str, Any]],
    previous: dict[str, Any],
) -> dict[str, Any]:
    """The content of results.json: command, how training went, figures, the old figures."""
    meta = json.loads((model / "model.json").read_text(encoding="utf-8"))
    lines = (run / "train.log").read_text(encoding="utf-8").strip().splitlines()
    history = read_history(run)
    return {
        "version": 2,
        "model_version": MODEL_VERSION,
        "command": "python scripts/train_lung_model.py " + " ".join(sys.argv[1:]),
        "init": Path(args.init).name if args.init else None,
        "train_minutes": round(sum(r["epoch_s"] for r in history) / 60, 1),
        "epochs": len(history),
        "best_epoch": meta["epoch"],
        "val_dice": meta["metrics"]["val_dice_mean"],
        "stopped": lines[-1].split(" end: ", 1)[-1] if lines else "",
        "config": meta["config"],
        "postprocessing": meta["postprocessing"],
        "weights_mb": round((model / "model.safetensors").stat().st_size / 2**20, 1),
        "rows": rows,
        "previous": {"command": previous.get("command"), "rows": previous.get("rows", [])},
    }


def read_history(run: Path) -> list[dict[str, float]]:
    """The run's metrics.csv as floats (resumed runs included)."""
    with (run / "metrics.csv").open(encoding="utf-8") as file:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(file)]


def write_outputs(args: argparse.Namespace, model: Path, results: dict[str, Any]) -> None:
    """OUT/model/results.json and OUT/model/MODEL_CARD.md (also OUT/results.json)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from lung_model_card import model_card

    text = json.dumps(results, indent=1) + "\n"
    for path in (model / "results.json", args.out / "results.json"):
        path.write_text(text, encoding="utf-8")
    (model / "MODEL_CARD.md").write_text(model_card(results), encoding="utf-8")


def print_table(rows: list[dict[str, Any]], previous: dict[str, Any]) -> None:
    old = {r["test"]: r["dice_mean"] for r in previous.get("rows", [])}
    print("| held-out test | n | Dice mean ± std | median | 5th pct | HD95 px (median) | old |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['test']} | {r['n_test']} | {r['dice_mean']:.4f} ± {r['dice_std']:.4f} | "
            f"{r['dice_median']:.4f} | {r['dice_p5']:.4f} | {r['hd95_px_median']:.1f} | "
            f"{old.get(r['test'], float('nan')):.4f} |"
        )


def install(model: Path) -> None:
    """Copy the model, its figures and its card into src/cxrseg/pretrained/lungs/."""
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    for name in INSTALLED:
        shutil.copyfile(model / name, INSTALL_DIR / name)
    print(f"installed in {INSTALL_DIR}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
