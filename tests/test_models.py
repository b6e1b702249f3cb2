"""Tests of cxrseg.models: shapes for any size, gradients, argument checks, registry, size."""

from __future__ import annotations

import pytest
import torch

from cxrseg.models import (
    MODELS,
    NORMS,
    UPSAMPLES,
    UNet,
    count_parameters,
    create_model,
    make_norm,
    model_spec,
)


def tiny(**kwargs: object) -> UNet:
    """A UNet small enough to run in milliseconds."""
    options: dict[str, object] = {
        "in_channels": 1,
        "num_classes": 3,
        "depth": 3,
        "base_channels": 4,
    }
    options.update(kwargs)
    return UNet(**options)  # type: ignore[arg-type]


def expected_unet_parameters(
    in_channels: int, num_classes: int, depth: int, base: int, upsample: str
) -> int:
    """Parameter count of the U-Net written out from its layers (no conv bias before a norm)."""

    def conv_block(a: int, b: int) -> int:
        return 9 * a * b + 2 * b + 9 * b * b + 2 * b  # two 3x3 convs, two (scale, shift) norms

    def up(a: int, b: int) -> int:
        return (4 * a * b if upsample == "transpose" else a * b) + b  # 2x2 transposed or 1x1

    channels = [base * 2**level for level in range(depth)]
    total = conv_block(in_channels, channels[0])
    total += sum(conv_block(channels[level - 1], channels[level]) for level in range(1, depth))
    total += sum(
        up(channels[level + 1], channels[level]) + conv_block(2 * channels[level], channels[level])
        for level in range(depth - 1)
    )
    return total + channels[0] * num_classes + num_classes  # 1x1 head with bias


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("upsample", UPSAMPLES)
@pytest.mark.parametrize("size", [(37, 53), (64, 64), (1, 1), (5, 130)])
def test_output_has_input_size_for_any_size(
    norm: str, upsample: str, size: tuple[int, int]
) -> None:
    model = tiny(norm=norm, upsample=upsample).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, *size))
    assert out.shape == (2, 3, *size)


@pytest.mark.parametrize("pad_mode", ["reflect", "zeros", "replicate"])
def test_every_pad_mode_gives_input_size(pad_mode: str) -> None:
    model = tiny(pad_mode=pad_mode).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 19, 6)).shape == (1, 3, 19, 6)


def test_deep_supervision_returns_main_and_aux_logits_in_training_only() -> None:
    model = tiny(depth=4, deep_supervision=True)
    outputs = model.train()(torch.rand(2, 1, 21, 30))
    assert isinstance(outputs, list)
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 21, 30)] * 3  # main + levels 1, 2
    with torch.no_grad():
        assert model.eval()(torch.rand(2, 1, 21, 30)).shape == (2, 3, 21, 30)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("upsample", UPSAMPLES)
def test_every_parameter_receives_a_gradient(norm: str, upsample: str) -> None:
    torch.manual_seed(0)
    model = tiny(norm=norm, upsample=upsample, deep_supervision=True, dropout=0.1).train()
    outputs = model(torch.rand(2, 1, 24, 20))
    loss = sum((o * torch.randn_like(o)).sum() for o in outputs)
    loss.backward()  # type: ignore[union-attr]
    without = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert without == []


def test_channels_last_gives_the_same_logits() -> None:
    model = tiny(norm="group").eval()
    x = torch.rand(2, 1, 16, 24)
    with torch.no_grad():
        expected = model(x)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)  # summation order differs


def test_dropout_is_active_in_training_and_off_in_eval() -> None:
    model = tiny(dropout=0.5)
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_classes": 0}, ValueError, "num_classes must be >= 1, got 0"),
        ({"in_channels": 0}, ValueError, "in_channels must be >= 1, got 0"),
        ({"depth": 1}, ValueError, "depth must be between 2 and 7, got 1"),
        ({"depth": 8}, ValueError, "depth must be between 2 and 7, got 8"),
        ({"base_channels": 0}, ValueError, "base_channels must be >= 1, got 0"),
        ({"base_channels": 2.5}, TypeError, "base_channels must be an int, got 2.5"),
        ({"norm": "layer"}, ValueError, "norm='layer' is not known; use one of 'batch'"),
        ({"upsample": "nearest"}, ValueError, "upsample='nearest' is not known"),
        ({"pad_mode": "circular"}, ValueError, "pad_mode='circular' is not known"),
        ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\), got 1.0"),
        ({"depth": 2, "deep_supervision": True}, ValueError, "deep_supervision needs depth >= 3"),
    ],
)
def test_bad_argument_is_refused_by_name(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        tiny(**kwargs)


def test_input_without_batch_axis_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"got shape \(1, 16, 16\); add the missing axes"):
        tiny()(torch.rand(1, 16, 16))


def test_input_with_wrong_channel_count_is_refused() -> None:
    with pytest.raises(ValueError, match="in_channels=1 but the batch has 3 channels"):
        tiny()(torch.rand(1, 3, 16, 16))


@pytest.mark.parametrize(("channels", "groups"), [(32, 8), (12, 6), (9, 3), (5, 5), (1, 1)])
def test_group_norm_uses_at_most_eight_groups_dividing_the_channels(
    channels: int, groups: int
) -> None:
    norm = make_norm("group", channels)
    assert isinstance(norm, torch.nn.GroupNorm)
    assert norm.num_groups == groups


@pytest.mark.parametrize("upsample", UPSAMPLES)
def test_parameter_count_matches_the_layer_formula(upsample: str) -> None:
    model = UNet(in_channels=1, num_classes=3, depth=4, base_channels=8, upsample=upsample)
    assert count_parameters(model) == expected_unet_parameters(1, 3, 4, 8, upsample)


def test_default_unet_has_the_reference_size_of_7_8_million_parameters() -> None:
    # The reference plain PyTorch U-Net (base 32, depth 5) has 7.8 M parameters; ours must
    # have exactly what its layers add up to, and that must round to the same 7.8 M.
    count = count_parameters(create_model("unet", in_channels=1, num_classes=2))
    assert count == expected_unet_parameters(1, 2, 5, 32, "transpose")
    assert round(count / 1e6, 1) == 7.8


def test_create_model_applies_registered_defaults_and_overrides() -> None:
    small = create_model("unet_small", num_classes=4)
    assert isinstance(small, UNet)
    assert (small.config["depth"], small.config["base_channels"]) == (4, 16)
    assert create_model("unet_small", depth=3).config["depth"] == 3


def test_create_model_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="model 'resnet' is not known; use one of 'unet'"):
        create_model("resnet")
    assert set(MODELS) >= {"unet", "unet_small"}


def test_model_spec_rebuilds_an_identical_model() -> None:
    model = create_model("unet_small", num_classes=3, norm="instance")
    spec = model_spec(model)
    rebuilt = create_model(spec["name"], **spec["kwargs"])
    assert rebuilt.config == model.config  # type: ignore[union-attr]
    assert rebuilt.state_dict().keys() == model.state_dict().keys()


def test_model_spec_refuses_an_unregistered_model() -> None:
    with pytest.raises(TypeError, match="cannot describe a Linear"):
        model_spec(torch.nn.Linear(2, 2))
