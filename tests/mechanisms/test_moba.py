"""Mixture of Block Attention: the official naive routing token by token, full top-k is causal
attention, own block always and future blocks never, the key convolution, causality and costs as
declared."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.kernels.reference import block_centroids
from attnbench.mechanisms import mha, moba
from attnbench.testing import assert_conforms
from tests.mechanisms.leak import assert_no_causal_leak

TOL = dict(rtol=1e-5, atol=1e-5)


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(d,) query against (n, d) keys and values."""
    return torch.softmax(k @ q / q.shape[-1] ** 0.5, -1) @ v


@torch.no_grad()
def explicit_moba(module: moba.MixtureOfBlockAttention, x: torch.Tensor) -> torch.Tensor:
    """moba_naive.py token by token: query t in block j scores each past block i < j by q .
    mean(K_i), keeps the best k - 1 of them plus block j, and attends with one softmax to their keys
    up to t."""
    q, k, v = module.proj.split(x)
    if module.key_conv is not None:
        k = module.convolve_keys(k)
    batch, heads, length, _ = q.shape
    c = module.block_size
    out = torch.zeros_like(q)
    for b in range(batch):
        for h in range(heads):
            for t in range(length):
                own = t // c
                gate = {
                    i: float(q[b, h, t] @ k[b, h, i * c : (i + 1) * c].mean(0)) for i in range(own)
                }
                picked = sorted(gate, key=gate.get, reverse=True)[: module.top_k - 1] + [own]
                keys = [s for i in picked for s in range(i * c, min((i + 1) * c, t + 1))]
                out[b, h, t] = softmax_attention(q[b, h, t], k[b, h, keys], v[b, h, keys])
    return module.proj.merge(out)


@pytest.mark.parametrize(
    "block_size,top_k,length,heads",
    [(4, 2, 17, 2), (3, 3, 14, 1), (5, 1, 23, 2), (2, 4, 11, 4), (8, 2, 32, 1)],
)
def test_equals_the_official_naive_routing_token_by_token(block_size, top_k, length, heads):
    torch.manual_seed(block_size * 10 + top_k)
    module = moba.build(16, num_heads=heads, block_size=block_size, top_k=top_k)
    x = torch.randn(2, length, 16)
    torch.testing.assert_close(module(x), explicit_moba(module, x), **TOL)


@pytest.mark.parametrize(
    "length,block_size,top_k", [(32, 8, 4), (33, 8, 5), (13, 4, 4), (7, 3, 9), (1, 4, 1)]
)
def test_top_k_covering_every_block_is_causal_mha(length, block_size, top_k):
    torch.manual_seed(length)
    module = moba.build(16, num_heads=2, block_size=block_size, top_k=top_k)
    dense = mha.build(16, num_heads=2)
    dense.load_state_dict(module.state_dict())
    x = torch.randn(2, length, 16)
    torch.testing.assert_close(module(x), dense(x), **TOL)


