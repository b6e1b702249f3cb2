"""The U-Net of Ronneberger et al. (2015) for 2-D radiographs, with padding to any input size."""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cxrseg.checks import check_int, check_one_of
from cxrseg.models.blocks import NORMS, UPSAMPLES, ConvBlock, Down, Up

logger = logging.getLogger(__name__)

PAD_MODES = ("reflect", "zeros", "replicate")
"""How :class:`UNet` pads inputs whose size is not a multiple of ``2 ** (depth - 1)``."""

_TORCH_PAD_MODE = {"reflect": "reflect", "zeros": "constant", "replicate": "replicate"}


class UNet(nn.Module):
    """U-Net: an encoder of ``depth`` resolution levels and a decoder with skip connections.

    Level ``k`` has ``base_channels * 2**k`` feature maps at ``1 / 2**k`` of the input size, so
    the defaults (depth 5, base 32) have 32, 64, 128, 256 and 512 channels, four poolings and
    about 7.8 M parameters.

    Input and output: ``(N, in_channels, H, W) -> (N, num_classes, H, W)`` logits, for any
    ``H, W >= 1``. The input is padded (``pad_mode``) to the next multiple of
    ``2 ** (depth - 1)``, and to at least twice that so the coarsest level has 2x2 pixels for
    the normalisation statistics; the padding is split evenly between both sides and the logits
    are cropped back, so they line up pixel for pixel with the input. Reflection needs the
    padding on each side to be smaller than the image; for smaller images replication is used.

    Deep supervision: with ``deep_supervision=True`` 1x1 heads also read decoder levels
    ``1 .. depth - 2``. In training mode :meth:`forward` then returns a list
    ``[main, aux_1, ..., aux_{depth-2}]`` of ``(N, num_classes, H, W)`` logits, the auxiliary
    ones bilinearly upsampled to the input size, finest first; in eval mode it returns the main
    logits only, as without deep supervision.

    Args:
        in_channels: Channels of the input images (1 for grayscale radiographs).
        num_classes: Output channels: classes including background for softmax training,
            one per structure for sigmoid training.
        depth: Number of resolution levels, 2 to 7 (``depth - 1`` poolings).
        base_channels: Feature maps at full resolution.
        norm: ``"batch"``, ``"instance"`` or ``"group"``.
        upsample: ``"transpose"`` (learned 2x2 transposed convolution) or ``"bilinear"``
            (interpolation and 1x1 convolution).
        dropout: ``Dropout2d`` probability inside every convolution block, in ``[0, 1)``.
        deep_supervision: Add auxiliary heads on the coarser decoder levels (needs ``depth >= 3``).
        pad_mode: ``"reflect"``, ``"zeros"`` or ``"replicate"``.

    Raises:
        ValueError: An argument is out of range or not a known option; the message names it.
        TypeError: A count is not an integer.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        depth: int = 5,
        base_channels: int = 32,
        norm: str = "batch",
        upsample: str = "transpose",
        dropout: float = 0.0,
        deep_supervision: bool = False,
        pad_mode: str = "reflect",
    ):
        super().__init__()
        check_int("in_channels", in_channels, minimum=1)
        check_int("num_classes", num_classes, minimum=1)
        check_int("depth", depth, minimum=2, maximum=7)
        check_int("base_channels", base_channels, minimum=1)
        check_one_of("norm", norm, NORMS)
        check_one_of("upsample", upsample, UPSAMPLES)
        check_one_of("pad_mode", pad_mode, PAD_MODES)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if deep_supervision and depth < 3:
            raise ValueError(
                f"deep_supervision needs depth >= 3 (a decoder level between the bottleneck and "
                f"the output), got depth={depth}; raise depth or turn deep supervision off"
            )
        # The resolved constructor arguments: UNet(**model.config) rebuilds the model.
        self.config: dict[str, Any] = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "depth": depth,
            "base_channels": base_channels,
            "norm": norm,
            "upsample": upsample,
            "dropout": float(dropout),
            "deep_supervision": bool(deep_supervision),
            "pad_mode": pad_mode,
        }
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.depth = depth
        self.deep_supervision = bool(deep_supervision)
        self.pad_mode = pad_mode
        self.size_multiple = 2 ** (depth - 1)

        channels = [base_channels * 2**level for level in range(depth)]
        self.stem = ConvBlock(in_channels, channels[0], norm=norm, dropout=dropout)
        self.encoder = nn.ModuleList(
            Down(channels[level - 1], channels[level], norm=norm, dropout=dropout)
            for level in range(1, depth)
        )
        # decoder[i] brings level depth-1-i up to level depth-2-i: coarsest first.
        self.decoder = nn.ModuleList(
            Up(channels[level + 1], channels[level], channels[level], norm, upsample, dropout)
            for level in reversed(range(depth - 1))
        )
        self.head = nn.Conv2d(channels[0], num_classes, kernel_size=1)
        # aux_heads[i] reads decoder level i + 1: finest first.
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(channels[level], num_classes, kernel_size=1)
            for level in range(1, depth - 1)
            if self.deep_supervision
        )
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming-normal convolutions (fan-out, ReLU), zero biases, unit normalisation scales."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d | nn.InstanceNorm2d | nn.GroupNorm):
                if module.weight is not None:
                    nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is an ``(N, in_channels, H, W)`` batch."""
        shape = tuple(x.shape)
        if x.ndim != 4:
            raise ValueError(
                f"UNet expects an (N, C, H, W) batch, got shape {shape}; add the missing axes, "
                f"e.g. image[None, None] for one (H, W) image or batch[:, None] for (N, H, W)"
            )
        if shape[1] != self.in_channels:
            raise ValueError(
                f"UNet was built for in_channels={self.in_channels} but the batch has "
                f"{shape[1]} channels (shape {shape}); convert the images (e.g. to grayscale) "
                f"or build the model with in_channels={shape[1]}"
            )
        if shape[2] < 1 or shape[3] < 1:
            raise ValueError(f"UNet needs images of at least 1x1 pixels, got shape {shape}")

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
        """Pad ``x`` to a multiple (>= 2) of :attr:`size_multiple`; return it and the crop box."""
        height, width = x.shape[-2:]
        multiple = self.size_multiple
        pad_h = max(-height % multiple, 2 * multiple - height)
        pad_w = max(-width % multiple, 2 * multiple - width)
        top, left = pad_h // 2, pad_w // 2
        box = (top, top + height, left, left + width)
        if pad_h == 0 and pad_w == 0:
            return x, box
        mode = _TORCH_PAD_MODE[self.pad_mode]
        if mode == "reflect" and (pad_h - top >= height or pad_w - left >= width):
            mode = "replicate"
        padded = F.pad(x, (left, pad_w - left, top, pad_h - top), mode=mode)
        return padded, box

    @staticmethod
    def _crop(x: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
        top, bottom, left, right = box
        return x[..., top:bottom, left:right]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Segment a batch.

        Args:
            x: Images ``(N, in_channels, H, W)``.

        Returns:
            Logits ``(N, num_classes, H, W)``; with deep supervision in training mode, the list
            ``[main, aux_1, ...]`` described in the class docstring.
        """
        self.check_input(x)
        x, box = self._pad(x)

        # Encoder: skips[k] is level k, at 1 / 2**k of the padded size.
        skips = [self.stem(x)]
        for down in self.encoder:
            skips.append(down(skips[-1]))

        # Decoder: start at the bottleneck and join each encoder level on the way up.
        u = skips.pop()
        decoder_levels = []
        for up in self.decoder:
            u = up(u, skips.pop())
            decoder_levels.append(u)

        logits = self._crop(self.head(u), box)
        if not (self.deep_supervision and self.training):
            return logits

        # Deep supervision: levels 1 .. depth-2, finest first, upsampled to the padded size.
        finest_first = decoder_levels[-2::-1]
        aux_logits = [
            self._crop(F.interpolate(head(level), size=x.shape[-2:], mode="bilinear"), box)
            for head, level in zip(self.aux_heads, finest_first, strict=True)
        ]
        return [logits, *aux_logits]
