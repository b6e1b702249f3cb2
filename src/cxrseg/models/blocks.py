"""Building blocks of the U-Net: a double convolution, a down step and an up step.

Every block maps ``(N, C_in, H, W)`` tensors to ``(N, C_out, H', W')`` tensors and keeps the
memory format of its input, so a model converted with ``.to(memory_format=torch.channels_last)``
stays in that format end to end.
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("batch", "instance", "group")
"""Names accepted by :func:`make_norm`."""

UPSAMPLES = ("transpose", "bilinear")
"""Names accepted by :class:`Up`."""

MAX_GROUPS = 8
"""Group normalisation uses this many groups, or the largest smaller divisor of the channels."""


def group_count(channels: int, max_groups: int = MAX_GROUPS) -> int:
    """Return the largest number of groups ``<= max_groups`` that divides ``channels``."""
    return next(g for g in range(min(max_groups, channels), 0, -1) if channels % g == 0)


def make_norm(kind: str, channels: int) -> nn.Module:
    """Return a normalisation layer for ``channels`` feature maps.

    Args:
        kind: ``"batch"`` (``BatchNorm2d``), ``"instance"`` (``InstanceNorm2d`` with learned
            affine parameters) or ``"group"`` (``GroupNorm`` with :data:`MAX_GROUPS` groups, or
            fewer when they do not divide ``channels``).
        channels: Number of feature maps.

    Raises:
        ValueError: ``kind`` is not one of :data:`NORMS` or ``channels`` is not positive.
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(group_count(channels), channels)
    raise ValueError(f"norm={kind!r} is not known; use one of {', '.join(map(repr, NORMS))}")


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by normalisation and ReLU.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H, W)``. The convolutions have no
    bias, since the normalisation that follows has its own. With ``dropout > 0`` a
    ``Dropout2d`` (whole feature maps) sits between the two convolutions.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of both convolutions' outputs.
        norm: Normalisation, one of :data:`NORMS`.
        dropout: Probability of zeroing a feature map, in ``[0, 1)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, norm: str = "batch", dropout: float = 0.0
    ):
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            make_norm(norm, out_channels),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        layers += [
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            make_norm(norm, out_channels),
            nn.ReLU(inplace=True),
        ]
        super().__init__(*layers)


class Down(nn.Sequential):
    """Halve the resolution with a 2x2 max-pool, then apply a :class:`ConvBlock`.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H // 2, W // 2)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, norm: str = "batch", dropout: float = 0.0
    ):
        super().__init__(
            nn.MaxPool2d(kernel_size=2),
            ConvBlock(in_channels, out_channels, norm=norm, dropout=dropout),
        )


class Up(nn.Module):
    """Double the resolution, concatenate the skip connection and apply a :class:`ConvBlock`.

    The upsampling also projects ``in_channels`` to ``out_channels`` maps: a 2x2 transposed
    convolution with stride 2 (``"transpose"``), or bilinear interpolation followed by a 1x1
    convolution (``"bilinear"``, fewer parameters and no checkerboard artefacts).

    Shapes: ``x`` ``(N, in_channels, H, W)`` and ``skip`` ``(N, skip_channels, 2H, 2W)``
    give ``(N, out_channels, 2H, 2W)``.

    Args:
        in_channels: Channels of the coarser input.
        skip_channels: Channels of the skip connection from the encoder.
        out_channels: Channels of the output.
        norm: Normalisation, one of :data:`NORMS`.
        upsample: ``"transpose"`` or ``"bilinear"``.
        dropout: Dropout of the :class:`ConvBlock`.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        norm: str = "batch",
        upsample: str = "transpose",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.upsample: nn.Module
        if upsample == "transpose":
            self.upsample = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        elif upsample == "bilinear":
            self.upsample = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, out_channels, kernel_size=1),
            )
        else:
            raise ValueError(
                f"upsample={upsample!r} is not known; use one of {', '.join(map(repr, UPSAMPLES))}"
            )
        self.conv = ConvBlock(
            out_channels + skip_channels, out_channels, norm=norm, dropout=dropout
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``x``, join it with ``skip`` along the channels and convolve."""
        up = self.upsample(x)
        return self.conv(torch.cat([skip, up], dim=1))
