"""The model card of the shipped lung model, written from its ``results.json``.

``scripts/train_lung_model.py`` calls :func:`model_card` after scoring the held-out cases, so
every figure in ``MODEL_CARD.md`` is quoted from ``results.json`` and none is typed by hand.
"""

# ruff: noqa: E501  (markdown table rows are one line each)

from __future__ import annotations

from typing import Any

NAMES = {"montgomery": "Montgomery", "shenzhen": "Shenzhen", "all": "both"}
#: CPU speed of the architecture by U-Net width (``bench_predict.py --model ... --images 16
#: --repeats 5``, 512 x 512 images end to end, ONNX Runtime; docs/benchmarks.md, "The shipped
#: lung model (idle machine)"): milliseconds per image on 2 threads and on 1.
SPEED_MS = {12: (37.6, 64.8), 16: (53.0, 103.8)}
#: The default recipe's five-fold cross-validation (docs/benchmarks.md, "Five-fold
#: cross-validation of the default recipe"): out-of-fold Dice mean, sd, cases, minutes a fold.
CROSS_VALIDATED = {"montgomery": (0.9770, 0.0119, 111, 6.0), "shenzhen": (0.9587, 0.0283, 453, 8.9)}
PUBLISHED = {"montgomery": "0.982 (512 px)", "shenzhen": "0.955-0.96 (512 px)", "all": ""}


def model_card(results: dict[str, Any]) -> str:
    """``MODEL_CARD.md`` for a ``results.json`` written by ``train_lung_model.py``."""
    parts = [_header(results), _model(results), _data(), _figures(results),
             _cross_validated(results), _speed(results), _STATIC]  # fmt: skip
    return "\n".join(parts) + "\n"


def _header(r: dict[str, Any]) -> str:
    return f"""# Model card: `lungs` (version {r.get("model_version", 2)})

The lung segmentation model shipped inside cxrseg. It segments both lungs of a frontal chest
radiograph as one structure, `lungs`, with no training and no download:

```bash
cxrseg predict --model lungs xrays/ --out lungs/ --overlays
```

```python
from cxrseg.pretrained import load

mask = load("lungs").predict(image).masks["lungs"]  # image: float32 (H, W) in [0, 1]
```
"""


def _model(r: dict[str, Any]) -> str:
    config = r["config"]
    width = config["model_kwargs"].get("base_channels", 12)
    post = r["postprocessing"]["lungs"]
    steps = [s for s, on in (("keep the two largest components", post.get("keep_components")),
                             ("fill holes", post.get("fill_holes"))) if on]  # fmt: skip
    init = (f"; started from the weights of `{r['init']}` (the model installed before, trained "
            "by this script on the same splits)") if r.get("init") else ""  # fmt: skip
    budget = config.get("time_budget")
    budget_text = f", time budget {budget / 60:.0f} min" if budget else ""
    return f"""## Model

| | |
|---|---|
| architecture | cxrseg U-Net, depth {config["model_kwargs"].get("depth", 5)}, base {width} channels, batch norm, transposed-convolution upsampling |
| weights | `model.safetensors`, float32, {r["weights_mb"]} MB (loaded without unpickling) |
| input | one grey channel, squashed to {config["size"]} x {config["size"]} (area interpolation), z-score normalised per image |
| output | softmax over background and lungs, resized back to the image's own size; post-processing chosen on validation: {", ".join(steps) or "none"} |
| trained with | `cxrseg train` at {config["size"]} px: Dice + cross-entropy, AdamW (lr {config["lr"]:g}), {_schedule(config)}{budget_text}; batch {config["batch_size"]}; {r["epochs"]} epochs, best validation epoch {r["best_epoch"]} (validation Dice {r["val_dice"]:.4f}){init} |
| augmentation | {_augmentation(config)} |
| why it stopped | {r["stopped"]} |
| training time | {r["train_minutes"]} minutes of epochs on one core of a 2-core CPU (CPU only, bfloat16 autocast where the CPU has it) |
"""


def _schedule(config: dict[str, Any]) -> str:
    if config.get("schedule", "plateau") == "plateau":
        return ("the learning rate held at its peak until the smoothed validation Dice stopped "
                f"improving (patience {config['patience']}), then annealed")  # fmt: skip
    return (f"a {config['schedule']} decay of the learning rate over all the epochs that fit "
            "the time budget, with no early stop")  # fmt: skip


def _augmentation(config: dict[str, Any]) -> str:
    ops = (config.get("augmentation") or {}).get("operations", [])
    bright = [op for op in ops if op["op"] == "opacity" and op["min_level"] >= 0.5]
    if not bright:
        return "the default of `cxrseg train`: mesh distortions, rotation, zoom, brightness, contrast, gamma"
    o = bright[0]
    return ("the default mesh distortions, rotation and zoom; brightness 0.8-1.2, contrast "
            "0.65-1.4, gamma 0.65-1.6, blur, noise; bright opacities (dense infiltrates stay "
            f"lung: probability {o['probability']:g}, up to {o['max_count']} patches of "
            f"{o['min_radius']:g}-{o['max_radius']:g} of the side, up to "
            f"{o['max_amount']:.0%} opaque) and dark gas patches (a gastric bubble is not "
            "lung): `--augmentation` in `scripts/train_lung_model.py`")  # fmt: skip


def _data() -> str:
    return """## Data

Trained on the public Montgomery County (NLM) and Shenzhen (Shenzhen No.3 People's Hospital)
chest X-ray sets, both resized to 512 x 512 without keeping the aspect ratio, with lung masks
thresholded at 128. Each set was split on its own with seed 0 (20 % test, 15 % validation),
exactly as `benchmarks/real_data.py` and version 1 split it: Montgomery 72 / 17 / 22 cases
(train / validation / test), Shenzhen 294 / 68 / 91. The test cases were never seen in
training or in the choice of the checkpoint and post-processing.
"""


