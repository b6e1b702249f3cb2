"""Segmentation losses: cross-entropy, soft Dice and Dice + CE, in softmax or sigmoid mode.

Two ways to turn a set of structure masks into a training target:

- ``"softmax"``: the structures are mutually exclusive. The network predicts ``C = K + 1``
  classes, class 0 is background and class ``k + 1`` is structure ``k``; the target is an
  ``(N, H, W)`` map of class indices. Lungs and heart do not overlap, so this is the default.
- ``"sigmoid"``: the structures may overlap (multi-label). The network predicts ``K`` channels,
  one independent probability per structure; the target is ``(N, K, H, W)`` of 0/1. SCR's
  clavicles overlap the lungs, so such a dataset needs this mode.

:func:`infer_mode` picks the mode from the masks (any overlap means sigmoid); :func:`resolve_mode`
lets it be forced. :func:`masks_to_target` and :func:`logits_to_masks` convert between masks and
targets or logits, so training and inference share one convention.

Empty-mask rule of the soft Dice: for a class ``c`` with predicted probabilities ``p`` and
target ``t`` (per image, or over the batch with ``batch_dice=True``)
``dice_c = (2 * sum(p * t) + s) / (sum(p) + sum(t) + s)`` with smoothing ``s = dice_smooth``.
A class absent from both the target and the prediction has ``dice = 1`` (loss 0); a class absent
from the target but predicted with total probability ``P`` has ``dice = s / (P + s)``, so false
positives are penalised more the more is predicted. With ``ignore_empty=True`` the (image,
class) pairs whose target is empty are left out of the Dice average instead (cross-entropy still
sees them); if none is left, the Dice term is 0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

Mode = Literal["softmax", "sigmoid"]
MODES: tuple[str, ...] = ("softmax", "sigmoid")
KINDS: tuple[str, ...] = ("ce", "dice", "dice_ce")

MaskSet = Mapping[str, np.ndarray] | np.ndarray


def _check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not known; use 'softmax' or 'sigmoid'")
    return cast(Mode, mode)


def _as_stack(masks: MaskSet) -> np.ndarray:
    """Return a ``(K, H, W)`` boolean foreground stack of one case's masks."""
    if isinstance(masks, Mapping):
        if not masks:
            raise ValueError("got an empty mask dict; give at least one structure's mask")
        return np.stack([np.asarray(m) > 0 for m in masks.values()])
    stack = np.asarray(masks)
    if stack.ndim != 3:
        raise ValueError(f"expected a (K, H, W) mask stack, got shape {stack.shape}")
    return stack > 0


def stack_masks(masks: Mapping[str, np.ndarray], labels: Sequence[str]) -> np.ndarray:
    """Stack one case's masks in ``labels`` order into a ``(K, H, W)`` uint8 0/1 array.

    Raises:
        ValueError: A label has no mask, or the masks differ in size.
    """
    missing = [label for label in labels if label not in masks]
    if missing:
        raise ValueError(f"no mask for {missing}; the case has {sorted(masks)}")
    shapes = {np.shape(masks[label]) for label in labels}
    if len(shapes) != 1:
        raise ValueError(f"masks of one case must share a size, got shapes {sorted(shapes)}")
    return np.stack([(np.asarray(masks[label]) > 0).astype(np.uint8) for label in labels])


def has_overlap(masks: MaskSet) -> bool:
    """Return whether any pixel belongs to two or more of one case's structures."""
    return bool((_as_stack(masks).sum(axis=0) > 1).any())


def infer_mode(masks: MaskSet | Iterable[MaskSet]) -> Mode:
    """Choose the loss mode for masks: ``"sigmoid"`` if structures overlap anywhere.

    Args:
        masks: One case's masks (a dict of ``(H, W)`` arrays or a ``(K, H, W)`` stack), an
            ``(N, K, H, W)`` array of cases, or an iterable of cases, e.g. a whole dataset;
            foreground is any value above 0.

    Returns:
        ``"sigmoid"`` when some pixel of some case lies in two structures, else ``"softmax"``.
    """
    if isinstance(masks, Mapping) or (isinstance(masks, np.ndarray) and masks.ndim == 3):
        return "sigmoid" if has_overlap(masks) else "softmax"
    return "sigmoid" if any(has_overlap(case) for case in masks) else "softmax"


