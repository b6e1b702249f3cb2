"""Pipeline: Augmentor's method names, one draw for every target, replayable samples.

A user of Augmentor changes one import::

    p = Pipeline(seed=0)
    p.random_distortion(probability=1, grid_width=5, grid_height=5, magnitude=8)
    p.gaussian_distortion(1, 5, 5, 6, corner="bell", method="in")
    image, masks = p(image, masks)

Sample ``index`` of ``epoch`` draws its parameters from generators made from
``SeedSequence([seed, epoch, index])`` (one child per operation), so the same sample gets the
same parameters whatever the number of workers, the batch size or the order of calls.
Consecutive spatial operations are composed into one backward map and the image is resampled
once; masks use the same map with nearest-neighbour sampling, so their values never change.
A horizontal flip swaps ``left_*`` and ``right_*`` mask names. Pipelines save to and load from
plain dicts and YAML files; :meth:`Pipeline.batch` runs the same samples on torch tensors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrseg.augment import transforms as T
from cxrseg.augment.base import Params, RandomTransform
from cxrseg.augment.geometry import chain_map
from cxrseg.augment.pipeline_methods import PipelineMethods
from cxrseg.augment.pipeline_targets import (
    Masks,
    image_from_float,
    image_to_float,
    mask_list,
    rebuild_masks,
)
from cxrseg.augment.resample_cv import warp
from cxrseg.checks import check_choice, check_index, check_number
from cxrseg.data.loading import load_case
from cxrseg.errors import InputError
from cxrseg.io import atomic_write, parse_yaml

if TYPE_CHECKING:
    import torch

    from cxrseg.data import Dataset

__all__ = ["FORMAT_VERSION", "Masks", "Pipeline"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_NATIVE_SCALES = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
BORDERS = ("constant", "reflect")


class Pipeline(PipelineMethods):
    """An ordered list of random transforms with a seed.

    Args:
        seed: Root of every sample's random generators.
        interpolation: Image interpolation for spatial transforms (masks are always nearest).
        border: How pixels mapped from outside the image are filled: ``constant`` or ``reflect``.
        fill: Image value, in [0, 1], of ``constant`` borders (masks get 0).
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        interpolation: str = "bilinear",
        border: str = "constant",
        fill: float = 0.0,
    ) -> None:
        self.seed = check_index("seed", seed)
        self.interpolation = check_choice(
            "Pipeline", "interpolation", interpolation, INTERPOLATIONS
        )
        self.border = check_choice("Pipeline", "border", border, BORDERS)
        self.fill = check_number("Pipeline", "fill", fill, minimum=0.0, maximum=1.0)
        self.operations: list[RandomTransform] = []

    # --- building -------------------------------------------------------------------------

    def add(self, transform: RandomTransform) -> Pipeline:
        """Append a transform (any :mod:`cxrseg.augment.transforms` class); returns ``self``."""
        if not isinstance(transform, RandomTransform):
            raise TypeError(f"add() takes a transform, not {type(transform).__name__}.")
        self.operations.append(transform)
        return self

    # --- parameters -----------------------------------------------------------------------

    def generators(self, index: int = 0, epoch: int = 0) -> list[np.random.Generator]:
        """One generator per operation for sample ``index`` of ``epoch``.

        They are the children of ``SeedSequence([seed, epoch, index])``, so adding an operation
        at the end leaves the draws of the others unchanged.
        """
        root = np.random.SeedSequence(
            [self.seed, check_index("epoch", epoch), check_index("index", index)]
        )
        return [np.random.default_rng(child) for child in root.spawn(len(self.operations))]

    def check_size(self, height: int, width: int) -> None:
        """Raise :class:`~cxrseg.errors.InputError` if some operation cannot use this size."""
        for op in self.operations:
            op.check_size(height, width)

    def sample_params(
        self, height: int, width: int, *, index: int = 0, epoch: int = 0
    ) -> list[Params]:
        """Parameters of sample ``index`` of ``epoch`` for an image of this size.

        Returns:
            One JSON-able dict per operation: ``{"op": name, "applied": bool, ...}``.
        """
        rngs = self.generators(index, epoch)
        return [
            {"op": op.name, **op.sample_params(rng, height, width)}
            for op, rng in zip(self.operations, rngs, strict=True)
        ]

    def _check_params(self, params: Sequence[Params]) -> None:
        names = [p.get("op") if isinstance(p, Mapping) else None for p in params]
        expected = [op.name for op in self.operations]
        if names != expected:
            raise InputError(
                f"parameters for operations {names} do not fit this pipeline's {expected}.",
                hint="replay parameters with the pipeline that drew them (its to_dict/YAML).",
            )

    def check_mask_names(self, names: Sequence[str] | None) -> None:
        """Refuse mask names a horizontal flip would mislabel (see ``FlipLeftRight``).

        Raises:
            InputError: Names say left/right and a flip does not swap them, or a side has no
                partner to swap with.
        """
        sided = [n for n in names or [] if T.mentions_left_right(n)]
        flips = [op for op in self.operations if isinstance(op, T.FlipLeftRight)]
        if not sided or not flips:
            return
        if any(not op.swap_left_right for op in flips):
            raise InputError(
                f"flip_left_right with swap_left_right=False would mislabel masks {sided}: a "
                "flipped left lung lies where the right lung belongs.",
                hint="use flip_left_right(probability, swap_left_right=True) or rename the masks.",
            )
        missing = [n for n in sided if T.swap_left_right_name(n) not in (names or [])]
        if missing:
            partners = [T.swap_left_right_name(n) for n in missing]
            raise InputError(
                f"flip_left_right swaps left/right masks, but {missing} have no partner "
                f"{partners}.",
                hint="give both sides, or drop flip_left_right from the pipeline.",
            )

    # --- applying -------------------------------------------------------------------------

    def __call__(
        self, image: np.ndarray, masks: Masks = None, *, index: int = 0, epoch: int = 0
    ) -> tuple[np.ndarray, Any]:
        """Augment one image and its masks as sample ``index`` of ``epoch``.

        Args:
            image: (H, W) or (H, W, C), uint8, uint16 or float in [0, 1].
            masks: dict name -> (H, W) integer array, list of such arrays, or None.
            index: Sample number (e.g. the dataset index).
            epoch: Epoch number.

        Returns:
            ``(image, masks)`` with the input's dtypes and containers.
        """
        image_out, masks_out, _ = self.apply_with_params(image, masks, index=index, epoch=epoch)
        return image_out, masks_out

    def apply_with_params(
        self, image: np.ndarray, masks: Masks = None, *, index: int = 0, epoch: int = 0
    ) -> tuple[np.ndarray, Any, list[Params]]:
        """Like calling the pipeline, but also return the parameters drawn (for :meth:`replay`)."""
        if not isinstance(image, np.ndarray):
            raise TypeError(f"image must be a numpy array, not {type(image).__name__}.")
        params = self.sample_params(image.shape[0], image.shape[1], index=index, epoch=epoch)
        image_out, masks_out = self.replay(image, masks, params)
        return image_out, masks_out, params

    def replay(
        self, image: np.ndarray, masks: Masks, params: Sequence[Params]
    ) -> tuple[np.ndarray, Any]:
        """Apply recorded parameters (from :meth:`sample_params` or a manifest) to an image."""
        self._check_params(params)
        # Integer images that only move are resampled in their own dtype (OpenCV's fast path,
        # rounded like the float route to within one grey level); intensity ops need floats.
        native = (
            isinstance(image, np.ndarray)
            and image.dtype in _NATIVE_SCALES
            and image.ndim in (2, 3)
            and image.size > 0
            and not any(
                p["applied"] and isinstance(op, T.IntensityTransform)
                for op, p in zip(self.operations, params, strict=True)
            )
        )
        x = image if native else image_to_float(image)
        fill = round(self.fill * _NATIVE_SCALES[image.dtype]) if native else self.fill
        height, width = x.shape[:2]
        arrays, names = mask_list(masks, (height, width))
        self.check_mask_names(names)
        pending: list[tuple[T.SpatialTransform, Params]] = []
        flips = 0

        def flush() -> None:
            nonlocal x, arrays
            if pending:
                # one exact map for the whole run of spatial ops, so the data is resampled once
                steps = [op.step(params, height, width) for op, params in pending]
                maps = chain_map(height, width, steps)
                x, arrays = warp(
                    x,
                    arrays,
                    maps,
                    interpolation=self.interpolation,
                    border=self.border,
                    fill=fill,
                )
            pending.clear()

        for op, p in zip(self.operations, params, strict=True):
            if not p["applied"]:
                continue
            if isinstance(op, T.SpatialTransform):
                pending.append((op, p))
                flips += isinstance(op, T.FlipLeftRight)
            elif isinstance(op, T.IntensityTransform):
                flush()
                x = op.apply(x, p)
        flush()
        out = (x.copy() if x is image else x) if native else image_from_float(x, image.dtype)
        return out, rebuild_masks(masks, arrays, names, flips % 2 == 1)

    def sample(
        self, n: int, source: Sequence[tuple[np.ndarray, Masks]] | Dataset, *, epoch: int = 0
    ) -> list[tuple[np.ndarray, Any]]:
        """``n`` augmented pairs, cycling through ``source`` in order (sample k uses pair k % len).

        Like Augmentor's ``DataPipeline.sample(n)`` but deterministic: sample ``k`` is drawn with
        ``index=k``, so it is the same whatever else is sampled.

        Args:
            n: Number of samples.
            source: A list of ``(image, masks)`` pairs or a :class:`cxrseg.data.Dataset`.
            epoch: Epoch number.
        """
        return list(self.iter_samples(n, source, epoch=epoch))

    def iter_samples(
        self, n: int, source: Sequence[tuple[np.ndarray, Masks]] | Dataset, *, epoch: int = 0
    ) -> Iterator[tuple[np.ndarray, Any]]:
        """Generator form of :meth:`sample`: pairs are loaded and augmented one at a time."""
        n = check_index("n", n)
        cases = getattr(source, "cases", None)
        count = len(cases) if cases is not None else len(source)  # type: ignore[arg-type]
        if count == 0 and n > 0:
            raise InputError(
                "cannot sample from an empty dataset.",
                hint="give at least one (image, masks) pair.",
            )
        for k in range(n):
            masks: Masks
            if cases is not None:
                image, masks = load_case(cases[k % count], source)  # type: ignore[arg-type]
            else:
                image, masks = source[k % count]  # type: ignore[index]
            yield self(image, masks, index=k, epoch=epoch)

    def batch(
        self,
        images: torch.Tensor,
        masks: torch.Tensor | None = None,
        *,
        indices: Sequence[int] | None = None,
        epoch: int = 0,
        labels: Sequence[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augment a batch of tensors; sample ``i`` uses the parameters of ``indices[i]``.

        Parameters come from the same per-sample generators as :meth:`__call__`, so
        ``p.batch(x, m, indices=[k])`` matches ``p(x_k, m_k, index=k)`` up to interpolation
        rounding. Geometry is built on the tensors' device.

        Args:
            images: float (N, C, H, W) in [0, 1], or uint8/uint16 (same dtype back).
            masks: (N, K, H, W) integer or bool, or None.
            indices: Sample numbers, default ``range(N)``.
            epoch: Epoch number.
            labels: Names of the K mask channels; ``left_*``/``right_*`` channels swap on a
                horizontal flip. Without names channels are only flipped.
        """
        # lazy: start-up time (the batch path imports torch)
        from cxrseg.augment.pipeline_batch import apply_batch

        return apply_batch(self, images, masks, indices=indices, epoch=epoch, labels=labels)

    # --- saving ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON-able) that :meth:`from_dict` turns back into an equal pipeline."""
        return {
            "format": FORMAT_VERSION,
            "seed": self.seed,
            "interpolation": self.interpolation,
            "border": self.border,
            "fill": self.fill,
            "operations": [op.to_dict() for op in self.operations],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pipeline:
        """Rebuild a pipeline from :meth:`to_dict` output; unknown keys and ops are refused."""
        if not isinstance(data, Mapping):
            raise InputError(
                f"a pipeline must be a mapping, not {type(data).__name__}.",
                hint="start from Pipeline.to_dict() or a saved pipeline.yaml.",
            )
        known = {"format", "seed", "interpolation", "border", "fill", "operations"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown pipeline keys {unknown}.", hint=f"use only {sorted(known)}.")
        if data.get("format", FORMAT_VERSION) != FORMAT_VERSION:
            raise InputError(
                f"pipeline format {data['format']!r} is not supported.",
                hint=f"this cxrseg reads format {FORMAT_VERSION}.",
            )
        settings = {k: data[k] for k in ("interpolation", "border", "fill") if k in data}
        pipeline = cls(data.get("seed", 0), **settings)
        operations = data.get("operations") or []
        if not isinstance(operations, list):
            raise InputError(
                "pipeline 'operations' must be a list.",
                hint="write one '- op: NAME' entry per operation.",
            )
        for i, entry in enumerate(operations):
            name = entry.get("op") if isinstance(entry, Mapping) else None
            if name not in T.TRANSFORMS:
                raise InputError(
                    f"operation #{i} has unknown op {name!r}.",
                    hint=f"use one of {', '.join(sorted(T.TRANSFORMS))}.",
                )
            args = {k: v for k, v in entry.items() if k != "op"}
            cls_ = T.TRANSFORMS[name]
            try:
                pipeline.add(cls_(**args))
            except TypeError as exc:
                if "argument" not in str(exc):
                    raise
                fields = [f for f in cls_.__dataclass_fields__ if f != "name"]
                raise InputError(
                    f"operation #{i} ({name}) has arguments {sorted(args)}: {exc}.",
                    hint=f"{name} takes {fields}.",
                ) from exc
        return pipeline

    def save_yaml(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as YAML, atomically; returns the path."""
        import yaml

        path = Path(path)
        with atomic_write(path) as tmp:
            tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")
        return path

    @classmethod
    def from_yaml(cls, path: str | Path) -> Pipeline:
        """Load a pipeline written by :meth:`save_yaml` (or by hand in the same form)."""
        import yaml

        path = Path(path)
        try:
            data = parse_yaml(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(
                f"cannot read the pipeline file: {exc.strerror}.", path=path, hint="check the path."
            ) from exc
        except yaml.YAMLError as exc:
            raise InputError(
                f"not valid YAML: {exc}",
                path=path,
                hint="fix the syntax or save it with Pipeline.save_yaml.",
            ) from exc
        try:
            return cls.from_dict(data)
        except InputError as exc:
            raise InputError(exc.reason, path=path, hint=exc.hint) from exc

    # --- misc -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.operations)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        ops = ", ".join(repr(op) for op in self.operations)
        return f"Pipeline(seed={self.seed}, operations=[{ops}])"
