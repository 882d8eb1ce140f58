"""Fixed weights and inputs for reference comparisons, float64 throughout."""

from __future__ import annotations

import torch
from torch import nn


def fix_weights(module: nn.Module, seed: int) -> nn.Module:
    """float64, every parameter drawn from N(0, 0.5) and BatchNorm running statistics away from 0
    and 1, so that a reference that forgets a bias, a scale or a statistic disagrees."""
    generator = torch.Generator().manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=generator, dtype=torch.float64))
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(
                    torch.randn(m.num_features, generator=generator, dtype=torch.float64)
                )
                m.running_var.copy_(
                    0.5 + torch.rand(m.num_features, generator=generator, dtype=torch.float64)
                )
    return module


def images(batch: int, channels: int, height: int, width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, height, width, generator=generator, dtype=torch.float64)
