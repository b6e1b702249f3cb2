"""Predictor: radiographs of any size in, masks at their original size out.

For each image: resize to the model's square input as in training
(:func:`~cxrseg.inference.preprocess.prepare`), normalise, run the network in batches
(optionally also on flipped copies), turn logits into probabilities (softmax or sigmoid),
resize the probabilities back to the original size (bilinear) and only then take the arg-max
or threshold, which gives smoother edges than resizing masks. Post-processing from the
checkpoint is applied last.

An ensemble (the folds of a cross-validation folder, or several backends given to the
constructor) averages the probabilities of every member and every flip with equal weights,
before anything is resized or thresholded; the post-processing is the one chosen for the
ensemble on its out-of-fold predictions.

Test-time augmentation by flips: a horizontally flipped radiograph shows the patient's left
lung where the right one was, so the network's ``left_*`` channel of a flipped image holds the
``right_*`` structure. The outputs of a flipped copy are flipped back *and* their left/right
channels swapped before averaging the probabilities.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cxrseg.data.dataset import swap_left_right_name
from cxrseg.errors import InputError
from cxrseg.inference.backends import Backend, open_backend
from cxrseg.inference.ensemble import is_crossval, read_crossval
from cxrseg.inference.model_file import ModelInfo, locate_model, model_info
from cxrseg.inference.preprocess import normalize, prepare, restore
from cxrseg.quality import Flag, check_prediction

__all__ = ["FLIPS", "Prediction", "Predictor", "mirror_name"]

logger = logging.getLogger(__name__)

FLIPS = ("hflip", "vflip", "hvflip")
"""Flips test-time augmentation can add; ``tta=True`` means ``("hflip",)``."""

#: The left/right swap of a structure name (one function for augmentation and prediction).
mirror_name = swap_left_right_name


@dataclass(frozen=True)
class Prediction:
    """The result for one image.

    Attributes:
        masks: uint8 0/1 (H, W) per structure, at the image's original size.
        probabilities: float32 (H, W) in [0, 1] per structure (softmax: that class's
            probability; sigmoid: the structure's), or ``None`` when not asked for.
        flags: Reasons not to trust this prediction (:mod:`cxrseg.quality`); empty when it
            looks plausible.
    """

    masks: dict[str, np.ndarray]
    probabilities: dict[str, np.ndarray] | None = None
    flags: list[Flag] = field(default_factory=list)


def _flip_list(tta: bool | str | Sequence[str]) -> tuple[str, ...]:
    if tta is True:
        return ("hflip",)
    if tta is False or tta is None:
        return ()
    flips = (tta,) if isinstance(tta, str) else tuple(tta)
    unknown = [f for f in flips if f not in FLIPS]
    if unknown:
        raise ValueError(f"tta flips {unknown} are not known; use any of {FLIPS} or True")
    return tuple(dict.fromkeys(flips))


def _postprocess_config(value: Any, info: ModelInfo) -> dict[str, Any]:
    """``True`` -> the checkpoint's post-processing; ``False``/``None`` -> none; a mapping."""
    # lazy: start-up time (post-processing imports scipy.ndimage, over a second)
    from cxrseg.postprocess import PostprocessConfig

    if value is True:
        value = info.postprocessing
    if value is False or value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"postprocess must be True, False or a mapping, got {value!r}")
    unknown = sorted(set(value) - set(info.labels))
    if unknown:
        raise ValueError(
            f"post-processing is set for {unknown}, which the model does not predict "
            f"(its structures: {list(info.labels)}); fix the structure names"
        )
    return {
        name: cfg if isinstance(cfg, PostprocessConfig) else PostprocessConfig.from_dict(cfg)
        for name, cfg in value.items()
    }


def _open_model(
    path: str | Path, device: str, runtime: str, **backend_options: Any
) -> tuple[ModelInfo, Backend, Path]:
    """A model's checked metadata, its backend and its file."""
    model = locate_model(path)
    info = model_info(model)
    backend = open_backend(model, device, runtime, **backend_options)
    channels = getattr(backend, "output_channels", None)
    if channels is not None and channels != len(info.channels):
        raise InputError(
            f"the network has {channels} output channels but its metadata describes "
            f"{len(info.channels)} ({', '.join(info.channels)})",
            path=model.path,
            hint="export the model again with `cxrseg export`",
        )
    logger.info("loaded %s model %s on %s: %s %s (%s)", model.kind, model.path,
                backend.device, backend.runtime, backend.precision, backend.reason)  # fmt: skip
    return info, backend, model.path


