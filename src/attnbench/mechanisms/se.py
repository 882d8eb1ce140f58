"""Squeeze-and-Excitation — "Squeeze-and-Excitation Networks" (Hu, Shen, Sun; CVPR 2018;
arXiv:1709.01507).

Channel attention from global context: squeeze each channel to its spatial mean z = mean_{h,w} x,
excite through a bottleneck MLP and gate the channels,

    out = x * sigmoid(W2 relu(W1 z + b1) + b2),   W1: C -> C/r,  W2: C/r -> C,  r = 16.

The hidden width is max(C // r, min_hidden) with min_hidden = 8: the paper has no minimum, but at
the small channel counts of CPU smoke runs C/16 would leave one or zero hidden units.

Matches timm's `timm.layers.SEModule` (1x1 convolutions fc1/fc2 with biases, ReLU, sigmoid gate;
same parameter names and shapes). Differs: timm rounds the hidden width to a multiple of 8
(`make_divisible(C / r, 8)`); here it is floored and clamped, which agrees for every power of two
(64 -> 8, 256 -> 16, 512 -> 32) and may differ by a few units otherwise.

FLOPs (FlopCounterMode's convention, multiply-add = 2): the two 1x1 convolutions on the pooled
(B, C, 1, 1) descriptor, 2 B C h each, all of it `attention`. Pooling, ReLU, sigmoid and the gating
product are elementwise and uncounted.
"""
from __future__ import annotations

import torch
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import FlopBreakdown, MechanismSpec


def reduced_channels(channels: int, reduction: int, min_hidden: int) -> int:
    """The bottleneck width C // r, at least `min_hidden` (shared by se, cbam and coord)."""
    if channels < 1 or reduction < 1 or min_hidden < 1:
        raise ConfigError(f"channels={channels}, reduction={reduction} and min_hidden={min_hidden} must be >= 1")
    return max(channels // reduction, min_hidden)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 8) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction, min_hidden)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(z))))


def flops(batch: int, channels: int, height: int, width: int, reduction: int = 16, min_hidden: int = 8,
          **_: object) -> FlopBreakdown:
    hidden = reduced_channels(channels, reduction, min_hidden)
    return FlopBreakdown(attention=2 * (2 * batch * channels * hidden))


def build(channels: int, **hparams: object) -> SqueezeExcite:
    return SqueezeExcite(channels, **hparams)


SPEC = MechanismSpec(
    name="se",
    kind="feature_map",
    description="Squeeze-and-excitation: channel gates from a bottleneck MLP on the global average.",
    paper="Hu, Shen, Sun, Squeeze-and-Excitation Networks, CVPR 2018, arXiv:1709.01507",
    build=build,
    flops=flops,
    supports_causal=False,
    defaults={"reduction": 16, "min_hidden": 8},
)
