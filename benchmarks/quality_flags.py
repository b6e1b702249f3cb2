"""Quality flags: how often real held-out chest films are flagged, and non-chest inputs are not.

Not a test. The shipped lung model (or ``--model``) predicts:

* the held-out test cases of Montgomery and Shenzhen (``../shared/data``), split as
  ``benchmarks/real_data.py`` and ``scripts/train_lung_model.py`` split them (seed 0, 15 %
  validation, 20 % test per set): the model never saw them;
* inputs that are not chest radiographs or are broken, made here from those held-out films or
  from nothing: an elongated limb-like image, the same limb on a square canvas, a CT-like axial
  slice, a blank image, uniform noise, an inverted film, a film rotated by 90 degrees, a tiny
  crop of a film.

It prints, per kind of input, how many cases got at least one flag and which codes came up.
With ``--learn`` the ranges are learned here from the two sets' training parts
(:func:`cxrseg.training.learn_quality_ranges`) instead of read from the model.

Run (a few minutes on 2 CPU cores)::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/quality_flags.py
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from lung_sets import DEFAULT_DATA, sets_missing, split_sets  # benchmarks/lung_sets.py


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="has montgomery/, shenzhen/"
    )
    parser.add_argument("--model", default="lungs", help="shipped name or model path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-kind", type=int, default=20, help="inputs of each broken kind")
    parser.add_argument(
        "--learn", action="store_true", help="learn the ranges from the train parts"
    )
    return parser.parse_args()


def predictor(args: argparse.Namespace, parts: dict[str, Any]) -> Any:
    """The model; with ``--learn`` (or without stored ranges) ranges from both train parts."""
    from cxrseg.data import load_case
    from cxrseg.inference import Predictor
    from cxrseg.pretrained import resolve
    from cxrseg.quality import learn_ranges

    model = Predictor.from_checkpoint(resolve(args.model), device="cpu")
    if args.learn or model.info.quality is None:
        label = model.info.labels[0]  # each set names its one mask "foreground"
        samples = (
            (image, {label: next(iter(masks.values()))})
            for dataset, split in parts.values()
            for image, masks in (load_case(dataset.case(i), dataset) for i in split.train)
        )
        model.info = replace(model.info, quality=learn_ranges(samples))
    return model


# --- inputs ------------------------------------------------------------------------------


def held_out(parts: dict[str, Any]) -> Iterator[tuple[str, str, np.ndarray]]:
    from cxrseg.io import read_image

    for name, (dataset, split) in parts.items():
        for case_id in split.test:
            yield f"held-out {name}", case_id, read_image(dataset.case(case_id).image)[0]


def limb(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A bright elongated bone pair in soft tissue on a dark background."""
    h, w = shape
    image = np.full(shape, 0.05, np.float32)
    cx = w / 2 + rng.uniform(-0.05, 0.05) * w
    width = rng.uniform(0.25, 0.35) * w
    cv2.ellipse(image, (int(cx), h // 2), (int(width / 2), int(0.48 * h)), 0, 0, 360, 0.45, -1)
    for offset in (-0.08, 0.06):
        x = int(cx + offset * w)
        cv2.line(image, (x, int(0.03 * h)), (x + int(rng.uniform(-5, 5)), int(0.97 * h)), 0.9,
                 max(3, int(0.06 * w)))  # fmt: skip
    image += rng.normal(0, 0.02, shape).astype(np.float32)
    return np.clip(cv2.GaussianBlur(image, (0, 0), 3), 0, 1)


def ct_slice(rng: np.random.Generator, side: int = 512) -> np.ndarray:
    """An axial CT-like slice: round body, two dark lungs, bright spine, black outside."""
    image = np.zeros((side, side), np.float32)
    c = side // 2
    cv2.ellipse(image, (c, c), (int(0.42 * side), int(0.32 * side)), 0, 0, 360, 0.55, -1)
    for sign in (-1, 1):
        cv2.ellipse(image, (c + sign * int(0.18 * side), c - int(0.02 * side)),
                    (int(0.13 * side), int(0.22 * side)), 0, 0, 360, 0.08, -1)  # fmt: skip
    cv2.circle(image, (c, c + int(0.22 * side)), int(0.05 * side), 0.95, -1)
    cv2.circle(image, (c, c - int(0.05 * side)), int(0.06 * side), 0.65, -1)
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    return np.clip(cv2.GaussianBlur(image, (0, 0), 2), 0, 1)


def broken(films: list[np.ndarray], n: int, seed: int) -> Iterator[tuple[str, str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    makers: dict[str, Callable[[int], np.ndarray]] = {
        "limb (tall image)": lambda i: limb(rng, (int(rng.integers(700, 1000)), 300)),
        "limb (square canvas)": lambda i: limb(rng, (512, 512)),
        "CT-like slice": lambda i: ct_slice(rng),
        "blank": lambda i: np.full((512, 512), rng.uniform(0, 1), np.float32),
        "noise": lambda i: rng.uniform(0, 1, (512, 512)).astype(np.float32),
        "inverted film": lambda i: 1.0 - films[i % len(films)],
        "film rotated 90°": lambda i: np.ascontiguousarray(np.rot90(films[i % len(films)])),
        "tiny crop": lambda i: crop(rng, films[i % len(films)], 48),
    }
    for kind, make in makers.items():
        for i in range(n):
            yield kind, f"{kind}-{i}", make(i)


def crop(rng: np.random.Generator, film: np.ndarray, side: int) -> np.ndarray:
    top, left = (int(rng.integers(0, s - side)) for s in film.shape)
    return np.ascontiguousarray(film[top : top + side, left : left + side])


# --- measuring ---------------------------------------------------------------------------


def main() -> int:
    args = parse()
    if sets_missing(args.data):
        return 2
    parts = split_sets(args.data, args.seed)
    model = predictor(args, parts)
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    codes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    flagged_real: list[str] = []
    films: list[np.ndarray] = []
    inputs = list(held_out(parts))
    films = [image for _, _, image in inputs[:: max(1, len(inputs) // args.per_kind)]]
    for kind, case_id, image in [*inputs, *broken(films, args.per_kind, args.seed)]:
        flags = model.predict(image).flags
        counts[kind][0] += 1
        counts[kind][1] += bool(flags)
        codes[kind].update({flag.code for flag in flags})
        if flags and kind.startswith("held-out"):
            flagged_real.append(f"{case_id}: {'; '.join(f.message for f in flags)}")
    print_table(counts, codes)
    for line in flagged_real:
        print("flagged real film", line)
    return 0


def print_table(counts: dict[str, list[int]], codes: dict[str, collections.Counter[str]]) -> None:
    print("| input | n | flagged | rate | codes (cases) |\n|---|---:|---:|---:|---|")
    for kind, (n, flagged) in counts.items():
        top = ", ".join(f"{c} ({k})" for c, k in codes[kind].most_common())
        print(f"| {kind} | {n} | {flagged} | {flagged / n:.0%} | {top or '-'} |")
    real = [v for k, v in counts.items() if k.startswith("held-out")]
    bad = [v for k, v in counts.items() if not k.startswith("held-out")]
    for label, rows in (("real held-out films", real), ("non-chest or broken inputs", bad)):
        n, flagged = sum(r[0] for r in rows), sum(r[1] for r in rows)
        print(f"{label}: {flagged}/{n} flagged ({flagged / max(1, n):.1%})")


if __name__ == "__main__":
    sys.exit(main())
