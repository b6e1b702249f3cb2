"""Options picked from the data and the machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cxrseg.data import discover
from cxrseg.errors import InputError
from cxrseg.io import write_image, write_mask
from cxrseg.training import defaults
from cxrseg.training.config import TrainConfig


def _folder(root: Path, sizes: list[tuple[int, int]]) -> Path:
    for i, (h, w) in enumerate(sizes):
        write_image(root / "images" / f"c{i}.png", np.zeros((h, w), np.float32))
        write_mask(root / "masks" / f"c{i}.png", np.zeros((h, w), np.uint8))
    return root


def test_size_is_the_median_longer_side_rounded_to_32(tmp_path: Path) -> None:
    cases = discover(_folder(tmp_path, [(90, 120), (100, 140), (60, 40)])).cases
    size, reason = defaults.pick_size(cases)
    assert size == 128 and "median image size 120" in reason


def test_size_is_capped_at_512(tmp_path: Path) -> None:
    cases = discover(_folder(tmp_path, [(700, 600)])).cases
    assert defaults.pick_size(cases)[0] == 512


def test_mode_is_sigmoid_only_when_structures_overlap() -> None:
    apart = np.zeros((2, 2, 8, 8), np.uint8)
    apart[:, 0, :4], apart[:, 1, 4:] = 1, 1
    assert defaults.pick_mode(apart)[0] == "softmax"
    overlapping = apart.copy()
    overlapping[1, 1, :] = 1
    assert defaults.pick_mode(overlapping)[0] == "sigmoid"


def test_cpu_batch_is_a_power_of_two_within_cap_and_cases() -> None:
    config = TrainConfig()
    batch, reason = defaults.pick_batch_size(config, 256, torch.device("cpu"), train_cases=100)
    assert batch == defaults.CPU_BATCH_CAP and "RAM available" in reason
    assert defaults.pick_batch_size(config, 256, torch.device("cpu"), train_cases=3)[0] == 2


def test_memory_estimate_grows_with_size_and_width() -> None:
    small = defaults.estimate_image_bytes(128, {"base_channels": 16})
    assert defaults.estimate_image_bytes(256, {"base_channels": 16}) == 4 * small
    assert defaults.estimate_image_bytes(128, {"base_channels": 32}) == 2 * small
    assert defaults.estimate_image_bytes(128, {"base_channels": 16}, half=True) == small // 2


def test_auto_device_and_cpu_workers() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert defaults.pick_device("auto").type == expected
    assert defaults.pick_workers(torch.device("cpu"))[0] == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_refused_with_a_fix() -> None:
    with pytest.raises(InputError, match="use --device cpu"):
        defaults.pick_device("cuda")
