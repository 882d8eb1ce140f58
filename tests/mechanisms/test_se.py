"""Squeeze-and-excitation against its formula out = x * sigmoid(W2 relu(W1 mean(x) + b1) + b2)."""

from __future__ import annotations

import pytest
import torch

from attnbench.errors import ConfigError
from attnbench.mechanisms import none, se
from tests.mechanisms.fixed import fix_weights, images


@pytest.mark.parametrize("channels,size", [(16, (7, 9)), (64, (5, 3)), (40, (1, 1))])
def test_matches_the_formula(channels, size):
    module = fix_weights(se.build(channels), seed=channels)
    x = images(2, channels, *size, seed=1)
    w1, b1 = module.fc1.weight[:, :, 0, 0], module.fc1.bias
    w2, b2 = module.fc2.weight[:, :, 0, 0], module.fc2.bias
    z = x.mean(dim=(2, 3))  # (B, C)
    gate = torch.sigmoid(torch.relu(z @ w1.T + b1) @ w2.T + b2)
    torch.testing.assert_close(module(x), x * gate[:, :, None, None], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "channels,reduction,min_hidden,hidden",
    [
        (256, 16, 8, 16),
        (512, 16, 8, 32),
        (64, 16, 8, 8),
        (16, 16, 8, 8),
        (64, 16, 1, 4),
        (8, 16, 1, 1),
    ],
)
def test_hidden_width_is_c_over_r_at_least_min_hidden(channels, reduction, min_hidden, hidden):
    module = se.build(channels, reduction=reduction, min_hidden=min_hidden)
    assert module.fc1.weight.shape == (hidden, channels, 1, 1) and module.fc2.weight.shape == (
        channels,
        hidden,
        1,
        1,
    )


def test_bad_reduction_is_a_config_error():
    with pytest.raises(ConfigError, match="reduction=0"):
        se.build(16, reduction=0)


def test_none_is_the_identity():
    x = images(2, 8, 3, 5, seed=0)
    assert torch.equal(none.build(8)(x), x) and none.flops(2, 8, 3, 5).total == 0
