"""Tests of cxrseg.losses against losses written out in NumPy, and of the mode helpers."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from cxrseg.losses import (
    SegmentationLoss,
    infer_mode,
    logits_to_masks,
    masks_to_target,
    resolve_mode,
    stack_masks,
)

SMOOTH = 1.0


def softmax_np(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def dice_loss_np(probs: np.ndarray, onehot: np.ndarray, weights: np.ndarray) -> float:
    """Mean over images and (weighted) classes of 1 - (2 I + s) / (P + T + s), by loops."""
    n_images, n_classes = probs.shape[:2]
    total = norm = 0.0
    for n in range(n_images):
        for c in range(n_classes):
            p, t = probs[n, c], onehot[n, c]
            dice = (2 * (p * t).sum() + SMOOTH) / (p.sum() + t.sum() + SMOOTH)
            total += weights[c] * (1 - dice)
            norm += weights[c]
    return total / norm


def softmax_ce_np(logits: np.ndarray, target: np.ndarray, weights: np.ndarray) -> float:
    """Weighted mean of -log p[target] over pixels, normalised by the pixels' weights."""
    logp = np.log(softmax_np(logits))
    nll = -np.take_along_axis(logp, target[:, None], axis=1)[:, 0]
    w = weights[target]
    return float((w * nll).sum() / w.sum())


def bce_np(logits: np.ndarray, target: np.ndarray, weights: np.ndarray) -> float:
    p = 1 / (1 + np.exp(-logits))
    per_channel = -(target * np.log(p) + (1 - target) * np.log(1 - p)).mean(axis=(0, 2, 3))
    return float((per_channel * weights).sum() / weights.sum())


@pytest.fixture
def softmax_case() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 5))
    target = rng.integers(0, 3, size=(2, 4, 5))
    return logits, target


@pytest.fixture
def sigmoid_case() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 2, 4, 5))
    target = (rng.random((2, 2, 4, 5)) > 0.5).astype(np.float64)
    return logits, target


def run(loss: SegmentationLoss, logits: np.ndarray, target: np.ndarray) -> float:
    t = torch.from_numpy(target)
    t = t.float() if t.is_floating_point() else t.long()
    return float(loss(torch.from_numpy(logits).float(), t))


def test_uniform_logits_give_cross_entropy_log_c_and_bce_log_2() -> None:
    target = torch.zeros(1, 3, 3, dtype=torch.long)
    ce = SegmentationLoss("softmax", "ce")(torch.zeros(1, 4, 3, 3), target)
    bce = SegmentationLoss("sigmoid", "ce")(torch.zeros(1, 2, 3, 3), torch.ones(1, 2, 3, 3))
    assert float(ce) == pytest.approx(math.log(4))
    assert float(bce) == pytest.approx(math.log(2))


@pytest.mark.parametrize("weights", [None, [0.2, 1.0, 3.0]])
def test_softmax_cross_entropy_matches_numpy(softmax_case, weights) -> None:
    logits, target = softmax_case
    w = np.ones(3) if weights is None else np.array(weights)
    expected = softmax_ce_np(logits, target, w)
    assert run(SegmentationLoss("softmax", "ce", class_weights=weights), logits, target) == (
        pytest.approx(expected, rel=1e-5)
    )


@pytest.mark.parametrize("weights", [None, [0.2, 1.0, 3.0]])
def test_softmax_dice_excludes_background_and_matches_numpy(softmax_case, weights) -> None:
    logits, target = softmax_case
    w = np.ones(3) if weights is None else np.array(weights)
    onehot = np.eye(3)[target].transpose(0, 3, 1, 2)
    expected = dice_loss_np(softmax_np(logits)[:, 1:], onehot[:, 1:], w[1:])
    loss = SegmentationLoss("softmax", "dice", class_weights=weights, dice_smooth=SMOOTH)
    assert run(loss, logits, target) == pytest.approx(expected, rel=1e-5)


