"""Dynamic Mask Attention: the paper's top-w biased attention token by token, w = L with A = 0 is
mha, min(w, t + 1) keys per query from its own prefix only, the init that lets dt_proj learn,
causality and costs as declared.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.mechanisms import dma, mha
from attnbench.testing import assert_conforms

TOL = dict(rtol=1e-5, atol=1e-5)


@torch.no_grad()
def explicit_dma(module: dma.DynamicMaskAttention, x: torch.Tensor) -> torch.Tensor:
    """Token by token: delta_j = A_h softplus(w_h . v_j + b_h) over the concatenated heads' values;
    query t keeps the w largest delta_j, j <= t (all j when bidirectional), and attends with
    softmax(q k / sqrt(d) + delta).
    """
    q, k, v = module.proj.split(x)
    batch, heads, length, head_dim = q.shape
    values = v.transpose(1, 2).reshape(batch, length, -1)
    out = torch.zeros_like(q)
    for b in range(batch):
        for h in range(heads):
            delta = module.A[h] * F.softplus(
                values[b] @ module.dt_proj.weight[h] + module.dt_proj.bias[h]
            )
            for t in range(length):
                visible = t + 1 if module.causal else length
                kept = delta[:visible].topk(min(module.window, visible)).indices
                logits = k[b, h, kept] @ q[b, h, t] / head_dim**0.5 + delta[kept]
                out[b, h, t] = torch.softmax(logits, -1) @ v[b, h, kept]
    return module.proj.merge(out)


def scaled_up(module: dma.DynamicMaskAttention) -> dma.DynamicMaskAttention:
    """A from N(0, 1) rather than the init's N(0, 0.02), so that the scores rank keys far apart
    from rounding."""
    with torch.no_grad():
        module.A.normal_()
    return module


@pytest.mark.parametrize(
    "window,length,heads,causal",
    [
        (4, 17, 2, True),
        (1, 9, 1, True),
        (6, 23, 4, True),
        (8, 32, 1, True),
        (5, 13, 2, False),
        (20, 7, 2, True),
    ],
)
def test_equals_the_paper_token_by_token(window, length, heads, causal):
    torch.manual_seed(window * 10 + length)
    module = scaled_up(dma.build(16, num_heads=heads, window=window, causal=causal))
    x = torch.randn(2, length, 16)
    torch.testing.assert_close(module(x), explicit_dma(module, x), **TOL)


@pytest.mark.parametrize(
    "length,window,causal", [(32, 32, True), (33, 40, True), (7, 7, False), (1, 8, True)]
)
def test_a_window_covering_the_sequence_with_a_zero_is_mha(length, window, causal):
    torch.manual_seed(length)
    module = dma.build(16, num_heads=2, window=window, causal=causal)
    with torch.no_grad():
        module.A.zero_()
    dense = mha.build(16, num_heads=2, causal=causal)
    dense.proj.load_state_dict(module.proj.state_dict())
    x = torch.randn(2, length, 16)
    torch.testing.assert_close(module(x), dense(x), **TOL)


@pytest.mark.parametrize("length,window", [(17, 4), (33, 8), (9, 1), (5, 8)])
def test_each_query_keeps_the_top_min_w_t_plus_1_keys_of_its_own_prefix(length, window):
    torch.manual_seed(length)
    delta = torch.randn(2, 3, length)
    keep = dma.keep_mask(delta, window, causal=True)
    t = torch.arange(length)
    assert torch.equal(keep.sum(-1), (t + 1).clamp(max=window).expand(2, 3, -1))
    assert not keep[..., t[:, None] < t[None, :]].any()  # never a future key
    # Every kept key outscores every dropped key of the same prefix.
    kept_min = delta[:, :, None, :].masked_fill(~keep, float("inf")).amin(-1)
    dropped = ~keep & (t[:, None] >= t[None, :])
    dropped_max = delta[:, :, None, :].masked_fill(~dropped, float("-inf")).amax(-1)
    assert (kept_min > dropped_max).all()


def test_bidirectional_queries_share_the_same_w_keys():
    torch.manual_seed(0)
    delta = torch.randn(2, 3, 11)
    keep = dma.keep_mask(delta, 4, causal=False)
    assert keep.shape == (2, 3, 1, 11) and torch.equal(keep.sum(-1), torch.full((2, 3, 1), 4))
    top4 = torch.zeros_like(delta, dtype=torch.bool).scatter(-1, delta.topk(4).indices, True)
    assert torch.equal(keep[:, :, 0], top4)


def test_key_scores_are_a_softplus_of_the_values_scaled_per_head():
    torch.manual_seed(0)
    module = scaled_up(dma.build(16, num_heads=2, window=4))
    v = torch.randn(2, 2, 5, 8)
    values = v.transpose(1, 2).reshape(2, 5, 16)
    expected = module.A[:, None] * F.softplus(
        values @ module.dt_proj.weight.T + module.dt_proj.bias
    ).transpose(1, 2)
    torch.testing.assert_close(module.key_scores(v), expected, **TOL)


def test_every_parameter_learns_at_init_but_dt_proj_would_not_with_a_zero():
    """A starts from N(0, 0.02) as in Doge's _init_weights: at A = 0 nothing reaches dt_proj."""
    torch.manual_seed(0)
    module = dma.build(16, num_heads=2, window=4)
    assert 0 < module.A.abs().max() < 0.1
    x = torch.randn(2, 12, 16)
    module(x).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    module.zero_grad()
    with torch.no_grad():
        module.A.zero_()
    module(x).square().sum().backward()
    assert module.dt_proj.weight.grad.abs().sum() == 0 and module.A.grad.abs().sum() > 0


