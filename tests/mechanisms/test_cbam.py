"""CBAM against its formula, and its order: the channel gate first, the spatial gate on its
output."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attnbench.errors import ConfigError
from attnbench.mechanisms import cbam
from tests.mechanisms.fixed import fix_weights, images


def spatial_conv(maps: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A k x k cross-correlation with zero padding, written out as a sum of shifted maps."""
    k = weight.shape[-1]
    padded = F.pad(maps, (k // 2,) * 4)
    height, width = maps.shape[2:]
    out = torch.zeros(maps.shape[0], height, width, dtype=maps.dtype)
    for channel in range(maps.shape[1]):
        for di in range(k):
            for dj in range(k):
                out += (
                    weight[0, channel, di, dj]
                    * padded[:, channel, di : di + height, dj : dj + width]
                )
    return out[:, None]


def reference(module: cbam.CBAM, x: torch.Tensor) -> torch.Tensor:
    w0, w1 = module.channel.fc1.weight[:, :, 0, 0], module.channel.fc2.weight[:, :, 0, 0]

    def mlp(descriptor: torch.Tensor) -> torch.Tensor:  # the paper's shared MLP, no biases
        return torch.relu(descriptor @ w0.T) @ w1.T

    channel_gate = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))
    refined = x * channel_gate[:, :, None, None]
    maps = torch.stack([refined.mean(dim=1), refined.amax(dim=1)], dim=1)
    return refined * torch.sigmoid(spatial_conv(maps, module.spatial.conv.weight))


@pytest.mark.parametrize(
    "channels,size,kernel_size", [(16, (7, 9), 7), (64, (13, 5), 7), (32, (4, 6), 3)]
)
def test_matches_the_formula(channels, size, kernel_size):
    module = fix_weights(cbam.build(channels, kernel_size=kernel_size), seed=channels)
    x = images(2, channels, *size, seed=2)
    torch.testing.assert_close(module(x), reference(module, x), rtol=1e-12, atol=1e-12)


def test_channel_gate_comes_before_the_spatial_gate():
    """Channel 0 carries a spike at (2, 2) that the channel gate switches off; the spatial gate
    reads only the channel-max map (centre tap). Sequentially the gate sees no spike, so every
    position of channel 1 (constant 1) is scaled alike by sigmoid(1). In parallel (both gates from
    x) or spatial-first, the spatial gate sees the spike and scales position (2, 2) by ~sigmoid(10)
    instead."""
    module = cbam.build(16).double()
    x = torch.zeros(1, 16, 5, 5, dtype=torch.float64)
    x[0, 0, 2, 2] = 10.0
    x[0, 1:] = 1.0
    with torch.no_grad():
        module.channel.fc1.weight.fill_(1.0)  # one hidden unit, active: the sum of the descriptor
        module.channel.fc2.weight.fill_(100.0)
        module.channel.fc2.weight[0] = -100.0  # gate of channel 0 -> 0, of the others -> 1
        module.spatial.conv.weight.zero_()
        module.spatial.conv.weight[0, 1, 3, 3] = 1.0  # the max map at the same position
        out = module(x)[0, 1]
        parallel = (
            module.channel(x)[0, 1] * module.spatial(x)[0, 1]
        )  # x[0, 1] = 1: each branch's output is its gate
        spatial_first = module.channel(module.spatial(x))[0, 1]
    torch.testing.assert_close(
        out, torch.full_like(out, 1 / (1 + math.exp(-1))), rtol=1e-9, atol=1e-9
    )
    for wrong in (parallel, spatial_first):
        assert float(wrong[2, 2] - wrong[0, 0]) > 0.2


def test_even_kernel_is_a_config_error():
    with pytest.raises(ConfigError, match="kernel_size=6"):
        cbam.build(16, kernel_size=6)
