"""Prediction speed: ms per image with PyTorch and ONNX Runtime on the CPU, images/s on a GPU.

Not a test. Builds the default training architecture (``unet``, depth 5, base 16, batch norm,
transposed convolutions; random weights, which do not change the speed), saves it as a
checkpoint with post-processing (largest component per lung kept, holes filled), exports
it to ONNX, and times :class:`cxrseg.inference.Predictor` end to end on synthetic 512 x 512
radiographs: resize, normalisation, network, softmax, resize back, arg-max and
post-processing. The network alone is timed too.

CPU (the target is <= 100 ms per image on 2 cores)::

    .venv/bin/python benchmarks/bench_predict.py --threads 2

GPU (network throughput target >= 1,000 images/s on one H100)::

    python benchmarks/bench_predict.py --device cuda --batch-size 64 --images 512
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

LABELS = ["left_lung", "right_lung"]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch and ORT)")
    parser.add_argument("--size", type=int, default=512, help="image and network input side")
    parser.add_argument("--images", type=int, default=16, help="images per timed pass")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (median kept)")
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--skip-onnx", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the GPU network")
    return parser.parse_args()


def median_seconds(
    fn: Callable[[], object], repeats: int, sync: Callable[[], None]
) -> tuple[float, float]:
    """Median wall-clock and process CPU seconds of ``fn`` (after one warm-up call).

    The CPU time (all threads) is the robust figure on a shared machine: divided by the
    thread count it is what the wall time would be on dedicated cores with perfect scaling.
    """
    fn()  # warm-up (allocations, kernel selection, profiling executors)
    sync()
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def on_device(backend: Any, batch: np.ndarray) -> Callable[[], object]:
    """The network alone: on CUDA a forward pass of a batch already on the GPU (no copies,
    what "network throughput" means); elsewhere the backend's call on a NumPy batch."""
    import torch

    if getattr(backend, "device", "cpu").startswith("cuda"):
        inputs = torch.from_numpy(batch).to(backend.torch_device)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
        amp = backend.amp_dtype is not None

        def forward() -> object:
            with torch.inference_mode(), torch.autocast("cuda", backend.amp_dtype, amp):
                return backend.model(inputs)

        return forward
    return lambda: backend(batch)


def build(folder: Path, args: argparse.Namespace, onnx: bool) -> tuple[Path, Path | None]:
    import torch

    from cxrseg.export import export_model
    from cxrseg.models import create_model
    from cxrseg.postprocess import PostprocessConfig
    from cxrseg.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    kwargs = {"depth": args.depth, "base_channels": args.base_channels, "norm": "batch",
              "upsample": "transpose"}  # fmt: skip
    model = create_model("unet", in_channels=1, num_classes=len(LABELS) + 1, **kwargs)
    post = {name: PostprocessConfig(keep_components=1, fill_holes=True).to_dict()
            for name in LABELS}  # fmt: skip
    meta = {"labels": LABELS, "mode": "softmax", "input_size": args.size, "resize": "squash",
            "normalization": "zscore", "in_channels": 1, "postprocessing": post}  # fmt: skip
    save_checkpoint(folder / "best", model, meta)
    exported = export_model(folder, folder / "export" / "model.onnx") if onnx else None
    return folder / "best", exported


def main() -> None:
    args = parse()
    import cv2
    import torch

    from cxrseg.inference import OnnxBackend, Predictor, TorchBackend, locate_model, model_info
    from cxrseg.models import count_parameters
    from cxrseg.phantom import make_phantom
    from cxrseg.training.checkpoint import load_checkpoint

    if args.device == "cpu":
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    cuda = args.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    distinct = [make_phantom(i, args.size).image for i in range(min(args.images, 16))]
    images = [distinct[i % len(distinct)] for i in range(args.images)]
    rows: list[tuple[str, float, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, onnx_file = build(Path(tmp), args, onnx=not args.skip_onnx and not cuda)
        info = model_info(locate_model(checkpoint))
        network, _ = load_checkpoint(checkpoint)
        params = count_parameters(network)
        backends: list[tuple[str, Any]] = []
        for channels_last in (False, True):
            name = f"PyTorch{' channels_last' if channels_last else ''}"
            model = copy.deepcopy(network)  # channels_last converts the module in place
            backend = TorchBackend(model, args.device, channels_last=channels_last)
            if cuda and args.compile:
                backend.model = torch.compile(backend.model)
            backends.append((name, backend))
        if onnx_file is not None:
            backends.append(("ONNX Runtime", OnnxBackend(onnx_file, "cpu", threads=args.threads)))
        batch = np.random.default_rng(0).standard_normal(
            (args.batch_size, 1, args.size, args.size), dtype=np.float32
        )
        calls = -(-args.images // args.batch_size)
        for name, backend in backends:
            predictor = Predictor(backend, info, batch_size=args.batch_size)

            forward = on_device(backend, batch)

            def network_only(run: Callable[[], object] = forward) -> None:
                for _ in range(calls):
                    run()

            def end_to_end(run: Any = predictor) -> None:
                run.predict_batch(images)

            net, net_cpu = median_seconds(network_only, args.repeats, sync)
            full, full_cpu = median_seconds(end_to_end, args.repeats, sync)
            per_net, per_full = calls * args.batch_size, len(images)
            rows.append((name, full / per_full, full_cpu / per_full, net / per_net,
                         net_cpu / per_net))  # fmt: skip

    device = torch.cuda.get_device_name() if cuda else f"CPU, {args.threads} threads"
    print(f"cxrseg predict: {args.size}x{args.size}, unet depth {args.depth} base "
          f"{args.base_channels} ({params / 1e6:.2f} M parameters), batch {args.batch_size}, "
          f"{args.images} images, median of {args.repeats}; {device}; "
          f"torch {torch.__version__}")  # fmt: skip
    header = ("backend", "e2e ms/img", "e2e CPU ms/img", "net ms/img", "net CPU ms/img",
              "net img/s", "e2e vs first")  # fmt: skip
    print(f"{header[0]:<22}" + "".join(f"{h:>16}" for h in header[1:]))
    reference = rows[0][1]
    for name, full, full_cpu, net, net_cpu in rows:
        values = (full * 1e3, full_cpu * 1e3, net * 1e3, net_cpu * 1e3, 1 / net)
        print(f"{name:<22}" + "".join(f"{v:>16.1f}" for v in values)
              + f"{reference / full:>15.2f}x")  # fmt: skip
    if not cuda:
        load = os.getloadavg()[0]
        print(f"load average {load:.1f} on {os.cpu_count()} CPUs during the run")


if __name__ == "__main__":
    main()