def _figures(r: dict[str, Any]) -> str:
    old = {row["test"]: row for row in r["previous"]["rows"]}
    lines = [
        "## Figures (held-out test cases, scored at 512 x 512)",
        "",
        "| test set | cases | Dice mean ± std | median | 5th percentile | Jaccard | HD95 px "
        "(median) | version 1 Dice mean | published U-Net Dice |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        before = old.get(row["test"], {}).get("dice_mean")
        lines.append(
            f"| {NAMES.get(row['test'], row['test'])} | {row['n_test']} | "
            f"{row['dice_mean']:.4f} ± {row['dice_std']:.4f} | {row['dice_median']:.4f} | "
            f"{row['dice_p5']:.4f} | {row['jaccard_mean']:.4f} | {row['hd95_px_median']:.1f} | "
            f"{'' if before is None else f'{before:.4f}'} | {PUBLISHED.get(row['test'], '')} |"
        )
    lines += [
        "",
        "Version 1 (shipped before this one) was the default recipe of its day: 30 epochs with a",
        "cosine schedule and the default augmentation, on the same splits (`previous` in",
        "`results.json`). These test sets are small (22 and 91 cases): one poor case moves the",
        "Montgomery mean by about 0.002.",
        f"Command: `{r['command']}`.",
        "",
    ]
    return "\n".join(lines)


def _cross_validated(r: dict[str, Any]) -> str:
    old = {row["test"]: row["dice_mean"] for row in r["previous"]["rows"]}
    lines = [
        "## The recipe, cross-validated",
        "",
        "Five-fold cross-validation of `cxrseg train`'s default recipe at 256 px, each set on its",
        "own, one core (`benchmarks/real_data.py --folds 5`; docs/benchmarks.md): every case is",
        "predicted once by the fold model that never saw it. Beside it, version 1 on its held-out",
        "test cases.",
        "",
        "| set | cases | out-of-fold Dice mean ± sd | minutes a fold | version 1 (held out) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (mean, sd, cases, minutes) in CROSS_VALIDATED.items():
        before = old.get(name)
        lines.append(f"| {NAMES[name]} | {cases} | {mean:.4f} ± {sd:.4f} | {minutes:.1f} | "
                     f"{'' if before is None else f'{before:.4f}'} |")  # fmt: skip
    return "\n".join([*lines, ""])


def _speed(r: dict[str, Any]) -> str:
    width = r["config"]["model_kwargs"].get("base_channels", 12)
    if width not in SPEED_MS:
        return "## Speed\n\nNot measured for this width: run `benchmarks/bench_predict.py`.\n"
    two, one = SPEED_MS[width]
    return f"""## Speed

On the CPU (`python benchmarks/bench_predict.py --threads 2 --model lungs`, 512 x 512 images,
end to end, post-processing included), this architecture (base {width}, input
{r["config"]["size"]} px) takes {two:.0f} ms per image with ONNX Runtime on 2 threads and
{one:.0f} ms on one thread; on CPUs with bfloat16 (AMX, AVX512-BF16) `--runtime auto` picks
PyTorch bfloat16, about twice as fast.
"""


_STATIC = """## Intended use

- Lung fields in frontal (PA or AP) chest radiographs of adults, as a starting point for
  research: measuring lung area, cropping to the lungs, pre-segmenting images to be checked
  or corrected by a person, or initialising a model fine-tuned on your own data
  (`cxrseg train DATA --init lungs`).
- **Not for diagnosis** and not a medical device. No output of this model should inform the
  care of a patient.

## Limits

- Seen in training: two sets only, from two hospitals (USA, China), adults, mostly normal and
  tuberculosis cases, digitised at 512 x 512. Paediatric, lateral, portable ICU and
  post-operative films, devices, large effusions and collapsed or resected lungs are not
  represented; expect worse masks there and check them.
- The masks follow each set's annotation convention: the lungs as seen on the film, the
  retro-cardiac and sub-diaphragmatic parts left out. The Shenzhen masks are less consistent
  than Montgomery's.
- Images are squashed to a square before the network; a very unusual aspect ratio (not a
  chest film's) changes what the network sees.
- One structure for both lungs. For left and right lungs separately, train your own model
  with `cxrseg train` on masks that name them (`left_lung`, `right_lung`).

## Licence

The training masks of the Shenzhen set are licensed CC BY-NC-SA 4.0 (Kaggle "Chest X-ray
Masks and Labels"), so these weights are shared under **CC BY-NC-SA 4.0: non-commercial use,
with attribution, derivatives under the same terms** (`LICENSE.md`). The cxrseg code is
MIT-licensed; the licence of the weights is separate. Cite the data when you use the model:

- Jaeger S. et al., "Two public chest X-ray datasets for computer-aided screening of pulmonary
  diseases", Quant Imaging Med Surg 4(6):475–477, 2014.
- Candemir S. et al., "Lung segmentation in chest radiographs using anatomical atlases with
  nonrigid registration", IEEE TMI 33(2):577–590, 2014.

## Rebuild

From the repository root, with the two sets in `../shared/data/{montgomery,shenzhen}`:

```bash
.venv/bin/python scripts/train_lung_model.py --out runs/lungs-v3o --threads 1 \\
    --schedule cosine --augmentation dense --time-budget 90m --install
```

It links the two sets into one dataset, writes the splits and the training options, runs and
prints the `cxrseg train` command, predicts and scores the held-out cases, writes
`results.json` and this card from the figures, and with `--install` copies them and the
weights into `src/cxrseg/pretrained/lungs/`. Training is seeded; on another machine, torch
version or time budget the weights differ and the figures by about the noise of the test sets.
"""