def test_softmax_dice_with_background_matches_numpy(softmax_case) -> None:
    logits, target = softmax_case
    onehot = np.eye(3)[target].transpose(0, 3, 1, 2)
    expected = dice_loss_np(softmax_np(logits), onehot, np.ones(3))
    loss = SegmentationLoss("softmax", "dice", include_background=True, dice_smooth=SMOOTH)
    assert run(loss, logits, target) == pytest.approx(expected, rel=1e-5)


def test_softmax_batch_dice_sums_counts_over_the_batch(softmax_case) -> None:
    logits, target = softmax_case
    onehot = np.eye(3)[target].transpose(0, 3, 1, 2)
    # batch dice = per-image dice of the batch laid side by side as one image
    side_by_side = np.concatenate(list(softmax_np(logits)), axis=-1)[None]
    onehot_side = np.concatenate(list(onehot), axis=-1)[None]
    expected = dice_loss_np(side_by_side[:, 1:], onehot_side[:, 1:], np.ones(2))
    loss = SegmentationLoss("softmax", "dice", batch_dice=True, dice_smooth=SMOOTH)
    assert run(loss, logits, target) == pytest.approx(expected, rel=1e-5)


def test_softmax_dice_ce_is_the_weighted_sum(softmax_case) -> None:
    logits, target = softmax_case
    onehot = np.eye(3)[target].transpose(0, 3, 1, 2)
    ce = softmax_ce_np(logits, target, np.ones(3))
    dice = dice_loss_np(softmax_np(logits)[:, 1:], onehot[:, 1:], np.ones(2))
    loss = SegmentationLoss("softmax", "dice_ce", ce_weight=0.5, dice_weight=2.0)
    assert run(loss, logits, target) == pytest.approx(0.5 * ce + 2.0 * dice, rel=1e-5)


@pytest.mark.parametrize("weights", [None, [1.0, 4.0]])
def test_sigmoid_bce_matches_numpy(sigmoid_case, weights) -> None:
    logits, target = sigmoid_case
    w = np.ones(2) if weights is None else np.array(weights)
    expected = bce_np(logits, target, w)
    loss = SegmentationLoss("sigmoid", "ce", class_weights=weights)
    assert run(loss, logits, target) == pytest.approx(expected, rel=1e-5)


def test_sigmoid_pos_weight_scales_the_foreground_term(sigmoid_case) -> None:
    logits, target = sigmoid_case
    p = 1 / (1 + np.exp(-logits))
    pos = np.array([2.0, 0.5])[None, :, None, None]
    expected = -(pos * target * np.log(p) + (1 - target) * np.log(1 - p)).mean()
    loss = SegmentationLoss("sigmoid", "ce", pos_weight=[2.0, 0.5])
    assert run(loss, logits, target) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("weights", [None, [1.0, 4.0]])
def test_sigmoid_dice_and_dice_ce_match_numpy(sigmoid_case, weights) -> None:
    logits, target = sigmoid_case
    w = np.ones(2) if weights is None else np.array(weights)
    dice = dice_loss_np(1 / (1 + np.exp(-logits)), target, w)
    bce = bce_np(logits, target, w)
    dice_loss = SegmentationLoss("sigmoid", "dice", class_weights=weights, dice_smooth=SMOOTH)
    both = SegmentationLoss("sigmoid", "dice_ce", class_weights=weights, dice_smooth=SMOOTH)
    assert run(dice_loss, logits, target) == pytest.approx(dice, rel=1e-5)
    assert run(both, logits, target) == pytest.approx(dice + bce, rel=1e-5)


def test_class_absent_from_target_and_prediction_costs_nothing() -> None:
    logits = torch.full((1, 1, 8, 8), -40.0)  # sigmoid ~ 4e-18: nothing predicted
    loss = SegmentationLoss("sigmoid", "dice")(logits, torch.zeros(1, 1, 8, 8))
    assert float(loss) == pytest.approx(0.0, abs=1e-6)


def test_class_absent_from_target_but_predicted_is_penalised() -> None:
    logits = torch.zeros(1, 1, 8, 8)  # probability 0.5 on 64 pixels: P = 32
    loss = SegmentationLoss("sigmoid", "dice", dice_smooth=1.0)(logits, torch.zeros(1, 1, 8, 8))
    assert float(loss) == pytest.approx(1 - 1 / (32 + 1), rel=1e-6)


