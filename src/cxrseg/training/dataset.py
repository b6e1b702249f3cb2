"""The torch ``Dataset`` that feeds training: cases loaded once, resized, augmented per sample.

Each case is read once (:func:`cache_cases`), resized to the square training size and kept in
memory as a float32 image in [0, 1] and a uint8 0/1 mask stack. :class:`SegmentationDataset`
then hands out samples, optionally augmented on the CPU by a :class:`cxrseg.augment.Pipeline`
whose random draws come from ``(seed, epoch, index)``, so the samples do not depend on the
number of data-loader workers. The sampler (:class:`EpochSampler`) yields ``(epoch, index)``
pairs, which keeps persistent workers in step with the epoch.

Normalisation (:func:`normalize_batch`) runs on the training device after the augmentation,
so CPU and on-device augmentation see the same [0, 1] images. Prediction must apply the same
resize (:func:`cxrseg.data.loading.resize_pair`, ``resize`` in the checkpoint) and
normalisation (``normalization`` in the checkpoint).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils import data as torch_data
from torch.utils.data import DistributedSampler, Sampler

from cxrseg.augment.pipeline import Pipeline
from cxrseg.data import load_case
from cxrseg.data.loading import resize_pair

if TYPE_CHECKING:
    from cxrseg.data import Case, CaseFolder

__all__ = [
    "CachedCases",
    "EpochSampler",
    "SegmentationDataset",
    "augment_on_device",
    "build_pipeline",
    "cache_cases",
    "device_augment",
    "normalize_batch",
]

logger = logging.getLogger(__name__)

NORMALIZATIONS = ("zscore", "unit")


def normalize_batch(images: torch.Tensor, method: str = "zscore") -> torch.Tensor:
    """Normalise a batch of images in [0, 1] for the network.

    Args:
        images: (N, C, H, W) float tensor in [0, 1].
        method: ``"zscore"`` subtracts each image's mean and divides by its standard
            deviation; ``"unit"`` leaves the [0, 1] values as they are.

    Returns:
        (N, C, H, W) float tensor.
    """
    if method == "unit":
        return images
    if method != "zscore":
        raise ValueError(f"normalization {method!r} is not one of {NORMALIZATIONS}.")
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    std = images.std(dim=(1, 2, 3), keepdim=True)
    return (images - mean) / std.clamp_min(1e-6)


# --- cache --------------------------------------------------------------------------------


@dataclass
class CachedCases:
    """Resized cases kept in memory.

    Attributes:
        case_ids: One id per case.
        images: (N, size, size) float32 in [0, 1].
        masks: (N, K, size, size) uint8 0/1, channels in the order of ``structures``.
        structures: Structure names, one per mask channel.
        original_sizes: ``(height, width)`` of each case before resizing.
    """

    case_ids: list[str]
    images: np.ndarray
    masks: np.ndarray
    structures: list[str]
    original_sizes: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.case_ids)


def cache_cases(
    dataset: CaseFolder,
    cases: Sequence[Case],
    size: int,
    resize: str = "squash",
    structures: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CachedCases:
    """Load, resize and stack the given cases of a discovered dataset.

    Args:
        dataset: From :func:`cxrseg.data.discover`.
        cases: The cases to load (e.g. the training split).
        size: Square output size.
        resize: ``"squash"`` or ``"letterbox"``.
        structures: Mask channels in order; defaults to ``dataset.structures``. A structure
            missing from a case gives an empty mask.
        progress: Called with ``(done, total)`` after each case.
    """
    names = list(structures if structures is not None else dataset.structures)
    images = np.zeros((len(cases), size, size), np.float32)
    masks = np.zeros((len(cases), len(names), size, size), np.uint8)
    sizes: list[tuple[int, int]] = []
    for i, case in enumerate(cases):
        image, case_masks = load_case(case, dataset)
        sizes.append((int(image.shape[0]), int(image.shape[1])))
        named = {n: (case_masks[n] > 0).astype(np.uint8) for n in names if n in case_masks}
        images[i], named = resize_pair(image, named, size, resize)
        for k, name in enumerate(names):
            if name in named:
                masks[i, k] = named[name]
        if progress is not None:
            progress(i + 1, len(cases))
    logger.debug("cached %d cases at %d px (%s)", len(cases), size, resize)
    return CachedCases([c.case_id for c in cases], images, masks, names, sizes)


# --- dataset and sampler ------------------------------------------------------------------


class SegmentationDataset(torch_data.Dataset):
    """Samples of cached cases, augmented on the CPU or handed out raw.

    ``dataset[(epoch, index)]`` (what :class:`EpochSampler` yields) or ``dataset[index]``
    (epoch 0) returns a dict with ``"image"`` (1, H, W) float32 in [0, 1], ``"masks"``
    (K, H, W) uint8 0/1 and ``"index"``.

    Args:
        cases: From :func:`cache_cases`.
        pipeline: A :class:`cxrseg.augment.Pipeline` applied per sample with its generator
            from ``(pipeline seed, epoch, index)``; ``None`` hands out the cached arrays
            (validation, or augmentation on the device with ``Pipeline.batch``).
    """

    def __init__(self, cases: CachedCases, pipeline: Any | None = None):
        self.cases = cases
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image = self.cases.images[index]
        masks = self.cases.masks[index]
        if self.pipeline is not None:
            named = dict(zip(self.cases.structures, masks, strict=True))
            image, named = self.pipeline(image, named, index=index, epoch=epoch)
            masks = np.stack([named[name] for name in self.cases.structures])
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],
            "masks": torch.from_numpy(np.ascontiguousarray(masks, dtype=np.uint8)),
            "index": index,
        }


class EpochSampler(Sampler[tuple[int, int]]):
    """Shuffled ``(epoch, index)`` pairs, split over processes like ``DistributedSampler``.

    The order depends only on ``(seed, epoch)``, so a resumed run sees the same batches as
    an uninterrupted one. Call :meth:`set_epoch` before each epoch.

    Args:
        length: Dataset length.
        rank: This process's rank; ``world_size`` the number of processes.
        shuffle: Shuffle each epoch (training) or keep the order (validation).
        seed: Shuffling seed.
    """

    def __init__(
        self, length: int, rank: int = 0, world_size: int = 1, shuffle: bool = True, seed: int = 0
    ):
        self.epoch = 0
        self._inner: DistributedSampler[int] = DistributedSampler(
            range(length),  # type: ignore[arg-type]
            num_replicas=world_size,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=False,
        )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation to hand out."""
        self.epoch = epoch
        self._inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, int(i)) for i in self._inner)

    def __len__(self) -> int:
        return len(self._inner)


