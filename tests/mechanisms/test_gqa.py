"""Grouped-query attention: G = H is mha, G = 1 is multi-query attention, costs as declared."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.mechanisms import gqa, mha


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("num_heads", [1, 4])
def test_as_many_kv_heads_as_query_heads_is_mha(causal, num_heads):
    torch.manual_seed(num_heads)
    grouped = gqa.build(16, causal=causal, num_heads=num_heads, num_kv_heads=num_heads)
    dense = mha.build(16, causal=causal, num_heads=num_heads)
    dense.load_state_dict(grouped.state_dict())  # same names and layout when G = H
    x = torch.randn(2, 11, 16)
    torch.testing.assert_close(grouped(x), dense(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_kv_heads", [1, 2])
def test_each_group_of_query_heads_reads_its_own_shared_kv_head(num_kv_heads):
    """Explicit reference: repeat each K/V head for its H/G query heads, then plain softmax
    attention."""
    torch.manual_seed(num_kv_heads)
    module = gqa.build(16, num_heads=4, num_kv_heads=num_kv_heads)
    x = torch.randn(2, 9, 16)
    q, k, v = module.proj.split(x)
    assert k.shape == v.shape == (2, num_kv_heads, 9, 4)
    group = 4 // num_kv_heads
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = (q @ k.transpose(-1, -2)) / 4**0.5
    allowed = torch.ones(9, 9, dtype=torch.bool).tril()
    expected = module.proj.merge(
        torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ v
    )
    torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-5)


def test_one_kv_head_is_multi_query_attention():
    """G = 1: every query head sees the same keys and values, so heads differ only through their
    queries."""
    torch.manual_seed(0)
    module = gqa.build(16, num_heads=4, num_kv_heads=1)
    with (
        torch.no_grad()
    ):  # give all query heads the same projection: their outputs must then coincide
        q_rows = module.proj.qkv.weight[:16].view(4, 4, 16)
        q_rows.copy_(q_rows[:1].expand(4, -1, -1))
        module.proj.qkv.bias[:16].view(4, 4).copy_(module.proj.qkv.bias[:4].expand(4, -1))
    q, k, v = module.proj.split(torch.randn(1, 6, 16))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(out, out[:, :1].expand_as(out), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(
    "num_heads,num_kv_heads,length", [(1, 1, 1), (4, 2, 7), (4, 1, 13), (8, 8, 10)]
)
def test_flops_equal_flop_counter(causal, num_heads, num_kv_heads, length):
    module = gqa.build(32, causal=causal, num_heads=num_heads, num_kv_heads=num_kv_heads)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(torch.randn(3, length, 32))
    declared = gqa.flops(
        3, length, 32, causal=causal, num_heads=num_heads, num_kv_heads=num_kv_heads
    )
    assert declared.total == counter.get_total_flops()


def test_flops_interpolate_between_mqa_and_mha():
    dense = mha.flops(2, 64, 256, num_heads=8)
    assert gqa.flops(2, 64, 256, num_heads=8, num_kv_heads=8) == dense
    grouped = gqa.flops(2, 64, 256, num_heads=8, num_kv_heads=2)
    assert grouped.attention == dense.attention  # every query head still scores every key
    assert grouped.projections == 2 * 2 * 64 * 256 * (2 * 256 + 2 * 2 * 32)


@pytest.mark.parametrize("num_kv_heads", [1, 2, 4, 8])
def test_cache_is_g_over_h_of_mha(num_kv_heads):
    cost = gqa.cache(100, 256, bytes_per_element=2, num_heads=8, num_kv_heads=num_kv_heads)
    dense = mha.cache(100, 256, bytes_per_element=2)
    assert cost.kv_stored * 8 == dense.kv_stored * num_kv_heads
    assert (
        cost.kv_stored == 2 * 100 * num_kv_heads * 32 * 2
    )  # K and V, G heads of width 32, 2 bytes
    assert cost.kv_read_per_token == cost.kv_stored and cost.state == 0


def test_cache_counts_the_keys_and_values_the_module_makes():
    module = gqa.build(32, num_heads=4, num_kv_heads=2)
    _, k, v = module.proj.split(torch.randn(1, 5, 32))
    assert (
        gqa.cache(5, 32, bytes_per_element=4, num_heads=4, num_kv_heads=2).kv_stored
        == (k.numel() + v.numel()) * 4
    )


def test_smoke_profile_pins_heads_over_mqar_single_head():
    from attnbench.registry import SUITES
    from attnbench.run.planning import cell_hparams

    assert cell_hparams(gqa.SPEC, SUITES.get("mqar"), "smoke", {}) == {
        "num_heads": 4,
        "num_kv_heads": 2,
    }


@pytest.mark.parametrize("num_heads,num_kv_heads", [(8, 3), (4, 0), (1, 2), (4, 8)])
def test_kv_heads_must_divide_query_heads(num_heads, num_kv_heads):
    with pytest.raises(ConfigError, match=f"^num_kv_heads={num_kv_heads} .*num_heads={num_heads}$"):
        gqa.build(32, num_heads=num_heads, num_kv_heads=num_kv_heads)
    with pytest.raises(ConfigError, match="num_kv_heads"):
        gqa.flops(1, 8, 32, num_heads=num_heads, num_kv_heads=num_kv_heads)
    with pytest.raises(ConfigError, match="num_kv_heads"):
        gqa.cache(8, 32, num_heads=num_heads, num_kv_heads=num_kv_heads)


def test_query_heads_must_divide_width():
    with pytest.raises(ConfigError, match="num_heads=5"):
        gqa.build(16, num_heads=5, num_kv_heads=1)