def resolve_mode(requested: str, masks: MaskSet | Iterable[MaskSet]) -> Mode:
    """Return ``requested`` if it names a mode, or :func:`infer_mode` of ``masks`` for ``"auto"``.

    Forcing ``"softmax"`` on overlapping structures is allowed (the later structure wins where
    they overlap, see :func:`masks_to_target`) and logged as a warning.
    """
    if requested not in (*MODES, "auto"):
        raise ValueError(f"mode={requested!r} is not known; use 'auto', 'softmax' or 'sigmoid'")
    if requested == "auto":
        mode = infer_mode(masks)
        logger.info("loss mode %s chosen from the masks", mode)
        return mode
    mode = _check_mode(requested)
    if mode == "softmax" and infer_mode(masks) == "sigmoid":
        logger.warning(
            "structures overlap but softmax mode was forced: where they overlap the later "
            "structure wins; use mode 'sigmoid' or 'auto' to keep every structure"
        )
    return mode


def masks_to_target(masks: np.ndarray | torch.Tensor, mode: str) -> torch.Tensor:
    """Turn ``(..., K, H, W)`` 0/1 (or 0/255) masks into a training target.

    Args:
        masks: A NumPy array or a tensor (the target stays on the tensor's device).
        mode: ``"softmax"`` or ``"sigmoid"``.

    Returns:
        Softmax mode: ``(..., H, W)`` int64 class indices, 0 background and ``k + 1`` for
        structure ``k`` (where structures overlap, the later one wins). Sigmoid mode:
        ``(..., K, H, W)`` float32 0/1.
    """
    mode = _check_mode(mode)
    if isinstance(masks, torch.Tensor):
        stack = masks
    else:
        stack = torch.from_numpy(np.ascontiguousarray(masks))
    if stack.ndim < 3:
        raise ValueError(f"expected (..., K, H, W) masks, got shape {tuple(stack.shape)}")
    foreground = stack > 0
    if mode == "sigmoid":
        return foreground.float()
    structures = stack.shape[-3]
    classes = torch.arange(1, structures + 1, device=stack.device).view(structures, 1, 1)
    return (foreground * classes).amax(dim=-3)


def logits_to_masks(logits: torch.Tensor, mode: str, threshold: float = 0.5) -> torch.Tensor:
    """Turn ``(N, C, H, W)`` logits into ``(N, K, H, W)`` uint8 0/1 masks, one per structure.

    Softmax mode: the arg-max class of each pixel, one-hot for classes ``1 .. C - 1`` (so
    ``K = C - 1``; ``threshold`` is unused). Sigmoid mode: ``sigmoid(logits) > threshold``
    (``K = C``). The result stays on the logits' device.
    """
    mode = _check_mode(mode)
    if logits.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) logits, got shape {tuple(logits.shape)}")
    if mode == "sigmoid":
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        return (torch.sigmoid(logits) > threshold).to(torch.uint8)
    if logits.shape[1] < 2:
        raise ValueError(
            f"softmax logits need background plus at least one class, got {logits.shape[1]} "
            "channel; use mode 'sigmoid' for a single-channel model"
        )
    labels = logits.argmax(dim=1, keepdim=True)
    classes = torch.arange(1, logits.shape[1], device=logits.device).view(1, -1, 1, 1)
    return (labels == classes).to(torch.uint8)


