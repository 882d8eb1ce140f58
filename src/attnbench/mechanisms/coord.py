"""Coordinate Attention — "Coordinate Attention for Efficient Mobile Network Design" (Hou, Zhou,
Feng; CVPR 2021; arXiv:2103.02907; code houqb/CoordAttention).

SE squeezes a whole channel to one number and loses where things are; coordinate attention keeps
one coordinate. It pools along each axis separately,

    z^h_c(i) = mean_j x_c(i, j)   (B, C, H),      z^w_c(j) = mean_i x_c(i, j)   (B, C, W),

encodes both strips with one shared 1x1 convolution, BatchNorm and h-swish,
f = h_swish(BN(F1([z^h; z^w]))) with C -> C/r channels over the H + W positions, splits f back into
f^h and f^w, and turns each into a gate with its own 1x1 convolution C/r -> C:

    out_c(i, j) = x_c(i, j) * sigmoid(F_h(f^h))_c(i) * sigmoid(F_w(f^w))_c(j).

The gate along H depends only on the row i, the one along W only on the column j. Reduction
r = 32 and hidden width max(C // r, 8), as in the official code (`mip = max(8, inp // reduction)`);
the gate convolutions have biases as there, the shared one has none (the official one does, but the
BatchNorm right after it subtracts any constant, so that bias never trains). BatchNorm normalises
over the batch while training, as everywhere in the CNN around it; in eval mode it uses running
statistics and images are independent.

Matches timm's `timm.layers.CoordAttn` (conv1, bn1, hard-swish, conv_h, conv_w, sigmoid gates;
same parameter names). Differs: timm sizes the bottleneck as make_divisible(C / 16 * 2/3, 8) and
drops the gate convolutions' biases by default; here the official code's width and gate biases are kept.

FLOPs (FlopCounterMode's convention, multiply-add = 2), all `attention`: the shared convolution
over H + W positions, 2 B (H + W) C h, and the two gate convolutions, 2 B H h C + 2 B W h C.
Pooling, BatchNorm, h-swish, sigmoid and the gating products are uncounted.
"""
from __future__ import annotations

import torch
from torch import nn

from attnbench.mechanism import FlopBreakdown, MechanismSpec
from attnbench.mechanisms.se import reduced_channels


class CoordinateAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 32, min_hidden: int = 8) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction, min_hidden)
        self.conv1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=False)  # BatchNorm's shift is its bias
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(hidden, channels, kernel_size=1)
        self.conv_w = nn.Conv2d(hidden, channels, kernel_size=1)

    def gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two gates: (B, C, H, 1) along the rows and (B, C, 1, W) along the columns."""
        height, width = x.shape[2:]
        z_h = x.mean(3, keepdim=True)                  # (B, C, H, 1)
        z_w = x.mean(2, keepdim=True).transpose(2, 3)  # (B, C, W, 1)
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [height, width], dim=2)
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_h, gate_w = self.gates(x)
        return x * gate_h * gate_w


def flops(batch: int, channels: int, height: int, width: int, reduction: int = 32, min_hidden: int = 8,
          **_: object) -> FlopBreakdown:
    hidden = reduced_channels(channels, reduction, min_hidden)
    shared = 2 * batch * (height + width) * channels * hidden
    gate_convs = 2 * batch * (height + width) * hidden * channels
    return FlopBreakdown(attention=shared + gate_convs)


def build(channels: int, **hparams: object) -> CoordinateAttention:
    return CoordinateAttention(channels, **hparams)


SPEC = MechanismSpec(
    name="coord",
    kind="feature_map",
    description="Coordinate attention: gates along H and along W from direction-wise pooled strips.",
    paper="Hou, Zhou, Feng, Coordinate Attention for Efficient Mobile Network Design, CVPR 2021, arXiv:2103.02907",
    build=build,
    flops=flops,
    supports_causal=False,
    defaults={"reduction": 32, "min_hidden": 8},
)
