"""Inference-time rewrites of a trained network that compute the same outputs faster."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batch_norm"]


def fold_batch_norm(model: Any) -> Any:
    """A copy of ``model`` in eval mode with each ``BatchNorm2d`` folded into the ``Conv2d``
    just before it (same :class:`torch.nn.Sequential`), which becomes ``Identity``.

    Folding uses the running statistics, so the copy computes what the model computes in
    eval mode (up to float rounding) with one pass over each feature map fewer.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module._modules.items())
        for (name, conv), (norm_name, norm) in zip(children, children[1:], strict=False):
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(norm, nn.BatchNorm2d)
                and norm.track_running_stats
                and norm.running_mean is not None
            ):
                module._modules[name] = fuse_conv_bn_eval(conv, norm)
                module._modules[norm_name] = nn.Identity()
    return folded
