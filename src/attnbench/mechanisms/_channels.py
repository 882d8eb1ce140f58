"""The channel-attention modules that `se` and `coord` register and `bmta` blends:
squeeze-and-excitation and coordinate attention, with their FLOPs (each described in its mechanism's
module docstring)."""

from __future__ import annotations

import torch
from torch import nn

from attnbench.mechanism import FlopBreakdown
from attnbench.mechanisms._common import reduced_channels


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


def se_flops(
    batch: int,
    channels: int,
    height: int,
    width: int,
    reduction: int = 16,
    min_hidden: int = 8,
    **_: object,
) -> FlopBreakdown:
    hidden = reduced_channels(channels, reduction, min_hidden)
    return FlopBreakdown(attention=2 * (2 * batch * channels * hidden))


class CoordinateAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 32, min_hidden: int = 8) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction, min_hidden)
        self.conv1 = nn.Conv2d(
            channels, hidden, kernel_size=1, bias=False
        )  # BatchNorm's shift is its bias
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(hidden, channels, kernel_size=1)
        self.conv_w = nn.Conv2d(hidden, channels, kernel_size=1)

    def gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two gates: (B, C, H, 1) along the rows and (B, C, 1, W) along the columns."""
        height, width = x.shape[2:]
        z_h = x.mean(3, keepdim=True)  # (B, C, H, 1)
        z_w = x.mean(2, keepdim=True).transpose(2, 3)  # (B, C, W, 1)
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [height, width], dim=2)
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_h, gate_w = self.gates(x)
        return x * gate_h * gate_w


def coord_flops(
    batch: int,
    channels: int,
    height: int,
    width: int,
    reduction: int = 32,
    min_hidden: int = 8,
    **_: object,
) -> FlopBreakdown:
    hidden = reduced_channels(channels, reduction, min_hidden)
    shared = 2 * batch * (height + width) * channels * hidden
    gate_convs = 2 * batch * (height + width) * hidden * channels
    return FlopBreakdown(attention=shared + gate_convs)
