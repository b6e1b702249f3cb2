"""The training Dataset: cached cases, per-sample augmentation keyed by (epoch, index), sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cxrseg.augment.pipeline import Pipeline
from cxrseg.data import discover
from cxrseg.training.dataset import (
    CachedCases,
    EpochSampler,
    SegmentationDataset,
    cache_cases,
    normalize_batch,
)
from training_builders import lungs_folder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> CachedCases:
    root = lungs_folder(tmp_path_factory.mktemp("lungs"), n=6, size=48)
    dataset = discover(root)
    return cache_cases(dataset, dataset.cases, 32)


def _pipeline() -> Pipeline:
    pipeline = Pipeline(seed=3)
    pipeline.random_distortion(1.0, 4, 4, 3)
    pipeline.brightness(1.0, 0.8, 1.2)
    return pipeline


def test_cache_resizes_every_case_to_the_training_size(cached: CachedCases) -> None:
    assert cached.images.shape == (6, 32, 32) and cached.images.dtype == np.float32
    assert cached.masks.shape == (6, 1, 32, 32) and cached.masks.dtype == np.uint8
    assert set(np.unique(cached.masks)) == {0, 1}
    assert cached.original_sizes == [(48, 48)] * 6
    assert cached.structures == ["foreground"]
    assert cached.images.min() >= 0.0 and cached.images.max() <= 1.0


def test_cache_reports_progress_per_case(tmp_path: Path) -> None:
    dataset = discover(lungs_folder(tmp_path, n=3))
    calls: list[tuple[int, int]] = []
    cache_cases(dataset, dataset.cases, 32, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_sample_without_pipeline_is_the_cached_case(cached: CachedCases) -> None:
    sample = SegmentationDataset(cached)[2]
    assert sample["image"].shape == (1, 32, 32) and sample["masks"].shape == (1, 32, 32)
    assert np.array_equal(sample["image"][0].numpy(), cached.images[2])
    assert np.array_equal(sample["masks"].numpy(), cached.masks[2])
    assert sample["index"] == 2


def test_augmented_sample_depends_only_on_epoch_and_index(cached: CachedCases) -> None:
    dataset = SegmentationDataset(cached, _pipeline())
    first, again = dataset[(1, 4)], dataset[(1, 4)]
    other_epoch = dataset[(2, 4)]
    assert torch.equal(first["image"], again["image"])
    assert torch.equal(first["masks"], again["masks"])
    assert not torch.equal(first["image"], other_epoch["image"])
    assert not np.array_equal(first["image"][0].numpy(), cached.images[4])


def _epoch_batches(dataset: SegmentationDataset, workers: int) -> list[torch.Tensor]:
    sampler = EpochSampler(len(dataset), seed=1)
    sampler.set_epoch(3)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=workers)
    return [batch["image"] for batch in loader]


def test_worker_count_does_not_change_the_batches(cached: CachedCases) -> None:
    dataset = SegmentationDataset(cached, _pipeline())
    alone, with_workers = _epoch_batches(dataset, 0), _epoch_batches(dataset, 2)
    assert len(alone) == len(with_workers) == 2
    assert all(torch.equal(a, b) for a, b in zip(alone, with_workers, strict=True))


def test_sampler_order_depends_only_on_seed_and_epoch() -> None:
    sampler = EpochSampler(20, seed=7)
    sampler.set_epoch(1)
    first = list(sampler)
    sampler.set_epoch(2)
    second = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) == first
    assert [i for _, i in first] != [i for _, i in second]
    assert {e for e, _ in first} == {1} and sorted(i for _, i in first) == list(range(20))


def test_sampler_splits_an_epoch_between_processes() -> None:
    shares = []
    for rank in (0, 1):
        sampler = EpochSampler(10, rank=rank, world_size=2, seed=0)
        sampler.set_epoch(5)
        shares.append({i for _, i in sampler})
        assert len(sampler) == 5
    assert shares[0].isdisjoint(shares[1]) and shares[0] | shares[1] == set(range(10))


def test_zscore_gives_each_image_zero_mean_and_unit_std() -> None:
    images = torch.rand(3, 1, 16, 16) * torch.tensor([1.0, 0.2, 0.5]).view(3, 1, 1, 1)
    out = normalize_batch(images, "zscore")
    assert torch.allclose(out.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.std(dim=(1, 2, 3)), torch.ones(3), atol=1e-5)


def test_unit_normalisation_leaves_images_alone_and_bad_names_are_refused() -> None:
    images = torch.rand(2, 1, 8, 8)
    assert torch.equal(normalize_batch(images, "unit"), images)
    with pytest.raises(ValueError, match="'minmax'"):
        normalize_batch(images, "minmax")