class Predictor:
    """Segment radiographs with a trained model.

    Args:
        backend: Runs the network (:class:`~cxrseg.inference.backends.TorchBackend` or
            :class:`~cxrseg.inference.backends.OnnxBackend`), or a sequence of them whose
            probabilities are averaged (an ensemble of models sharing ``info``).
        info: The model's labels, mode, input size, resize mode and normalisation.
        tta: Test-time flips: ``False``, ``True`` (horizontal), or names from :data:`FLIPS`.
        postprocess: ``True`` applies the checkpoint's post-processing, ``False`` none, or a
            mapping of structure name to :class:`~cxrseg.postprocess.PostprocessConfig` (or
            its dict).
        batch_size: Images per network call.
        threshold: Sigmoid mode: probability above which a pixel is foreground.
    """

    def __init__(
        self,
        backend: Backend | Sequence[Backend],
        info: ModelInfo,
        *,
        tta: bool | str | Sequence[str] = False,
        postprocess: bool | Mapping[str, Any] = True,
        batch_size: int = 4,
        threshold: float = 0.5,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}; 0.5 is usual")
        self.backends = tuple(backend) if isinstance(backend, Sequence) else (backend,)
        if not self.backends:
            raise ValueError("an ensemble needs at least one backend")
        self.backend = self.backends[0]
        self.info = info
        self.flips = _flip_list(tta)
        self.postprocessing = _postprocess_config(postprocess, info)
        self.batch_size = batch_size
        self.threshold = threshold
        self.source: Path | None = None
        channels = info.channels
        self.mirror = np.array([channels.index(mirror_name(c)) if mirror_name(c) in channels
                                else i for i, c in enumerate(channels)])  # fmt: skip
        lonely = [c for c in channels if mirror_name(c) != c and mirror_name(c) not in channels]
        if lonely and any(f in ("hflip", "hvflip") for f in self.flips):
            logger.warning("horizontal-flip TTA: %s have no mirrored structure", lonely)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "auto",
        tta: bool | str | Sequence[str] = False,
        runtime: str = "auto",
        amp: bool = True,
        threads: int | None = None,
        **options: Any,
    ) -> Predictor:
        """Load a run folder, checkpoint, exported ``.onnx`` model or cross-validation folder.

        Args:
            path: See :func:`cxrseg.inference.model_file.locate_model`; a cross-validation
                folder (``cxrseg train --folds``) loads every fold's best checkpoint as one
                ensemble with the post-processing chosen for it.
            device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
            tta: As in the constructor.
            runtime: For a checkpoint on the CPU: ``"auto"`` runs it in PyTorch with bfloat16
                autocast where the CPU has native bfloat16, else in ONNX Runtime when that is
                installed (exported in memory and checked against PyTorch once), else in
                PyTorch; ``"torch"`` or ``"onnxruntime"`` force one. See
                :func:`~cxrseg.inference.backends.open_backend`. The backend's ``runtime``,
                ``precision`` and ``reason`` say what was chosen and why.
            amp: Let PyTorch use bfloat16 (float16 on GPUs without it) where the device
                computes it natively; ``False`` keeps float32.
            threads: ONNX Runtime's intra-op threads (``None``: as many as PyTorch for a
                checkpoint, ONNX Runtime's own choice for an ``.onnx`` model).
            options: Further constructor arguments (``postprocess``, ``batch_size``,
                ``threshold``).

        Raises:
            InputError: No usable model at ``path``, a model from a newer cxrseg, or an
                unavailable device.
        """
        backend_options: dict[str, Any] = {"amp": amp}
        if threads is not None:
            backend_options["threads"] = threads
        if not is_crossval(path):
            info, backend, source = _open_model(path, device, runtime, **backend_options)
            predictor = cls(backend, info, tta=tta, **options)
            predictor.source = source
            return predictor
        ensemble = read_crossval(path)
        members = [_open_model(fold, device, runtime, **backend_options) for fold in ensemble.folds]
        first = members[0][0]
        quality = first.quality if ensemble.quality is None else ensemble.quality
        info = replace(first, postprocessing=ensemble.postprocessing, quality=quality)
        for fold, (other, _, source) in zip(ensemble.folds, members, strict=True):
            if replace(other, postprocessing={}) != replace(info, postprocessing={}):
                raise InputError(
                    f"this fold's model differs from the first fold's ({other} against {info})",
                    path=source,
                    hint=f"train {fold.name} again with the options of the other folds",
                )
        predictor = cls([m[1] for m in members], info, tta=tta, **options)
        predictor.source = ensemble.path
        return predictor

    @property
    def labels(self) -> tuple[str, ...]:
        """Structure names, in output order."""
        return self.info.labels

    # --- prediction ---------------------------------------------------------------------

    def predict(self, image: np.ndarray, *, probabilities: bool = False) -> Prediction:
        """Segment one image.

        Args:
            image: (H, W) float32 in [0, 1], as :func:`cxrseg.io.read_image` returns.
            probabilities: Also return the probability maps.
        """
        return self.predict_batch([image], probabilities=probabilities)[0]

    def predict_batch(
        self, images: Sequence[np.ndarray], *, probabilities: bool = False
    ) -> list[Prediction]:
        """Segment several images of any sizes, ``batch_size`` at a time through the network.

        Each prediction carries its quality flags (:func:`cxrseg.quality.check_prediction`
        with the ranges the model learned from its training data).

        Args:
            images: (H, W) float32 images in [0, 1].
            probabilities: Also return the probability maps.
        """
        for i, image in enumerate(images):
            if not isinstance(image, np.ndarray) or image.ndim != 2 or min(image.shape) < 1:
                shape = getattr(image, "shape", None)
                raise ValueError(
                    f"image {i} must be an (H, W) array in [0, 1], got shape {shape}; read it "
                    "with cxrseg.io.read_image, which returns grayscale"
                )
        results: list[Prediction] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            maps = self.network_probabilities(chunk)
            for image, prob in zip(chunk, maps, strict=True):
                prediction = self._finish(prob, image.shape, probabilities)
                flags = check_prediction(image, prediction.masks, self.info.quality, prob,
                                         self.info.mode)  # fmt: skip
                results.append(replace(prediction, flags=flags))
        return results

    def network_probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities at the network's input size, flips averaged.

        Args:
            images: (H, W) float32 images in [0, 1].

        Returns:
            (N, C, S, S) float32: softmax over the channels (background first) or sigmoid
            per structure.
        """
        size = self.info.input_size
        batch = np.stack([prepare(image, size, self.info.resize) for image in images])[:, None]
        batch = normalize(batch, self.info.normalization)
        total = np.zeros((len(images), len(self.info.channels), size, size), np.float32)
        for backend in self.backends:
            total += self._activate(backend(batch))
            for flip in self.flips:
                axes = {"hflip": (-1,), "vflip": (-2,), "hvflip": (-2, -1)}[flip]
                out = np.flip(self._activate(backend(np.flip(batch, axes))), axes)
                if flip != "vflip":
                    out = out[:, self.mirror]
                total += out
        total /= len(self.backends) * (1 + len(self.flips))
        return total

    def _activate(self, logits: np.ndarray) -> np.ndarray:
        expected = len(self.info.channels)
        if logits.ndim != 4 or logits.shape[1] != expected:
            raise ValueError(
                f"the network returned shape {logits.shape}; expected (N, {expected}, S, S) "
                f"for {self.info.mode} over {self.info.channels}"
            )
        out = np.array(logits, dtype=np.float32)  # computed in place below
        if self.info.mode == "softmax":
            out -= out.max(axis=1, keepdims=True)
            np.exp(out, out=out)
            out /= out.sum(axis=1, keepdims=True)
            return out
        # the logistic function as 0.5 * tanh(x / 2) + 0.5: exact, never overflows, in place,
        # and without scipy.special (a third of a second at start-up)
        out *= 0.5
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5
        return out

    def _finish(self, prob: np.ndarray, shape: tuple[int, int], keep: bool) -> Prediction:
        """Restore one image's (C, S, S) probabilities to (H, W), threshold, post-process."""
        # lazy: start-up time (post-processing imports scipy.ndimage, over a second)
        from cxrseg.postprocess import postprocess_mask

        resize, labels = self.info.resize, self.info.labels
        maps: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray] = {}
        if self.info.mode == "softmax":
            best = restore(prob[0], shape, resize)
            winner = np.zeros(shape, np.uint8)
            for k, name in enumerate(labels, start=1):
                channel = restore(prob[k], shape, resize)
                better = channel > best
                winner[better] = k
                np.maximum(best, channel, out=best)
                if keep:
                    maps[name] = channel
            for k, name in enumerate(labels, start=1):
                masks[name] = (winner == k).view(np.uint8)
        else:
            for k, name in enumerate(labels):
                channel = restore(prob[k], shape, resize)
                masks[name] = (channel > self.threshold).view(np.uint8)
                if keep:
                    maps[name] = channel
        for name, config in self.postprocessing.items():
            masks[name] = postprocess_mask(masks[name], config)
        if keep:
            maps = {k: np.clip(v, 0.0, 1.0, out=v) for k, v in maps.items()}
        return Prediction(masks, maps if keep else None)
