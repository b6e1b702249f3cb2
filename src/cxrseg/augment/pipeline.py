"""``Pipeline``: Augmentor's method names, one draw for every target, replayable samples.

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
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from cxrseg.augment import transforms as T
from cxrseg.augment.base import Params, RandomTransform, check_choice
from cxrseg.errors import InputError

if TYPE_CHECKING:
    import torch

    from cxrseg.data import Dataset

__all__ = ["FORMAT_VERSION", "Masks", "Pipeline"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
BORDERS = ("constant", "reflect")

Masks = Union[Mapping[str, np.ndarray], Sequence[np.ndarray], None]  # noqa: UP007
"""Masks travel as a dict name -> (H, W) array or a list of (H, W) arrays; same container back."""

_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _check_index(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise InputError(
            f"{name}={value!r} must be a non-negative integer.", hint=f"give {name} as 0, 1, 2, ..."
        )
    return int(value)


def _image_to_float(image: object) -> np.ndarray:
    """float32 copy in [0, 1] of a uint8, uint16 or float image (H, W) or (H, W, C)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, not {type(image).__name__}.")
    if image.ndim not in (2, 3) or image.size == 0:
        raise InputError(
            f"image has shape {image.shape}; expected (H, W) or (H, W, C).",
            hint="pass one grayscale image as a 2-D array.",
        )
    if image.dtype in _SCALE:
        return image.astype(np.float32) / np.float32(_SCALE[image.dtype])
    if not np.issubdtype(image.dtype, np.floating):
        raise InputError(
            f"image dtype {image.dtype} is not supported.",
            hint="pass uint8, uint16, or float in [0, 1].",
        )
    low, high = float(np.min(image)), float(np.max(image))
    if low < 0.0 or high > 1.0:
        raise InputError(
            f"float image has values in [{low:g}, {high:g}], outside [0, 1].",
            hint="scale it to [0, 1] (e.g. image / 255) or pass the integer array.",
        )
    return image.astype(np.float32)


def _image_from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype in _SCALE:
        scale = _SCALE[dtype]
        return np.clip(np.rint(image * scale), 0, scale).astype(dtype)
    return image.astype(dtype)


def _mask_list(masks: Masks, shape: tuple[int, int]) -> tuple[list[np.ndarray], list[str] | None]:
    """Masks as a list of uint8-compatible arrays plus their names (None for a list)."""
    if masks is None:
        return [], None
    names: list[str] | None
    if isinstance(masks, Mapping):
        names, arrays = [str(k) for k in masks], list(masks.values())
    elif isinstance(masks, Sequence) and not isinstance(masks, str | bytes):
        names, arrays = None, list(masks)
    else:
        raise TypeError(f"masks must be a dict or list of arrays, not {type(masks).__name__}.")
    for i, mask in enumerate(arrays):
        label = repr(names[i]) if names else f"#{i}"
        if not isinstance(mask, np.ndarray):
            raise TypeError(f"mask {label} must be a numpy array, not {type(mask).__name__}.")
        if mask.shape != shape:
            raise InputError(
                f"mask {label} has shape {mask.shape} but the image is {shape}.",
                hint="give image and masks the same height and width (resize masks with "
                "nearest-neighbour interpolation).",
            )
        if not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == np.bool_):
            raise InputError(
                f"mask {label} has dtype {mask.dtype}; masks must hold integer labels, not "
                "float probabilities.",
                hint="threshold it first, e.g. (mask > 0.5).astype(np.uint8).",
            )
    return arrays, names


