"""Declared FLOPs by hand (multiply-add = 2, everything in `attention`) and against
FlopCounterMode."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from attnbench.mechanisms import bmta, cbam, coord, none, se

MODULES = {"none": none, "se": se, "cbam": cbam, "coord": coord, "bmta": bmta}


@pytest.mark.parametrize(
    "module,shape,expected",
    [
        (none, (2, 64, 7, 9), 0),
        # se: two 1x1 convolutions on the pooled descriptor, 2 B C h each; h = max(64 // 16, 8) = 8
        (se, (2, 64, 7, 9), 2 * (2 * 2 * 64 * 8)),
        (se, (1, 256, 32, 32), 2 * (2 * 1 * 256 * 16)),
        # cbam: shared MLP on avg and max, 2 x 2 x (2 B C h), h = 64 // 16 = 4; 7x7 conv 2 -> 1: 2 B
        # H W (2 * 49)
        (cbam, (2, 64, 7, 9), 2 * 2 * (2 * 2 * 64 * 4) + 2 * 2 * 7 * 9 * (2 * 49)),
        # coord: shared conv over H + W positions and the two gate convs, 4 B (H + W) C h, h =
        # max(64 // 32, 8) = 8
        (coord, (2, 64, 7, 9), 2 * 2 * (7 + 9) * 64 * 8 + 2 * 2 * 7 * 8 * 64 + 2 * 2 * 9 * 8 * 64),
        # bmta: coord with h = 64 // 8 = 8 plus se with h = 64 // 16 = 4
        (bmta, (2, 64, 7, 9), 4 * 2 * (7 + 9) * 64 * 8 + 4 * 2 * 64 * 4),
    ],
)
def test_declared_by_hand(module, shape, expected):
    declared = module.flops(*shape, **module.SPEC.defaults)
    assert declared.total == declared.attention == expected
    assert declared.selection == declared.projections == 0


@pytest.mark.parametrize("name", sorted(MODULES))
@pytest.mark.parametrize("shape", [(3, 48, 10, 3), (1, 128, 4, 11)])
def test_declared_equals_measured(name, shape):
    """Shapes unlike the conformance check's, with H != W so that a swapped axis shows."""
    mechanism = MODULES[name]
    module = mechanism.build(shape[1], **mechanism.SPEC.defaults)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.randn(*shape))
    assert mechanism.flops(*shape, **mechanism.SPEC.defaults).total == counter.get_total_flops()
    assert (
        mechanism.SPEC.flops_exact
        and mechanism.SPEC.cache is None
        and not mechanism.SPEC.supports_causal
    )
