"""Training throughput: cxrseg's loop against a plain PyTorch loop of the same U-Net width.

Measures, on synthetic phantoms cached in memory at the training size:

- ``plain torch``: a bare loop over pre-stacked tensors (no augmentation, no data loader):
  forward, Dice+CE loss, backward, AdamW step. The ceiling for this model on this device.
- ``cxrseg, augment on cpu``: :func:`cxrseg.training.loop.train_one_epoch` with the default
  augmentation recipe applied per sample in the data loader (``--workers`` processes).
- ``cxrseg, augment on device``: the same, with ``Pipeline.batch`` on the training device.
- ``cxrseg, no augmentation``: the loop's own overhead.

For each it prints training images/s, the share of step time spent waiting for the next
batch (the data wait) and the ratio to the plain loop. Target: data wait <= 5% on the GPU.

Usage::

    python benchmarks/bench_train.py                      # CPU, 256 px, base 12
    python benchmarks/bench_train.py --device cuda --batch-size 16 --workers 4

Not collected by pytest.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from cxrseg.augment.pipeline import Pipeline
from cxrseg.training.dataset import (
    CachedCases,
    EpochSampler,
    SegmentationDataset,
    device_augment,
)
from cxrseg.losses import SegmentationLoss, masks_to_target
from cxrseg.models import create_model
from cxrseg.phantom import make_phantom
from cxrseg.training.config import TrainConfig, default_augmentation
from cxrseg.training.distributed import DistInfo
from cxrseg.training.loop import StepSettings, build_optimizer, build_scheduler, train_one_epoch

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


def plain_torch(args: argparse.Namespace, cases: CachedCases, device: torch.device) -> dict:
    """A bare PyTorch loop of the same model: the ceiling."""
    model, optimizer = model_and_optimizer(args, device)
    loss_fn = SegmentationLoss("softmax", "dice_ce").to(device)
    images = torch.from_numpy(cases.images)[:, None].to(device)
    target = masks_to_target(cases.masks, "softmax").to(device)
    n, batch = len(cases), args.batch_size
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None

    def epoch() -> float:
        sync(device)
        start = time.perf_counter()
        for i in range(0, n - batch + 1, batch):
            x = images[i : i + batch].contiguous(memory_format=torch.channels_last)
            if amp is not None:
                with amp:
                    logits = model(x)
            else:
                logits = model(x)
            loss = loss_fn(logits.float(), target[i : i + batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        return time.perf_counter() - start

    epoch()  # warm-up
    seconds = min(epoch() for _ in range(args.repeats))
    return {"images_s": (n // batch) * batch / seconds, "wait": 0.0}


def cxrseg_loop(args: argparse.Namespace, cases: CachedCases, device: torch.device,
                augment_on: str) -> dict:  # fmt: skip
    """cxrseg's train_one_epoch with the default augmentation on the CPU, device or off."""
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
    amp = torch.bfloat16 if device.type == "cuda" else None
    settings = StepSettings(device, "softmax", "zscore", True, amp, 1.0)
    loss_fn = SegmentationLoss("softmax", "dice_ce").to(device)
    results = []
    for epoch in range(args.repeats + 1):  # the first epoch warms up
        sampler.set_epoch(epoch)
        augment = device_augment(pipeline, NAMES, epoch) if augment_on == "device" else None

        stats = train_one_epoch(model, loader, optimizer, scheduler, loss_fn, settings,
                                epoch=epoch + 1, dist=DistInfo(), augment=augment)  # fmt: skip
        results.append((stats.images / stats.seconds, stats.data_seconds / stats.seconds))
    best = max(results[1:])
    return {"images_s": best[0], "wait": best[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cases", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--base-channels", type=int, default=12)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="Measured epochs (best kept).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch finds no CUDA GPU")
    device = torch.device(args.device)
    cases = phantoms(args.cases, args.size)
    print(f"device {device}, {args.size} px, batch {args.batch_size}, U-Net depth 5 base "
          f"{args.base_channels}, {args.cases} cases, {args.workers} workers, "
          f"{torch.get_num_threads()} torch threads")  # fmt: skip
    # The plain loop runs first and last (best kept), so warm-up and drift favour neither side.
    first = plain_torch(args, cases, device)
    rows = []
    for mode in ("none", "cpu", "device"):
        rows.append((f"cxrseg, augment {'off' if mode == 'none' else 'on ' + mode}",
                     cxrseg_loop(args, cases, device, mode)))  # fmt: skip
    last = plain_torch(args, cases, device)
    best = max(first, last, key=lambda row: row["images_s"])
    rows.insert(0, ("plain torch (no augmentation)", best))
    ceiling = rows[0][1]["images_s"]
    print(f"{'loop':34s} {'images/s':>9s} {'data wait':>10s} {'vs plain':>9s}")
    for name, row in rows:
        print(f"{name:34s} {row['images_s']:9.2f} {100 * row['wait']:9.1f}% "
              f"{row['images_s'] / ceiling:8.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