@pytest.mark.parametrize(
    "length,block_size,top_k", [(17, 4, 2), (33, 8, 2), (20, 3, 3), (9, 2, 1), (5, 8, 2)]
)
def test_own_block_always_future_blocks_never_and_k_minus_one_past_blocks(
    length, block_size, top_k
):
    torch.manual_seed(length * block_size)
    q, k = torch.randn(2, 3, length, 8), torch.randn(2, 3, length, 8)
    chosen = moba.select_blocks(q, k, block_size, top_k)
    mask = moba.token_mask(chosen, block_size)
    t = torch.arange(length)
    own = t // block_size
    block = torch.arange(chosen.shape[-1])
    assert not mask[..., t[:, None] < t[None, :]].any()  # no future key
    assert not chosen[..., block[None, :] > own[:, None]].any()  # no future block
    assert chosen[..., t, own].all()  # the own block always
    own_prefix = (t[None, :] <= t[:, None]) & (t[None, :] // block_size == own[:, None])
    assert mask[..., own_prefix].all()  # read causally, up to the query
    assert torch.equal(
        chosen.sum(-1), (own + 1).clamp(max=top_k).expand(2, 3, -1)
    )  # min(k - 1, j) past + own


def test_past_blocks_are_ranked_by_the_centroid_of_their_keys():
    """Block 0's keys are aligned with the query, block 1's opposed, block 2's orthogonal: with k =
    2 the query in block 3 keeps block 0; a partial last block has the mean of its own tokens."""
    q = torch.zeros(1, 1, 13, 2)
    q[..., 0] = 1.0
    k = torch.zeros(1, 1, 13, 2)
    k[:, :, 0:4, 0], k[:, :, 4:8, 0], k[:, :, 8:12, 1] = 1.0, -1.0, 5.0
    k[:, :, 12, 0] = 3.0
    chosen = moba.select_blocks(q, k, 4, 2)
    assert chosen[0, 0, 12].tolist() == [True, False, False, True]
    centroids = block_centroids(k, 4)
    assert centroids[0, 0, :, 0].tolist() == [1.0, -1.0, 0.0, 3.0]


def test_key_convolution_is_a_causal_depthwise_filter_over_each_key_channel():
    torch.manual_seed(0)
    module = moba.build(16, num_heads=2, block_size=4, top_k=2, key_conv=3)
    k = torch.randn(2, 2, 9, 8)
    weight = module.key_conv.weight.view(
        2, 8, 3
    )  # channel (head, d) of the D key channels, taps oldest first
    padded = torch.nn.functional.pad(k, (0, 0, 2, 0))
    expected = sum(weight[None, :, None, :, i] * padded[:, :, i : i + 9] for i in range(3))
    torch.testing.assert_close(module.convolve_keys(k), expected, **TOL)


def test_identity_key_convolution_is_plain_moba_and_a_learned_one_routes_on_convolved_keys():
    torch.manual_seed(3)
    plain = moba.build(16, num_heads=2, block_size=4, top_k=2)
    conv = moba.build(16, num_heads=2, block_size=4, top_k=2, key_conv=4)
    conv.proj.load_state_dict(plain.proj.state_dict())
    x = torch.randn(2, 19, 16)
    torch.testing.assert_close(conv(x), explicit_moba(conv, x), **TOL)
    with torch.no_grad():
        conv.key_conv.weight.zero_()
        conv.key_conv.weight[..., -1] = 1.0
    torch.testing.assert_close(conv(x), plain(x), **TOL)


def test_no_causal_leak_through_the_key_convolution():
    """Conformance checks the default (no convolution); the paper's key convolution must stay
    causal too."""
    torch.manual_seed(1)
    module = moba.build(16, num_heads=2, block_size=3, top_k=2, key_conv=3).double()
    x = torch.randn(1, 19, 16, dtype=torch.float64)
    assert_no_causal_leak(module, x, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("length", [1, 3, 4, 5, 9, 13])
def test_odd_lengths_and_batch_one(length):
    torch.manual_seed(length)
    module = moba.build(24, num_heads=3, block_size=4, top_k=2)
    x = torch.randn(1, length, 24)
    out = module(x)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out, explicit_moba(module, x), **TOL)


def brute_force_keys_read(length: int, block_size: int, top_k: int) -> int:
    return sum(
        t % block_size + 1 + min(top_k - 1, t // block_size) * block_size for t in range(length)
    )


@pytest.mark.parametrize(
    "length,block_size,top_k", [(1, 4, 2), (7, 4, 2), (32, 8, 2), (33, 8, 3), (50, 3, 4)]
)
def test_keys_read_counts_each_query(length, block_size, top_k):
    assert moba.keys_read(length, block_size, top_k) == brute_force_keys_read(
        length, block_size, top_k
    )


@pytest.mark.parametrize("length,key_conv", [(1, 0), (9, 0), (33, 0), (33, 3)])
def test_effective_flops_are_at_most_the_measured_dense_flops(length, key_conv):
    batch, dim, c, top_k = 2, 16, 4, 2
    hparams = dict(num_heads=2, block_size=c, top_k=top_k, key_conv=key_conv)
    module = moba.build(dim, **hparams)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(torch.randn(batch, length, dim))
    declared = moba.flops(batch, length, dim, **hparams)
    # The reference: the gate against every centroid, the convolution, and a masked dense L x L
    # attention.
    assert (
        counter.get_total_flops()
        == declared.projections + declared.selection + 4 * batch * length**2 * dim
    )
    assert (
        declared.selection
        == 2 * batch * length * -(-length // c) * dim + 2 * batch * length * dim * key_conv
    )
    assert declared.attention == 4 * batch * dim * moba.keys_read(length, c, top_k)
    assert declared.attention <= 4 * batch * length * top_k * c * dim  # the k Bk bound
    assert declared.total <= counter.get_total_flops()


def test_with_every_block_the_attention_flops_are_the_causal_triangle():
    declared = moba.flops(2, 30, 16, num_heads=2, block_size=4, top_k=8)
    assert declared.attention == 4 * 2 * 16 * (30 * 31 // 2)


def test_cache_keeps_everything_and_reads_k_blocks_plus_centroids():
    # 33 tokens in blocks of 8: 4 centroids kept; the next token reads 1 past block, its own 1 token
    # so far and the 4 centroids.
    cost = moba.cache(33, 64, bytes_per_element=2, block_size=8, top_k=2)
    assert cost.kv_stored == (2 * 33 + 4) * 64 * 2 and cost.state == 0
    assert cost.kv_read_per_token == (2 * (1 * 8 + 1) + 4) * 64 * 2
    assert moba.cache(33, 64, block_size=8, top_k=2, key_conv=4).state == 3 * 64 * 2
    long = moba.cache(8192, 64)  # 16 blocks of 512, 3 of them read: the paper's 81.25% sparsity
    assert long.kv_read_per_token == (2 * 2 * 512 + 16) * 64 * 2
    assert (
        long.kv_stored > mha.cache(8192, 64).kv_stored
        and long.kv_read_per_token < mha.cache(8192, 64).kv_stored / 4
    )


@pytest.mark.parametrize(
    "bad,name",
    [
        ({"block_size": 0}, "block_size"),
        ({"top_k": 0}, "top_k"),
        ({"key_conv": -1}, "key_conv"),
        ({"num_heads": 5}, "num_heads"),
        ({"causal": False}, "causal only"),
    ],
)
def test_impossible_hyperparameters_are_config_errors(bad, name):
    with pytest.raises(ConfigError, match=name):
        moba.build(16, **bad)


def test_conforms_with_the_key_convolution():
    assert_conforms(moba.SPEC, hparams={"num_heads": 2, "block_size": 4, "top_k": 2, "key_conv": 3})
