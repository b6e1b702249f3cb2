"""Prediction speed of the default recipe: ms per 512 x 512 image on the CPU, images/s on a GPU.

Not a test. Builds the network ``cxrseg train`` builds by default (``TrainConfig()``'s model,
at the input size :func:`cxrseg.training.defaults.pick_size` picks for images of
``--image-size``; random weights, which do not change the speed) predicting both lungs
(softmax), saves it as a checkpoint with the anatomical post-processing (largest component
per lung kept, holes filled), and times :class:`cxrseg.inference.Predictor` end to end from
a NumPy image to masks at the original size: resize, normalisation, network, softmax, resize
back, arg-max and post-processing. The network alone is timed too.

Backends (CPU), measured side by side: every round runs each backend once, in turn, so a
change in the machine's load hits all of them alike:

- ``PyTorch`` (contiguous, batch norm kept, float32: the plain model);
- ``PyTorch folded CL`` (:class:`~cxrseg.inference.TorchBackend`: batch norm folded into the
  convolutions, channels-last) in float32 = ``--runtime torch --no-amp``;
- ``ONNX Runtime`` float32, exported in memory, no thread spinning: what ``--runtime auto``
  picked on every CPU before bfloat16 ("today"), and still picks on CPUs without native
  bfloat16;
- ``ONNX Runtime spin`` the same with ONNX Runtime's default thread spinning;
- ``PyTorch bf16 CL`` the folded channels-last network in bfloat16 autocast: what
  ``--runtime auto`` picks on CPUs with native bfloat16 (timed elsewhere with
  ``--force-bf16``).

The header names the CPU, its bfloat16 flags and what ``--runtime auto`` picks and why. The
``vs today`` column is the end-to-end speed-up over ``ONNX Runtime``; ``Dice vs today`` is the
mean Dice of each backend's masks against ONNX Runtime's float32 masks.

Agreement on real radiographs: ``--real-data ../shared/data`` predicts every image of its
sets (``<set>/images/*.png``) with the ``--model`` in ONNX Runtime float32 and with what
``--runtime auto`` picks, and prints the Dice of the masks (mean, min) per set.

CPU (the target is <= 100 ms per 512 x 512 image on 2 cores)::

    .venv/bin/python benchmarks/bench_predict.py --threads 2

A trained checkpoint or the shipped lung model instead of the default recipe's network::

    .venv/bin/python benchmarks/bench_predict.py --threads 2 --model lungs
    .venv/bin/python benchmarks/bench_predict.py --threads 2 --model lungs \
        --real-data ../shared/data

GPU (network throughput, images/s, of the PyTorch backend; bfloat16 autocast)::

    python benchmarks/bench_predict.py --device cuda --batch-size 64 --images 512
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from machine import cpu_header  # benchmarks/machine.py

LABELS = ["left_lung", "right_lung"]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2,
                        help="CPU threads of torch, ORT and cv2 (CPU mode only)")  # fmt: skip
    parser.add_argument("--image-size", type=int, default=512, help="side of the input images")
    parser.add_argument("--input-size", type=int, default=None,
                        help="network input side (default: what cxrseg train picks)")  # fmt: skip
    parser.add_argument("--base-channels", type=int, default=None,
                        help="override the default model's base_channels")  # fmt: skip
    parser.add_argument("--images", type=int, default=8, help="images per timed pass")
    parser.add_argument("--batch-size", type=int, default=4, help="images per network call")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median kept)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the GPU network")
    parser.add_argument("--force-bf16", action="store_true",
                        help="time bfloat16 even where the CPU has no native bfloat16")  # fmt: skip
    parser.add_argument("--real-data", type=Path, default=None,
                        help="folder of <set>/images/*.png: Dice of the auto runtime's masks "
                        "against ONNX Runtime float32 masks (with --model)")  # fmt: skip
    parser.add_argument("--model", default=None,
                        help="time this checkpoint or shipped model (e.g. lungs) instead of "
                        "the default recipe's network")  # fmt: skip
    return parser.parse_args()


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def default_recipe(folder: Path, args: argparse.Namespace) -> tuple[dict[str, Any], int, str]:
    """The default model kwargs and the input size ``cxrseg train`` picks for these images."""
    from cxrseg.data import Case
    from cxrseg.io import write_image
    from cxrseg.phantom import make_phantom
    from cxrseg.training.config import TrainConfig
    from cxrseg.training.defaults import pick_size

    kwargs = dict(TrainConfig().model_kwargs)
    if args.base_channels is not None:
        kwargs["base_channels"] = args.base_channels
    if args.input_size is not None:
        return kwargs, args.input_size, "--input-size"
    image = folder / "probe.png"
    write_image(image, make_phantom(0, args.image_size).image)
    size, reason = pick_size([Case("probe", image, {})])
    return kwargs, size, f"cxrseg train's default: {reason}"


def given_model(name: str) -> tuple[Path, int, str]:
    """The checkpoint folder and input size of ``--model`` (a path or a shipped model's name)."""
    from cxrseg.inference.model_file import locate_model
    from cxrseg.pretrained import resolve

    model = locate_model(resolve(name))
    if model.kind != "checkpoint":
        raise SystemExit(f"--model {name}: give a checkpoint (an .onnx file cannot be refolded)")
    return model.path.parent, int(model.metadata["input_size"]), f"--model {name}"


def save_model(folder: Path, kwargs: dict[str, Any], size: int) -> Path:
    import torch

    from cxrseg.models import create_model
    from cxrseg.postprocess import default_config
    from cxrseg.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = create_model("unet", in_channels=1, num_classes=len(LABELS) + 1, **kwargs)
    post = {name: default_config(name, 1).to_dict() for name in LABELS}
    meta = {"labels": LABELS, "mode": "softmax", "input_size": size, "resize": "squash",
            "normalization": "zscore", "in_channels": 1, "postprocessing": post}  # fmt: skip
    save_checkpoint(folder / "best", model, meta)
    return folder / "best"


def timed(fn: Callable[[], object], sync: Callable[[], None]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds (all threads) of one call."""
    sync()
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    sync()
    return time.perf_counter() - start, time.process_time() - cpu


def network_pass(backend: Any, batch: np.ndarray, calls: int) -> Callable[[], object]:
    """The network alone: on CUDA forward passes of a batch already on the GPU (no copies);
    elsewhere the backend's call on a NumPy batch."""
    import torch

    if getattr(backend, "device", "cpu").startswith("cuda"):
        inputs = torch.from_numpy(batch).to(backend.torch_device)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
        amp = backend.amp_dtype is not None

        def forward() -> None:
            with torch.inference_mode(), torch.autocast("cuda", backend.amp_dtype, amp):
                for _ in range(calls):
                    backend.model(inputs)

        return forward
    return lambda: [backend(batch) for _ in range(calls)]


def cpu_predictors(args: argparse.Namespace, checkpoint: Path, network: Any,
                   size: int) -> tuple[dict[str, Any], dict[str, float]]:  # fmt: skip
    """The CPU backends side by side, "ONNX Runtime" (today's default) first; load seconds."""
    from cxrseg.inference import OnnxBackend, Predictor, TorchBackend
    from cxrseg.inference.backends import onnx_from_torch
    from cxrseg.training.precision import autocast_dtype

    options = {"batch_size": args.batch_size}
    predictors: dict[str, Any] = {}
    loads: dict[str, float] = {}

    def load(name: str, **how: Any) -> Any:
        start = time.perf_counter()
        predictors[name] = Predictor.from_checkpoint(checkpoint, "cpu", **how, **options)
        loads[name] = time.perf_counter() - start
        return predictors[name]

    ort = load("ONNX Runtime", runtime="onnxruntime")
    assert isinstance(ort.backend, OnnxBackend), "no onnxruntime?"
    spin = onnx_from_torch(network, size, threads=args.threads, spinning=True)
    predictors["ONNX Runtime spin"] = Predictor(spin, ort.info, **options)
    plain = TorchBackend(network, "cpu", amp=False, channels_last=False, fold_norm=False)
    predictors["PyTorch"] = Predictor(plain, ort.info, **options)
    load("PyTorch folded CL", runtime="torch", amp=False)
    if autocast_dtype("cpu")[0] is not None:
        load("PyTorch bf16 CL", runtime="torch")
    elif args.force_bf16:
        import torch

        forced = TorchBackend(network, "cpu")
        forced.amp_dtype, forced.precision = torch.bfloat16, "bfloat16"
        predictors["PyTorch bf16 CL"] = Predictor(forced, ort.info, **options)
    return predictors, loads


def mask_dice(a: Any, b: Any) -> float:
    """Mean Dice over structures of two Predictions' masks (1 where both are empty)."""
    from cxrseg.metrics import dice_per_structure

    names = list(a.masks)
    first = np.stack([a.masks[n] for n in names])[None]
    second = np.stack([b.masks[n] for n in names])[None]
    return float(dice_per_structure(first, second).mean())


def real_data_agreement(args: argparse.Namespace, checkpoint: Path) -> None:
    """Dice of the auto runtime's masks against ONNX Runtime float32 masks on real images."""
    from cxrseg.inference import Predictor
    from cxrseg.io import read_image

    fp32 = Predictor.from_checkpoint(checkpoint, "cpu", runtime="onnxruntime")
    auto = Predictor.from_checkpoint(checkpoint, "cpu")
    print(f"real data: {auto.backend.runtime} {auto.backend.precision} ({auto.backend.reason}) "
          "against onnxruntime float32")  # fmt: skip
    print("| set | images | Dice mean | Dice min (case) | cases < 0.999 | masks identical |")
    for folder in sorted(p for p in args.real_data.iterdir() if (p / "images").is_dir()):
        paths = sorted((folder / "images").glob("*.png"))
        scores = []
        for start in range(0, len(paths), args.batch_size):
            images = [read_image(p)[0] for p in paths[start : start + args.batch_size]]
            pairs = zip(fp32.predict_batch(images), auto.predict_batch(images), strict=True)
            scores += [mask_dice(a, b) for a, b in pairs]
        same = sum(score == 1.0 for score in scores)
        worst = int(np.argmin(scores))
        print(f"| {folder.name} | {len(scores)} | {np.mean(scores):.5f} | {scores[worst]:.5f} "
              f"({paths[worst].stem}) | {sum(s < 0.999 for s in scores)} | {same} |")  # fmt: skip


def main() -> None:
    args = parse()
    import cv2
    import torch

    from cxrseg.inference import Predictor
    from cxrseg.models import count_parameters
    from cxrseg.phantom import make_phantom
    from cxrseg.training.checkpoint import load_checkpoint

    cuda = args.device == "cuda"
    if not cuda:  # on a GPU machine the CPU work around the network keeps every core
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    load_before = uptime()
    distinct = [make_phantom(i, args.image_size).image for i in range(min(args.images, 16))]
    images = [distinct[i % len(distinct)] for i in range(args.images)]

    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            checkpoint, size, why = given_model(args.model)
            kwargs = {}
        else:
            kwargs, size, why = default_recipe(Path(tmp), args)
            checkpoint = save_model(Path(tmp), kwargs, size)
        network, meta = load_checkpoint(checkpoint)
        kwargs = kwargs or dict(meta["model"]["kwargs"])
        params = count_parameters(network)
        predictors: dict[str, Any] = {}
        loads: dict[str, float] = {}
        if cuda:
            options = {"batch_size": args.batch_size}
            predictors["PyTorch CUDA"] = Predictor.from_checkpoint(checkpoint, "cuda", **options)
            if args.compile:
                backend = predictors["PyTorch CUDA"].backend
                backend.model = torch.compile(backend.model)
        else:
            predictors, loads = cpu_predictors(args, checkpoint, network, size)
            auto = Predictor.from_checkpoint(checkpoint, "cpu").backend
            print(cpu_header())
            print(f"--runtime auto picks {auto.runtime} {auto.precision}: {auto.reason}")
        if args.real_data is not None:
            real_data_agreement(args, checkpoint)

    batch = np.random.default_rng(0).standard_normal(
        (args.batch_size, 1, size, size), dtype=np.float32
    )
    calls = -(-args.images // args.batch_size)
    runs = {
        name: (network_pass(p.backend, batch, calls), lambda p=p: p.predict_batch(images))
        for name, p in predictors.items()
    }
    times, outputs = time_rounds(runs, sync, args.repeats)
    load_after = uptime()

    device = torch.cuda.get_device_name() if cuda else f"CPU, {args.threads} threads"
    print(f"cxrseg predict: {args.image_size}x{args.image_size} images, network input "
          f"{size}x{size} ({why}); unet {kwargs} ({params / 1e6:.2f} M parameters); "
          f"batch {args.batch_size}, {args.images} images per pass, median of {args.repeats} "
          f"rounds; {device}; torch {torch.__version__}")  # fmt: skip
    print(f"before: {load_before}\nafter:  {load_after}")
    print_table(times, outputs, loads, len(images), calls * args.batch_size)


def time_rounds(
    runs: dict[str, tuple[Callable[[], object], Callable[[], Any]]],
    sync: Callable[[], None],
    repeats: int,
) -> tuple[dict[str, dict[str, list[tuple[float, float]]]], dict[str, Any]]:
    """Wall and CPU seconds of each run's network pass and end-to-end call per round, each
    backend in turn; and each backend's predictions (from the warm-up round)."""
    times: dict[str, dict[str, list[tuple[float, float]]]] = {
        name: {"net": [], "e2e": []} for name in runs
    }
    outputs: dict[str, Any] = {}
    for round_ in range(repeats + 1):  # round 0 warms up (allocations, kernel choice)
        for name, (net, e2e) in runs.items():
            if not round_:
                outputs[name] = e2e()
            net_time, e2e_time = timed(net, sync), timed(e2e, sync)
            if round_:
                times[name]["net"].append(net_time)
                times[name]["e2e"].append(e2e_time)
    return times, outputs


def print_table(times: dict[str, dict[str, list[tuple[float, float]]]], outputs: dict[str, Any],
                loads: dict[str, float], images: int, per_net: int) -> None:  # fmt: skip
    """One row per backend; "vs today" and "Dice vs today" against the first (ONNX Runtime
    float32 on the CPU)."""
    header = ("backend", "e2e ms/img", "e2e CPU ms/img", "net ms/img", "net CPU ms/img",
              "net img/s", "load s", "e2e vs today", "CPU vs today", "Dice vs today")  # fmt: skip
    print(f"| {header[0]:<18} | " + " | ".join(f"{h:>14}" for h in header[1:]) + " |")
    first: tuple[float, float] | None = None
    reference = outputs[next(iter(outputs))]
    for name, measured in times.items():
        e2e_wall = statistics.median(w for w, _ in measured["e2e"]) / images
        e2e_cpu = statistics.median(c for _, c in measured["e2e"]) / images
        net_wall = statistics.median(w for w, _ in measured["net"]) / per_net
        net_cpu = statistics.median(c for _, c in measured["net"]) / per_net
        first = first or (e2e_wall, e2e_cpu)
        load = f"{loads[name]:.1f}" if name in loads else "-"
        dice = np.mean([mask_dice(a, b) for a, b in zip(outputs[name], reference, strict=True)])
        values = [f"{v * 1e3:.1f}" for v in (e2e_wall, e2e_cpu, net_wall, net_cpu)]
        values += [f"{1 / net_wall:.1f}", load, f"{first[0] / e2e_wall:.2f}x",
                   f"{first[1] / e2e_cpu:.2f}x", f"{dice:.5f}"]  # fmt: skip
        print(f"| {name:<18} | " + " | ".join(f"{v:>14}" for v in values) + " |")


if __name__ == "__main__":
    main()