def test_ignore_empty_leaves_empty_targets_out_of_the_dice_mean() -> None:
    logits = torch.zeros(1, 2, 4, 4)
    target = torch.zeros(1, 2, 4, 4)
    target[0, 0, :2] = 1  # channel 0 has 8 pixels, channel 1 is empty
    loss = SegmentationLoss("sigmoid", "dice", ignore_empty=True)(logits, target)
    expected = 1 - (2 * 0.5 * 8 + 1) / (0.5 * 16 + 8 + 1)  # channel 0 only
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_ignore_empty_with_every_target_empty_gives_zero_and_a_gradient() -> None:
    logits = torch.zeros(1, 2, 4, 4, requires_grad=True)
    loss = SegmentationLoss("sigmoid", "dice", ignore_empty=True)(logits, torch.zeros(1, 2, 4, 4))
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert logits.grad is not None


def test_deep_supervision_list_weighs_outputs_by_halves(softmax_case) -> None:
    logits, target = softmax_case
    main, aux = torch.from_numpy(logits).float(), torch.from_numpy(logits[::-1].copy()).float()
    t = torch.from_numpy(target)
    loss = SegmentationLoss("softmax", "dice_ce")
    expected = (float(loss(main, t)) + 0.5 * float(loss(aux, t))) / 1.5
    assert float(loss([main, aux], t)) == pytest.approx(expected, rel=1e-6)


def test_loss_gradient_is_finite_for_a_confident_wrong_prediction() -> None:
    logits = torch.full((1, 3, 4, 4), -30.0)
    logits[:, 0] = 30.0
    logits.requires_grad_(True)
    loss = SegmentationLoss("softmax", "dice_ce")(logits, torch.full((1, 4, 4), 2))
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    ("mode", "logits_shape", "target", "match"),
    [
        ("softmax", (1, 3, 4, 4), torch.zeros(1, 4, 4), "integer \\(N, H, W\\)"),
        ("softmax", (1, 3, 4, 4), torch.full((1, 4, 4), 3), "must lie in 0..2, found 3..3"),
        ("softmax", (1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), "background plus"),
        ("sigmoid", (1, 2, 4, 4), torch.zeros(1, 4, 4), "shaped like the logits"),
        ("sigmoid", (1, 2, 4, 4), torch.full((1, 2, 4, 4), 255.0), "0/255"),
    ],
)
def test_bad_target_is_refused_with_the_fix(mode, logits_shape, target, match) -> None:
    with pytest.raises(ValueError, match=match):
        SegmentationLoss(mode)(torch.zeros(logits_shape), target)