class SegmentationLoss(nn.Module):
    """Cross-entropy, soft Dice, or their sum, for softmax or sigmoid outputs.

    Softmax mode: ``logits`` ``(N, C, H, W)``, ``target`` ``(N, H, W)`` integer class indices
    with 0 background. CE is ``F.cross_entropy`` with ``class_weights`` (length ``C``) as its
    ``weight``: the mean of per-pixel losses weighted by their target class's weight. Dice is
    computed on the softmax probabilities for classes ``1 .. C - 1`` (also class 0 with
    ``include_background=True``).

    Sigmoid mode: ``logits`` ``(N, K, H, W)``, ``target`` ``(N, K, H, W)`` 0/1 (float, bool or
    uint8). BCE-with-logits (``pos_weight`` per channel weighs foreground pixels) is averaged
    over pixels per channel; Dice is computed on the sigmoid probabilities of every channel.
    Class weights (length ``K``) weigh the channels.

    Dice follows the empty-mask rule of the module docstring. ``1 - dice`` is averaged over
    images (unless ``batch_dice``) and over classes, the classes weighted by ``class_weights``.
    ``kind="dice_ce"`` returns ``ce_weight * CE + dice_weight * Dice``.

    Deep supervision: ``logits`` may be a list ``[main, aux_1, ...]`` of same-size logits; the
    loss is then the weighted sum with weights ``1, 1/2, 1/4, ...`` normalised to sum to 1.

    Args:
        mode: ``"softmax"`` or ``"sigmoid"``.
        kind: ``"ce"``, ``"dice"`` or ``"dice_ce"``.
        class_weights: Optional positive weight per output channel.
        pos_weight: Sigmoid mode only: optional weight of foreground pixels per channel in BCE.
        dice_smooth: Smoothing ``s`` added to the Dice numerator and denominator, ``>= 0``.
        include_background: Softmax mode: include class 0 in the Dice average.
        batch_dice: Sum the Dice counts over the whole batch instead of per image.
        ignore_empty: Leave (image, class) pairs with an empty target out of the Dice average.
        ce_weight: Weight of the CE term of ``"dice_ce"``.
        dice_weight: Weight of the Dice term of ``"dice_ce"``.
    """

    class_weights: torch.Tensor | None
    pos_weight: torch.Tensor | None

    def __init__(
        self,
        mode: str = "softmax",
        kind: str = "dice_ce",
        class_weights: Sequence[float] | torch.Tensor | None = None,
        pos_weight: Sequence[float] | torch.Tensor | None = None,
        dice_smooth: float = 1.0,
        include_background: bool = False,
        batch_dice: bool = False,
        ignore_empty: bool = False,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
    ):
        super().__init__()
        self.mode = _check_mode(mode)
        if kind not in KINDS:
            raise ValueError(
                f"kind={kind!r} is not known; use one of {', '.join(map(repr, KINDS))}"
            )
        if dice_smooth < 0:
            raise ValueError(f"dice_smooth must be >= 0, got {dice_smooth}")
        if ce_weight < 0 or dice_weight < 0:
            raise ValueError(
                f"ce_weight and dice_weight must be >= 0, got {ce_weight}, {dice_weight}"
            )
        if pos_weight is not None and mode != "sigmoid":
            raise ValueError(
                "pos_weight applies to BCE in sigmoid mode; use class_weights for softmax"
            )
        self.kind = kind
        self.dice_smooth = float(dice_smooth)
        self.include_background = include_background
        self.batch_dice = batch_dice
        self.ignore_empty = ignore_empty
        self.ce_weight = float(ce_weight)
        self.dice_weight = float(dice_weight)
        self.register_buffer("class_weights", _weights("class_weights", class_weights))
        self.register_buffer("pos_weight", _weights("pos_weight", pos_weight))

    def forward(
        self, logits: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        """Return the scalar loss of ``logits`` against ``target`` (shapes: class docstring)."""
        if isinstance(logits, torch.Tensor):
            return self._single(logits, target)
        if len(logits) == 0:
            raise ValueError("got an empty list of logits")
        weights = [0.5**i for i in range(len(logits))]
        total = sum(weights)
        return cast(
            torch.Tensor,
            sum(
                w / total * self._single(out, target)
                for w, out in zip(weights, logits, strict=True)
            ),
        )

    def _single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        target = self._check_target(logits, target)
        loss = logits.new_zeros(())
        if self.kind in ("ce", "dice_ce"):
            ce = self._cross_entropy(logits, target)
            loss = ce if self.kind == "ce" else loss + self.ce_weight * ce
        if self.kind in ("dice", "dice_ce"):
            dice = self._dice_loss(logits, target)
            loss = dice if self.kind == "dice" else loss + self.dice_weight * dice
        return loss

    def _check_target(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 4:
            raise ValueError(f"expected (N, C, H, W) logits, got shape {tuple(logits.shape)}")
        channels = logits.shape[1]
        for name, weights in (
            ("class_weights", self.class_weights),
            ("pos_weight", self.pos_weight),
        ):
            if weights is not None and weights.numel() != channels:
                raise ValueError(
                    f"{name} has {weights.numel()} values but the logits have {channels} "
                    "channels; give one weight per output channel"
                )
        if self.mode == "softmax":
            expected = (logits.shape[0], *logits.shape[2:])
            if channels < 2:
                raise ValueError(
                    f"softmax mode needs background plus at least one class, got {channels} "
                    "channel; build the model with num_classes = structures + 1 or use sigmoid"
                )
            if (
                tuple(target.shape) != expected
                or target.is_floating_point()
                or target.dtype == torch.bool
            ):
                raise ValueError(
                    f"softmax mode needs an integer (N, H, W) = {expected} target of class "
                    f"indices, got {target.dtype} {tuple(target.shape)}; use masks_to_target"
                )
            low, high = int(target.min()), int(target.max())
            if low < 0 or high >= channels:
                raise ValueError(
                    f"target classes must lie in 0..{channels - 1}, found {low}..{high}; check "
                    "num_classes (structures + 1) and the label map"
                )
            return target.long()
        if target.shape != logits.shape:
            raise ValueError(
                f"sigmoid mode needs an (N, K, H, W) target shaped like the logits "
                f"{tuple(logits.shape)}, got {tuple(target.shape)}; use masks_to_target"
            )
        target = target.to(logits.dtype)
        if target.numel() and (target.min() < 0 or target.max() > 1):
            raise ValueError(
                "sigmoid targets must be 0/1 (masks stored as 0/255 must be converted); "
                "use masks_to_target"
            )
        return target

    def _cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.mode == "softmax":
            return F.cross_entropy(logits, target, weight=self.class_weights)
        pos_weight = None if self.pos_weight is None else self.pos_weight.view(-1, 1, 1)
        bce = F.binary_cross_entropy_with_logits(
            logits, target, pos_weight=pos_weight, reduction="none"
        )
        per_channel = bce.mean(dim=(0, 2, 3))
        if self.class_weights is None:
            return per_channel.mean()
        return (per_channel * self.class_weights).sum() / self.class_weights.sum()

    def _dice_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.mode == "softmax":
            probs = logits.softmax(dim=1)
            onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
        else:
            probs, onehot = torch.sigmoid(logits), target
        weights = (
            self.class_weights if self.class_weights is not None else probs.new_ones(probs.shape[1])
        )
        if self.mode == "softmax" and not self.include_background:
            probs, onehot, weights = probs[:, 1:], onehot[:, 1:], weights[1:]

        sum_dims = (0, 2, 3) if self.batch_dice else (2, 3)
        intersection = (probs * onehot).sum(dim=sum_dims)
        predicted = probs.sum(dim=sum_dims)
        truth = onehot.sum(dim=sum_dims)
        dice = (2 * intersection + self.dice_smooth) / (
            predicted + truth + self.dice_smooth
        ).clamp_min(1e-8)
        # weights over (image, class) pairs, or over classes with batch_dice
        pair_weights = weights.expand_as(dice)
        if self.ignore_empty:
            pair_weights = pair_weights * (truth > 0)
        denominator = pair_weights.sum()
        if denominator <= 0:
            return (dice * 0).sum()
        return ((1 - dice) * pair_weights).sum() / denominator


def _weights(name: str, values: Sequence[float] | torch.Tensor | None) -> torch.Tensor | None:
    if values is None:
        return None
    tensor = torch.as_tensor(values, dtype=torch.float32).flatten().clone()
    if (
        tensor.numel() == 0
        or not torch.isfinite(tensor).all()
        or (tensor < 0).any()
        or tensor.sum() <= 0
    ):
        raise ValueError(f"{name} must be finite, non-negative and not all zero, got {values}")
    return tensor
