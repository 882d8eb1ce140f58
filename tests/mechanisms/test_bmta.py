"""BMTA is the alpha-blend of this package's coord and se, alpha a sigmoid kept in (0, 1) and
reported."""

from __future__ import annotations

import math

import pytest
import torch

from attnbench.mechanisms import bmta, coord, se
from tests.mechanisms.fixed import fix_weights, images

CHANNELS = 32


def blended(logit: float) -> tuple[bmta.BalancedMultiTaskAttention, torch.Tensor]:
    module = fix_weights(bmta.build(CHANNELS), seed=11)
    with torch.no_grad():
        module.alpha_logit.fill_(logit)
    return module, images(2, CHANNELS, 7, 9, seed=6)


@pytest.mark.parametrize("training", [False, True])
def test_alpha_one_is_coord_and_alpha_zero_is_se(training):
    module, x = blended(math.inf)
    ca = coord.build(CHANNELS, reduction=8, min_hidden=1).double()
    ca.load_state_dict(module.coord.state_dict())
    torch.testing.assert_close(module.train(training)(x), ca.train(training)(x), rtol=0, atol=0)
    assert module.reported_values() == {"alpha": 1.0}

    module, x = blended(-math.inf)
    squeeze = se.build(CHANNELS, reduction=16, min_hidden=1).double()
    squeeze.load_state_dict(module.se.state_dict())
    torch.testing.assert_close(module.train(training)(x), squeeze(x), rtol=0, atol=0)
    assert module.reported_values() == {"alpha": 0.0}


def test_in_between_it_blends_with_sigmoid_of_the_logit():
    module, x = blended(-0.3)
    alpha = 1 / (1 + math.exp(0.3))
    expected = alpha * module.coord(x) + (1 - alpha) * module.se(x)
    torch.testing.assert_close(module(x), expected, rtol=1e-12, atol=1e-12)
    assert module.reported_values() == pytest.approx({"alpha": alpha}, rel=1e-12)


def test_defaults_follow_the_official_code():
    module = bmta.build(64, **bmta.SPEC.defaults)
    assert module.reported_values() == pytest.approx(
        {"alpha": 1 / (1 + math.exp(-0.5))}
    )  # logit 0.5
    assert (
        module.coord.conv1.weight.shape[0] == 64 // 8 and module.se.fc1.weight.shape[0] == 64 // 16
    )
    assert bmta.build(64, alpha_logit_init=0.0).reported_values() == {"alpha": 0.5}


def test_alpha_gets_a_gradient_and_moves_inside_the_open_interval():
    module = bmta.build(16)
    before = module.reported_values()["alpha"]
    x = images(2, 16, 5, 5, seed=9).float()
    (
        module(x) - module.coord(x).detach()
    ).square().sum().backward()  # the loss falls as alpha rises to 1
    with torch.no_grad():
        module.alpha_logit -= 1e-2 * module.alpha_logit.grad
    assert before < module.reported_values()["alpha"] < 1.0
