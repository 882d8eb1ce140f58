"""Coordinate attention against its formula, and each gate tied to its own axis."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnbench.mechanisms import coord
from tests.mechanisms.fixed import fix_weights, images


def reference(module: coord.CoordinateAttention, x: torch.Tensor, training: bool) -> torch.Tensor:
    height = x.shape[2]
    w1 = module.conv1.weight[:, :, 0, 0]
    strips = torch.cat([x.mean(dim=3), x.mean(dim=2)], dim=2)  # (B, C, H + W): z^h then z^w
    y = torch.einsum("hc,bcp->bhp", w1, strips)
    if training:  # BatchNorm over the batch and all H + W positions, biased variance
        mean, var = (
            y.mean(dim=(0, 2), keepdim=True),
            y.var(dim=(0, 2), unbiased=False, keepdim=True),
        )
    else:
        mean, var = module.bn1.running_mean[:, None], module.bn1.running_var[:, None]
    y = (y - mean) / torch.sqrt(var + module.bn1.eps) * module.bn1.weight[
        :, None
    ] + module.bn1.bias[:, None]
    f = y * F.relu6(y + 3) / 6  # h-swish
    f_h, f_w = f[:, :, :height], f[:, :, height:]
    gate_h = torch.sigmoid(
        torch.einsum("ch,bhp->bcp", module.conv_h.weight[:, :, 0, 0], f_h)
        + module.conv_h.bias[:, None]
    )  # (B, C, H)
    gate_w = torch.sigmoid(
        torch.einsum("ch,bhp->bcp", module.conv_w.weight[:, :, 0, 0], f_w)
        + module.conv_w.bias[:, None]
    )  # (B, C, W)
    return x * gate_h[:, :, :, None] * gate_w[:, :, None, :]


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("channels,size", [(16, (7, 9)), (64, (13, 5)), (32, (6, 6))])
def test_matches_the_formula(channels, size, training):
    module = fix_weights(coord.build(channels), seed=channels).train(training)
    x = images(2, channels, *size, seed=3)
    torch.testing.assert_close(module(x), reference(module, x, training), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels,hidden", [(16, 8), (256, 8), (512, 16), (1024, 32)])
def test_hidden_width_is_max_8_c_over_32(channels, hidden):
    assert coord.build(channels).conv1.weight.shape == (hidden, channels, 1, 1)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("size", [(5, 8), (6, 6)])
def test_each_gate_follows_its_own_axis(size, training):
    """Permuting the columns leaves every row mean (and BatchNorm's statistics over all strip
    positions) unchanged: the H gate must not move and the W gate must move with its columns.
    Likewise for rows. A square map catches a module that swaps the strips or the two gate
    convolutions, where shapes agree.
    """
    module = fix_weights(coord.build(16), seed=7).train(training)
    x = images(2, 16, *size, seed=4)
    rows, cols = (
        torch.randperm(size[0], generator=torch.Generator().manual_seed(0)),
        torch.randperm(size[1], generator=torch.Generator().manual_seed(1)),
    )
    gate_h, gate_w = module.gates(x)
    assert gate_h.shape == (2, 16, size[0], 1) and gate_w.shape == (2, 16, 1, size[1])
    col_h, col_w = module.gates(x[:, :, :, cols])
    torch.testing.assert_close(col_h, gate_h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(col_w, gate_w[:, :, :, cols], rtol=1e-12, atol=1e-12)
    row_h, row_w = module.gates(x[:, :, rows, :])
    torch.testing.assert_close(row_h, gate_h[:, :, rows], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(row_w, gate_w, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(
        gate_h[:, :, rows], gate_h
    )  # the rows really differ, so the check bites


def test_a_map_constant_along_w_stays_constant_along_w():
    """Every column alike: the W gate is one value per channel, so out / x varies along H only."""
    module = fix_weights(coord.build(16), seed=8).eval()
    x = images(2, 16, 7, 1, seed=5).expand(-1, -1, -1, 9)
    out = module(x)
    torch.testing.assert_close(out, out[:, :, :, :1].expand_as(out), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(
        out / x, (out / x)[:, :, :1].expand_as(out)
    )  # ... and it does vary along H
