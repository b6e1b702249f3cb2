"""The CUDA paths: batch augmentation on the GPU, mixed-precision training with on-device
augmentation, prediction on the GPU, and the out-of-memory message.

Skipped where CUDA is absent (CI has no GPU). ``CXRSEG_TEST_DEVICE=cpu python -m pytest
tests/test_cuda.py`` runs the device-independent ones on the CPU, to check the tests
themselves on a machine without a GPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from training_builders import phantom_folder, tiny_config

DEVICE = os.environ.get("CXRSEG_TEST_DEVICE", "cuda")
ON_GPU = DEVICE.startswith("cuda")

pytestmark = pytest.mark.skipif(
    ON_GPU and not torch.cuda.is_available(),
    reason="needs a CUDA GPU (set CXRSEG_TEST_DEVICE=cpu to check these tests on the CPU)",
)
gpu_only = pytest.mark.skipif(not ON_GPU, reason="compares the GPU with the CPU")


def seed_pipeline():
    from cxrseg.augment import Pipeline

    pipeline = Pipeline(seed=3)
    pipeline.random_distortion(probability=1, grid_width=5, grid_height=5, magnitude=8)
    pipeline.gaussian_distortion(1, 5, 5, 8, "bell", "in")
    pipeline.rotate(probability=1, max_left_rotation=10, max_right_rotation=10)
    return pipeline


def phantom_batch(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from cxrseg.phantom import make_phantom

    phantoms = [make_phantom(seed, size) for seed in range(n)]
    images = torch.from_numpy(np.stack([p.image for p in phantoms])[:, None])
    masks = torch.from_numpy(
        np.stack([np.stack([p.masks["left_lung"], p.masks["right_lung"]]) for p in phantoms])
    )
    return images, masks


def test_batch_augmentation_stays_on_the_device_and_keeps_labels() -> None:
    images, masks = phantom_batch(4, 128)
    out_images, out_masks = seed_pipeline().batch(images.to(DEVICE), masks.to(DEVICE))
    assert out_images.device.type == torch.device(DEVICE).type
    assert out_masks is not None and out_masks.device == out_images.device
    assert set(torch.unique(out_masks).tolist()) <= set(torch.unique(masks).tolist())
    assert float(out_images.min()) >= 0.0 and float(out_images.max()) <= 1.0


@gpu_only
def test_gpu_batch_augmentation_matches_the_cpu() -> None:
    images, masks = phantom_batch(4, 128)
    cpu_images, cpu_masks = seed_pipeline().batch(images, masks)
    gpu_images, gpu_masks = seed_pipeline().batch(images.cuda(), masks.cuda())
    assert gpu_masks is not None and cpu_masks is not None
    torch.testing.assert_close(gpu_images.cpu(), cpu_images, atol=2e-3, rtol=0)
    # nearest sampling may pick the other neighbour where a coordinate sits on a pixel edge
    assert (gpu_masks.cpu() != cpu_masks).float().mean() < 1e-3


def test_mixed_precision_training_with_augmentation_on_the_device(tmp_path: Path) -> None:
    from cxrseg.training import train
    from cxrseg.training.checkpoint import load_checkpoint

    data = phantom_folder(tmp_path, n=8, size=64)
    config = tiny_config(size=64, epochs=2, device=DEVICE, amp=True, augment_on="device",
                         channels_last=True, deterministic=False)  # fmt: skip
    result = train(data, tmp_path / "run", config)
    assert result.epoch == 2
    assert all(np.isfinite(row["train_loss"]) for row in result.history)
    model, meta = load_checkpoint(tmp_path / "run" / "best")  # loads on the CPU
    assert next(model.parameters()).device.type == "cpu"
    assert meta["labels"]


@gpu_only
def test_training_picks_bfloat16_autocast_where_the_gpu_has_it() -> None:
    from cxrseg.training.defaults import amp_dtype

    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert amp_dtype(tiny_config(device="cuda", amp=True), torch.device("cuda")) == expected
    assert amp_dtype(tiny_config(device="cuda", amp=False), torch.device("cuda")) is None


@gpu_only
def test_gpu_prediction_agrees_with_the_cpu() -> None:
    from cxrseg.phantom import make_phantom
    from cxrseg.pretrained import load

    image = make_phantom(5, 384).image
    cpu = load("lungs", device="cpu", runtime="torch").predict(image).masks["lungs"]
    gpu_predictor = load("lungs", device="cuda")
    assert gpu_predictor.backend.device.startswith("cuda")
    gpu = gpu_predictor.predict(image).masks["lungs"]
    assert (cpu != gpu).mean() < 2e-3  # bfloat16 autocast moves a few edge pixels at most


@gpu_only
def test_running_out_of_gpu_memory_suggests_a_smaller_batch(tmp_path: Path) -> None:
    from cxrseg.training import TrainingStopped, train

    data = phantom_folder(tmp_path, n=8, size=64)
    free, _ = torch.cuda.mem_get_info()
    # a wide U-Net on 1024 px batches: activations alone are several times the free memory
    config = tiny_config(size=1024, epochs=1, batch_size=64, device="cuda", augmentation={},
                         deterministic=False,
                         model_kwargs={"depth": 3, "base_channels": 256})  # fmt: skip
    assert free < 64 * 256 * 1024 * 1024 * 4 * 6
    with pytest.raises(TrainingStopped, match="--batch-size 32"):
        train(data, tmp_path / "run", config)
    torch.cuda.empty_cache()