# --- augmentation on the device ---------------------------------------------------------


def build_pipeline(recipe: dict[str, Any] | None, seed: int) -> Any:
    """A :class:`cxrseg.augment.pipeline.Pipeline` from its dict, seeded with ``seed``.

    Returns ``None`` for a recipe without operations (training without augmentation).
    """
    if not recipe or not recipe.get("operations"):
        return None
    return Pipeline.from_dict({**recipe, "seed": seed})


def augment_on_device(augment_on: str, device: torch.device) -> bool:
    """Whether ``augment_on`` (``"auto"``/``"cpu"``/``"device"``) means augmenting on the device."""
    if augment_on == "auto":
        return device.type == "cuda"
    return augment_on == "device"


def device_augment(pipeline: Any, labels: list[str], epoch: int) -> Callable[..., Any]:
    """``augment(images, masks, indices) -> (images, masks)`` with ``Pipeline.batch`` for one epoch.

    Sample ``indices[i]`` gets the same draw as ``SegmentationDataset`` would give it on the CPU.
    """

    def augment(images: torch.Tensor, masks: torch.Tensor, indices: torch.Tensor) -> Any:
        return pipeline.batch(images, masks, indices=[int(i) for i in indices], epoch=epoch,
                              labels=labels)  # fmt: skip

    return augment