class Pipeline:
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
        self.seed = _check_index("seed", seed)
        self.interpolation = check_choice(
            "Pipeline", "interpolation", interpolation, INTERPOLATIONS
        )
        self.border = check_choice("Pipeline", "border", border, BORDERS)
        from cxrseg.augment.base import check_number

        self.fill = check_number("Pipeline", "fill", fill, minimum=0.0, maximum=1.0)
        self.operations: list[RandomTransform] = []

    # --- building -------------------------------------------------------------------------

    def add(self, transform: RandomTransform) -> Pipeline:
        """Append a transform (any :mod:`cxrseg.augment.transforms` class); returns ``self``."""
        if not isinstance(transform, RandomTransform):
            raise TypeError(f"add() takes a transform, not {type(transform).__name__}.")
        self.operations.append(transform)
        return self

    def random_distortion(
        self, probability: float, grid_width: int, grid_height: int, magnitude: int
    ) -> Pipeline:
        """Augmentor's elastic mesh distortion; see :class:`~.transforms.RandomDistortion`."""
        return self.add(T.RandomDistortion(probability, grid_width, grid_height, magnitude))

    def gaussian_distortion(
        self,
        probability: float,
        grid_width: int,
        grid_height: int,
        magnitude: float,
        corner: str,
        method: str,
        mex: float = 0.5,
        mey: float = 0.5,
        sdx: float = 0.05,
        sdy: float = 0.05,
    ) -> Pipeline:
        """Augmentor's Gaussian mesh distortion; see :class:`~.transforms.GaussianDistortion`."""
        return self.add(
            T.GaussianDistortion(
                probability, grid_width, grid_height, magnitude, corner, method, mex, mey, sdx, sdy
            )
        )

    def elastic(self, probability: float, alpha: float = 34.0, sigma: float = 4.0) -> Pipeline:
        """Smooth random displacement field; see :class:`~.transforms.Elastic`."""
        return self.add(T.Elastic(probability, alpha, sigma))

    def rotate(
        self,
        probability: float,
        max_left_rotation: float,
        max_right_rotation: float,
        crop: bool = True,
    ) -> Pipeline:
        """Rotation, cropped like Augmentor's; see :class:`~.transforms.Rotate`."""
        return self.add(T.Rotate(probability, max_left_rotation, max_right_rotation, crop))

    def zoom(self, probability: float, min_factor: float, max_factor: float) -> Pipeline:
        """Central zoom; see :class:`~.transforms.Zoom`."""
        return self.add(T.Zoom(probability, min_factor, max_factor))

    def translate(self, probability: float, max_x: float = 0.1, max_y: float = 0.1) -> Pipeline:
        """Shift by fractions of the size; see :class:`~.transforms.Translate`."""
        return self.add(T.Translate(probability, max_x, max_y))

    def flip_left_right(self, probability: float, swap_left_right: bool = True) -> Pipeline:
        """Mirror left-right, swapping left/right masks; see :class:`~.transforms.FlipLeftRight`."""
        return self.add(T.FlipLeftRight(probability, swap_left_right))

    def flip_top_bottom(self, probability: float) -> Pipeline:
        """Mirror top-bottom."""
        return self.add(T.FlipTopBottom(probability))

    def brightness(self, probability: float, min_factor: float, max_factor: float) -> Pipeline:
        """Multiply intensities; see :class:`~.intensity.Brightness`."""
        return self.add(T.Brightness(probability, min_factor, max_factor))

    def contrast(self, probability: float, min_factor: float, max_factor: float) -> Pipeline:
        """Stretch about the mean; see :class:`~.intensity.Contrast`."""
        return self.add(T.Contrast(probability, min_factor, max_factor))

    random_brightness = brightness
    random_contrast = contrast

    def gamma(self, probability: float, min_gamma: float, max_gamma: float) -> Pipeline:
        """Power law; see :class:`~.intensity.Gamma`."""
        return self.add(T.Gamma(probability, min_gamma, max_gamma))

    def gaussian_noise(self, probability: float, min_std: float, max_std: float) -> Pipeline:
        """Additive noise; see :class:`~.intensity.GaussianNoise`."""
        return self.add(T.GaussianNoise(probability, min_std, max_std))

    def blur(self, probability: float, min_sigma: float, max_sigma: float) -> Pipeline:
        """Gaussian blur; see :class:`~.intensity.Blur`."""
        return self.add(T.Blur(probability, min_sigma, max_sigma))

    def local_contrast(
        self, probability: float, min_amount: float, max_amount: float, sigma: float = 8.0
    ) -> Pipeline:
        """Local contrast enhancement; see :class:`~.intensity.LocalContrast`."""
        return self.add(T.LocalContrast(probability, min_amount, max_amount, sigma))

    # --- parameters -----------------------------------------------------------------------

    def generators(self, index: int = 0, epoch: int = 0) -> list[np.random.Generator]:
        """One generator per operation for sample ``index`` of ``epoch``.

        They are the children of ``SeedSequence([seed, epoch, index])``, so adding an operation
        at the end leaves the draws of the others unchanged.
        """
        root = np.random.SeedSequence(
            [self.seed, _check_index("epoch", epoch), _check_index("index", index)]
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

    def _check_sides(self, names: list[str] | None) -> None:
        """Refuse dict masks a horizontal flip would mislabel (see ``FlipLeftRight``)."""
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
        from cxrseg.augment import functional as F
        from cxrseg.augment.resample import warp

        self._check_params(params)
        x = _image_to_float(image)
        height, width = x.shape[:2]
        arrays, names = _mask_list(masks, (height, width))
        self._check_sides(names)
        bools = [m.dtype == np.bool_ for m in arrays]
        arrays = [m.astype(np.uint8) if b else m for m, b in zip(arrays, bools, strict=True)]
        pending: tuple[np.ndarray, np.ndarray] | None = None
        flips = 0

        def flush() -> None:
            nonlocal x, arrays, pending
            if pending is not None:
                x, arrays = warp(
                    x,
                    arrays,
                    pending,
                    interpolation=self.interpolation,
                    border=self.border,
                    fill=self.fill,
                )
                pending = None

        for op, p in zip(self.operations, params, strict=True):
            if not p["applied"]:
                continue
            if isinstance(op, T.SpatialTransform):
                maps = op.maps(p, height, width)
                pending = maps if pending is None else F.compose_maps(pending, maps)
                flips += isinstance(op, T.FlipLeftRight)
            elif isinstance(op, T.IntensityTransform):
                flush()
                x = op.apply(x, p)
        flush()
        arrays = [m.astype(bool) if b else m for m, b in zip(arrays, bools, strict=True)]
        return _image_from_float(x, image.dtype), self._rebuild(
            masks, arrays, names, flips % 2 == 1
        )

    @staticmethod
    def _rebuild(
        masks: Masks, arrays: list[np.ndarray], names: list[str] | None, swap: bool
    ) -> Any:
        if masks is None:
            return None
        if names is None:
            return type(masks)(arrays) if isinstance(masks, tuple) else arrays
        by_name = dict(zip(names, arrays, strict=True))
        if swap:
            by_name = {T.swap_left_right_name(n): a for n, a in by_name.items()}
        return {n: by_name[n] for n in names}

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
        n = _check_index("n", n)
        cases = getattr(source, "cases", None)
        count = len(cases) if cases is not None else len(source)  # type: ignore[arg-type]
        if count == 0 and n > 0:
            raise InputError(
                "cannot sample from an empty dataset.",
                hint="give at least one (image, masks) pair.",
            )
        for k in range(n):
            if cases is not None:
                from cxrseg.data import load_case

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
            images: float (N, C, H, W) in [0, 1].
            masks: (N, K, H, W) integer or bool, or None.
            indices: Sample numbers, default ``range(N)``.
            epoch: Epoch number.
            labels: Names of the K mask channels; ``left_*``/``right_*`` channels swap on a
                horizontal flip. Without names channels are only flipped.
        """
        from cxrseg.augment.batch import apply_batch

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

        from cxrseg.io import atomic_write

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
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
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
