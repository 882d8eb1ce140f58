"""Pieces the vision suites share (EuroSAT's CNN, SECOND's siamese encoder): the residual block with
its DropBlock and the mechanism after its second convolution, the output size of a strided
convolution, the dihedral augmentation, and what the mechanisms of a model report about
themselves."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_out(size: int, stride: int) -> int:
    """Output size of a 3x3 convolution with padding 1 (and of a 1x1 one without) at this stride."""
    return (size - 1) // stride + 1


class DropBlock2d(nn.Module):
    """DropBlock (Ghiasi et al., 2018) as the authors' code writes it: drop square blocks of a
    feature map."""

    def __init__(self, drop_prob: float, block_size: int = 7) -> None:
        super().__init__()
        self.drop_prob, self.block_size = drop_prob, block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0:
            return x
        gamma = self.drop_prob / self.block_size**2
        seeds = (torch.rand_like(x[:, :1]) < gamma).to(x.dtype)
        keep = 1 - F.max_pool2d(seeds, self.block_size, stride=1, padding=self.block_size // 2)
        return x * keep * (keep.numel() / (keep.sum() + 1e-7))


class ResidualBlock(nn.Module):
    def __init__(
        self, cin: int, cout: int, stride: int, mechanism: nn.Module, drop: float, block_size: int
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.dropblock = DropBlock2d(drop, block_size)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.mechanism = mechanism
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropblock(F.relu(self.bn1(self.conv1(x))))
        out = self.mechanism(self.bn2(self.conv2(out)))
        return F.relu(out + self.shortcut(x))


class DihedralAugment:
    """A random horizontal flip and a random right-angle rotation per image: the square's eight
    symmetries."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flips = torch.rand(len(x), generator=self.generator) < 0.5
        turns = torch.randint(0, 4, (len(x),), generator=self.generator)
        x = torch.where(flips.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)
        for k in (1, 2, 3):
            chosen = (turns == k).nonzero().flatten().to(x.device)
            if len(chosen):
                x[chosen] = x[chosen].rot90(k, dims=(-2, -1))
        return x


def reported_values(model: nn.Module) -> dict[str, float]:
    """What the mechanisms report about themselves (e.g. bmta's alpha), per placement and
    averaged."""
    values: dict[str, float] = {}
    collected: dict[str, list[float]] = {}
    for placement, module in model.mechanisms():
        report = getattr(module, "reported_values", None)
        if report is None:
            continue
        for key, value in report().items():
            values[f"{key}/{placement}"] = float(value)
            collected.setdefault(key, []).append(float(value))
    values.update({f"{key}/mean": sum(v) / len(v) for key, v in collected.items()})
    return values
