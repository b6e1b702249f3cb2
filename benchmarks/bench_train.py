"""Training throughput: cxrseg's loop against a plain PyTorch loop, float32 and bfloat16.

Measures, on synthetic phantoms cached in memory at the training size, each loop in float32
and (where the device computes it natively, or with ``--force-bf16``) in bfloat16 autocast,
side by side in one run; everything channels-last:

- ``plain torch``: a bare loop over pre-stacked tensors (no augmentation, no data loader):
  forward, Dice+CE loss, backward, AdamW step. The ceiling for this model on this device.
- ``cxrseg, augment on cpu``: :func:`cxrseg.training.loop.train_one_epoch` with the default
  augmentation recipe applied per sample in the data loader (``--workers`` processes).
- ``cxrseg, augment on device``: the same, with ``Pipeline.batch`` on the training device.
- ``cxrseg, no augmentation``: the loop's own overhead.

Every round runs one epoch of each loop in turn (round 0 warms up), so a change in the
machine's load hits all of them alike. For each loop it prints ms per step (fastest epoch),
CPU ms per step (process time of all threads, median), the share of step time spent waiting for
the next batch (the data wait), the ratio to the plain loop of the same precision, and the
speed-up over today's CPU default before bfloat16 (``cxrseg, augment on cpu`` in float32).
The header names the CPU, its bfloat16 flags and the precision ``cxrseg train`` picks.
Targets: data wait <= 10% of the bfloat16 step on the CPU, <= 5% on the GPU.

Usage::

    python benchmarks/bench_train.py --threads 2          # CPU, 256 px, base 12
    python benchmarks/bench_train.py --device cuda --batch-size 16 --workers 4

Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from machine import cpu_header  # benchmarks/machine.py
from torch.utils.data import DataLoader

from cxrseg.augment.pipeline import Pipeline
from cxrseg.losses import SegmentationLoss, masks_to_target
from cxrseg.models import create_model
from cxrseg.phantom import make_phantom
from cxrseg.training.config import TrainConfig, default_augmentation
from cxrseg.training.dataset import (
    CachedCases,
    EpochSampler,
    SegmentationDataset,
    device_augment,
)
from cxrseg.training.loop import (
    EpochOptions,
    StepSettings,
    build_optimizer,
    build_scheduler,
    train_one_epoch,
)
from cxrseg.training.precision import autocast_dtype, precision_name

NAMES = ["left_lung", "right_lung", "heart"]


def phantoms(n: int, size: int) -> CachedCases:
    cases = [make_phantom(seed, size) for seed in range(n)]
    images = np.stack([c.image for c in cases])
    masks = np.stack([np.stack([c.masks[k] for k in NAMES]) for c in cases])
    return CachedCases([f"p{i}" for i in range(n)], images, masks, NAMES, [(size, size)] * n)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_and_optimizer(args: argparse.Namespace, device: torch.device) -> tuple[Any, Any]:
    torch.manual_seed(0)
    model = create_model("unet", in_channels=1, num_classes=len(NAMES) + 1, depth=5,
                         base_channels=args.base_channels).to(device)  # fmt: skip
    model.to(memory_format=torch.channels_last)
    return model, build_optimizer(model, TrainConfig(lr=1e-3))


def plain_torch(args: argparse.Namespace, cases: CachedCases, device: torch.device,
                dtype: torch.dtype | None) -> Iterator[dict]:  # fmt: skip
    """A bare PyTorch loop of the same model, the ceiling: one measured epoch per ``next``."""
    model, optimizer = model_and_optimizer(args, device)
    loss_fn = SegmentationLoss("softmax", "dice_ce").to(device)
    images = torch.from_numpy(cases.images)[:, None].to(device)
    target = masks_to_target(cases.masks, "softmax").to(device)
    n, batch = len(cases), args.batch_size
    while True:
        sync(device)
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, n - batch + 1, batch):
            x = images[i : i + batch].contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype or torch.bfloat16, enabled=dtype is not None):
                logits = model(x)
            loss = loss_fn(logits.float(), target[i : i + batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        yield {"steps": n // batch, "seconds": time.perf_counter() - start,
               "cpu": time.process_time() - cpu, "wait": 0.0}  # fmt: skip


def cxrseg_loop(args: argparse.Namespace, cases: CachedCases, device: torch.device,
                augment_on: str, dtype: torch.dtype | None) -> Iterator[dict]:  # fmt: skip
    """cxrseg's train_one_epoch with the default augmentation on the CPU, device or off: one
    measured epoch per ``next``."""
    model, optimizer = model_and_optimizer(args, device)
    config = TrainConfig(lr=1e-3, epochs=args.repeats + 1, warmup_epochs=0)
    pipeline = Pipeline.from_dict(default_augmentation()) if augment_on != "none" else None
    on_cpu = pipeline if augment_on == "cpu" else None
    sampler = EpochSampler(len(cases), seed=0)
    loader = DataLoader(SegmentationDataset(cases, on_cpu), batch_size=args.batch_size,
                        sampler=sampler, num_workers=args.workers, drop_last=True,
                        pin_memory=device.type == "cuda",
                        persistent_workers=args.workers > 0)  # fmt: skip
    scheduler = build_scheduler(optimizer, config, len(loader))
    settings = StepSettings(device, "softmax", "zscore", True, dtype, 1.0)
    loss_fn = SegmentationLoss("softmax", "dice_ce").to(device)
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        augment = device_augment(pipeline, NAMES, epoch) if augment_on == "device" else None
        cpu = time.process_time()
        stats = train_one_epoch(model, loader, optimizer, scheduler, loss_fn, settings,
                                EpochOptions(epoch + 1, augment=augment))  # fmt: skip
        epoch += 1
        yield {"steps": len(loader), "seconds": stats.seconds, "cpu": time.process_time() - cpu,
               "wait": stats.data_seconds / stats.seconds}  # fmt: skip


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cases", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--base-channels", type=int, default=12)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="Measured epochs (best kept).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads.")
    parser.add_argument("--modes", default="none,cpu,device",
                        help="cxrseg loops to time: augmentation none, cpu, device")  # fmt: skip
    parser.add_argument("--force-bf16", action="store_true",
                        help="time bfloat16 even where the CPU has no native bfloat16")  # fmt: skip
    return parser.parse_args()


def precisions(args: argparse.Namespace, device: torch.device) -> list[torch.dtype | None]:
    """float32, then the autocast dtype cxrseg picks here (bfloat16 with --force-bf16)."""
    picked = autocast_dtype(device)[0]
    if picked is None and args.force_bf16:
        picked = torch.bfloat16
    return [None] if picked is None else [None, picked]


def main() -> None:
    args = parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch finds no CUDA GPU")
    device = torch.device(args.device)
    cases = phantoms(args.cases, args.size)
    print(cpu_header() if device.type == "cpu" else torch.cuda.get_device_name(device))
    print(f"device {device}, {args.size} px, batch {args.batch_size}, U-Net depth 5 base "
          f"{args.base_channels}, {args.cases} cases, {args.workers} workers, "
          f"{torch.get_num_threads()} torch threads, channels-last, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    loops: list[tuple[str, torch.dtype | None, Iterator[dict]]] = []
    for dtype in precisions(args, device):
        loops.append(("plain torch (no augmentation)", dtype,
                      plain_torch(args, cases, device, dtype)))  # fmt: skip
        for mode in args.modes.split(","):
            name = f"cxrseg, augment {'off' if mode == 'none' else 'on ' + mode}"
            loops.append((name, dtype, cxrseg_loop(args, cases, device, mode, dtype)))
    # Round-robin, one epoch of each loop per round (round 0 warms up), so a change in the
    # machine's load hits every loop alike.
    epochs: dict[int, list[dict]] = {i: [] for i in range(len(loops))}
    for round_ in range(args.repeats + 1):
        for i, (_, _, loop) in enumerate(loops):
            measured = next(loop)
            if round_:
                epochs[i].append(measured)
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print_table([(name, dtype, epochs[i]) for i, (name, dtype, _) in enumerate(loops)])


def print_table(rows: list[tuple[str, torch.dtype | None, list[dict]]]) -> None:
    """ms per step (fastest epoch), CPU ms per step (median), data wait (fastest epoch), and
    ratios to the plain loop of the same precision and to today's CPU default."""
    summary = []
    for name, dtype, epochs in rows:
        best = min(epochs, key=lambda e: e["seconds"])
        cpu = statistics.median(e["cpu"] / e["steps"] for e in epochs)
        summary.append((name, dtype, best["seconds"] / best["steps"], cpu, best["wait"]))
    plain = {d: ms for n, d, ms, _, _ in summary if n.startswith("plain")}
    today = next(((ms, c) for n, d, ms, c, _ in summary if d is None and "on cpu" in n), None)
    head = ("ms/step", "CPU ms/step", "data wait", "vs plain", "vs today", "CPU vs today")
    print(f"{'loop':32s} {'precision':>9s} " + " ".join(f"{h:>12s}" for h in head))
    for name, dtype, wall, cpu, wait in summary:
        vs_today = f"{today[0] / wall:11.2f}x {today[1] / cpu:11.2f}x" if today else ""
        print(f"{name:32s} {precision_name(dtype):>9s} {1000 * wall:12.0f} {1000 * cpu:12.0f} "
              f"{100 * wait:11.1f}% {plain[dtype] / wall:11.2f}x {vs_today}")  # fmt: skip
    print(
        "vs today: against today's CPU default before bfloat16 (augment on cpu, float32); "
        "CPU: process time of all threads, steadier than wall time on a shared machine."
    )


if __name__ == "__main__":
    main()