@pytest.mark.parametrize("length", [1, 3, 4, 5, 9, 13])
def test_odd_lengths_and_batch_one(length):
    torch.manual_seed(length)
    module = scaled_up(dma.build(24, num_heads=3, window=4))
    x = torch.randn(1, length, 24)
    out = module(x)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out, explicit_dma(module, x), **TOL)


@pytest.mark.parametrize("length,window", [(1, 8), (7, 3), (20, 20), (20, 100), (33, 4)])
def test_keys_read_counts_each_query(length, window):
    assert dma.keys_read(length, window) == sum(min(window, t + 1) for t in range(length))
    assert dma.keys_read(length, window, causal=False) == length * min(window, length)


@pytest.mark.parametrize("length,causal", [(1, True), (9, True), (33, True), (33, False)])
def test_effective_flops_are_at_most_the_measured_dense_flops(length, causal):
    batch, dim, heads, window = 2, 16, 2, 4
    module = dma.build(dim, num_heads=heads, window=window, causal=causal)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(torch.randn(batch, length, dim))
    declared = dma.flops(batch, length, dim, num_heads=heads, window=window, causal=causal)
    # The reference: dt_proj on every value and a masked dense L x L attention.
    assert declared.selection == 2 * batch * length * dim * heads
    assert (
        counter.get_total_flops()
        == declared.projections + declared.selection + 4 * batch * length**2 * dim
    )
    assert declared.attention == 4 * batch * dim * dma.keys_read(length, window, causal)
    assert declared.attention <= 4 * batch * length * window * dim
    assert declared.total <= counter.get_total_flops()


def test_cache_keeps_everything_and_reads_w_keys_plus_the_scores():
    cost = dma.cache(33, 64, bytes_per_element=2, num_heads=2, window=8)
    assert cost.kv_stored == (2 * 33 * 64 + 33 * 2) * 2 and cost.state == 0
    assert cost.kv_read_per_token == (2 * 8 * 64 + 33 * 2) * 2
    assert dma.cache(5, 64, num_heads=1, window=8).kv_read_per_token == (2 * 5 * 64 + 5) * 2
    long, dense = dma.cache(16384, 64), mha.cache(16384, 64)
    assert long.kv_stored > dense.kv_stored and long.kv_read_per_token < dense.kv_stored / 4


@pytest.mark.parametrize("bad,name", [({"window": 0}, "window"), ({"num_heads": 5}, "num_heads")])
def test_impossible_hyperparameters_are_config_errors(bad, name):
    with pytest.raises(ConfigError, match=name):
        dma.build(16, **bad)


def test_conforms_with_a_window_shorter_than_the_conformance_inputs():
    assert_conforms(dma.SPEC, hparams={"num_heads": 2, "window": 5})