def test_class_weights_of_the_wrong_length_are_refused() -> None:
    loss = SegmentationLoss("softmax", class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="class_weights has 2 values but the logits have 3"):
        loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "multiclass"}, "mode='multiclass' is not known"),
        ({"kind": "focal"}, "kind='focal' is not known"),
        ({"dice_smooth": -1}, "dice_smooth must be >= 0"),
        ({"class_weights": [-1.0, 1.0]}, "class_weights must be finite, non-negative"),
        ({"pos_weight": [1.0]}, "pos_weight applies to BCE in sigmoid mode"),
    ],
)
def test_bad_loss_argument_is_refused(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        SegmentationLoss(**kwargs)


def lungs_and_clavicle(overlap: bool) -> dict[str, np.ndarray]:
    right, left, clavicle = (np.zeros((6, 8), np.uint8) for _ in range(3))
    right[1:5, 0:3] = 1
    left[1:5, 5:8] = 1
    clavicle[0, :] = 1
    if overlap:
        clavicle[1, 0:2] = 1  # reaches into the right lung
    return {"right_lung": right, "left_lung": left, "clavicle": clavicle}


def test_infer_mode_is_softmax_for_disjoint_and_sigmoid_for_overlapping_masks() -> None:
    assert infer_mode(lungs_and_clavicle(overlap=False)) == "softmax"
    assert infer_mode(lungs_and_clavicle(overlap=True)) == "sigmoid"
    assert infer_mode(stack_masks(lungs_and_clavicle(True), ["left_lung", "clavicle"])) == "softmax"


def test_infer_mode_over_a_dataset_is_sigmoid_if_one_case_overlaps() -> None:
    cases = [lungs_and_clavicle(overlap=False)] * 3 + [lungs_and_clavicle(overlap=True)]
    assert infer_mode(cases) == "sigmoid"
    assert infer_mode(cases[:3]) == "softmax"


def test_infer_mode_accepts_an_n_k_h_w_array_of_cases() -> None:
    names = ["right_lung", "clavicle"]
    cases = np.stack([stack_masks(lungs_and_clavicle(overlap), names) for overlap in (0, 1)])
    assert infer_mode(cases) == "sigmoid"
    assert infer_mode(cases[:1]) == "softmax"


def test_forcing_softmax_on_overlapping_masks_warns(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="cxrseg.losses"):
        assert resolve_mode("softmax", lungs_and_clavicle(overlap=True)) == "softmax"
    assert "structures overlap" in caplog.text
    assert resolve_mode("auto", lungs_and_clavicle(overlap=True)) == "sigmoid"
    with pytest.raises(ValueError, match="mode='both' is not known"):
        resolve_mode("both", lungs_and_clavicle(overlap=False))


def test_masks_to_target_softmax_numbers_structures_from_one_and_later_wins() -> None:
    masks = lungs_and_clavicle(overlap=True)
    stack = stack_masks(masks, ["right_lung", "left_lung", "clavicle"]) * 255
    target = masks_to_target(stack, "softmax")
    assert target.dtype == torch.int64 and target.shape == (6, 8)
    assert target[2, 1] == 1 and target[2, 6] == 2 and target[0, 4] == 3
    assert target[1, 0] == 3  # clavicle over right lung: the later structure wins
    assert target[5, 4] == 0


def test_masks_to_target_sigmoid_keeps_every_structure_as_0_1() -> None:
    stack = stack_masks(lungs_and_clavicle(overlap=True), ["right_lung", "clavicle"]) * 255
    target = masks_to_target(stack, "sigmoid")
    assert target.dtype == torch.float32
    assert torch.equal(target, torch.from_numpy((stack > 0).astype(np.float32)))


@pytest.mark.parametrize("mode", ["softmax", "sigmoid"])
def test_masks_to_target_gives_the_same_for_tensors_and_arrays(mode: str) -> None:
    names = ["right_lung", "left_lung", "clavicle"]
    batch = np.stack([stack_masks(lungs_and_clavicle(True), names)] * 2)  # (N, K, H, W)
    from_tensor = masks_to_target(torch.from_numpy(batch), mode)
    assert torch.equal(from_tensor, masks_to_target(batch, mode))
    assert from_tensor.shape[0] == 2


@pytest.mark.parametrize("mode", ["softmax", "sigmoid"])
def test_logits_to_masks_inverts_masks_to_target(mode: str) -> None:
    stack = stack_masks(lungs_and_clavicle(overlap=False), ["right_lung", "left_lung", "clavicle"])
    target = masks_to_target(stack[None], mode)
    if mode == "softmax":
        logits = torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float() * 5
    else:
        logits = (target * 2 - 1) * 5
    masks = logits_to_masks(logits, mode)
    assert masks.dtype == torch.uint8
    assert np.array_equal(masks.numpy(), stack[None])


def test_logits_to_masks_sigmoid_uses_the_threshold() -> None:
    logits = torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3)  # probabilities 0.27, 0.5, 0.73
    assert logits_to_masks(logits, "sigmoid", threshold=0.5).flatten().tolist() == [0, 0, 1]
    assert logits_to_masks(logits, "sigmoid", threshold=0.2).flatten().tolist() == [1, 1, 1]


def test_stack_masks_names_a_missing_structure() -> None:
    with pytest.raises(ValueError, match=r"no mask for \['heart'\]"):
        stack_masks(lungs_and_clavicle(overlap=False), ["heart"])
