"""Hierarchical Chunk Attention Memory: one chunk is plain attention over it, the paper's recall
token by token, relevance weights, stop-gradient, causality and costs as declared."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.mechanisms import hcam, mha


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(..., d) query against (..., n, d) keys and values."""
    scores = torch.einsum("...d,...nd->...n", q, k) / q.shape[-1] ** 0.5
    return torch.einsum("...n,...nd->...d", torch.softmax(scores, -1), v)


def explicit_hcam(module: hcam.HierarchicalChunkAttention, x: torch.Tensor) -> torch.Tensor:
    """The paper token by token: local causal attention in the current chunk, plus, over the
    complete past chunks, relevance q . W_K(mean of the chunk's inputs) / sqrt(D), top-k, softmax
    over those k, and the relevance-weighted sum of per-head attention inside each chosen chunk."""
    q, k, v = module.proj.split(x)
    batch, heads, length, head_dim = q.shape
    dim, c = heads * head_dim, module.chunk_size
    w_k, b_k = module.proj.qkv.weight[dim : 2 * dim], module.proj.qkv.bias[dim : 2 * dim]
    out = torch.zeros_like(q)
    for t in range(length):
        i = t // c
        out[:, :, t] = softmax_attention(q[:, :, t], k[:, :, i * c : t + 1], v[:, :, i * c : t + 1])
        if i == 0:
            continue
        summary_keys = torch.stack(
            [x[:, j * c : (j + 1) * c].mean(1) @ w_k.T + b_k for j in range(i)], 1
        )
        relevance = (
            torch.einsum("bD,bjD->bj", q[:, :, t].reshape(batch, dim), summary_keys) / dim**0.5
        )
        top, chosen = relevance.topk(min(module.top_k, i), dim=-1)
        for b in range(batch):
            for weight, j in zip(torch.softmax(top[b], -1), chosen[b].tolist()):
                chunk = slice(j * c, (j + 1) * c)
                out[b, :, t] += weight * softmax_attention(
                    q[b, :, t], k[b, :, chunk], v[b, :, chunk]
                )
    return module.proj.merge(out)


@pytest.mark.parametrize("length", [10, 13])
def test_one_past_chunk_with_top_k_all_is_attention_over_that_chunk(length):
    """Two chunks of 5 (and a partial third at 13): with top_k = number of chunks, a query in chunk
    1 has only chunk 0 to recall, with weight 1, so its memory readout is plain attention over chunk
    0.
    """
    torch.manual_seed(length)
    module = hcam.build(16, num_heads=2, chunk_size=5, top_k=length // 5)
    x = torch.randn(2, length, 16)
    q, k, v = module.proj.split(x)
    readout, weights = hcam.hierarchical_readout(
        q, k, v, module.summary_keys(x, length // 5), 5, length // 5
    )
    expected = softmax_attention(q[:, :, 5:10], k[:, :, None, :5], v[:, :, None, :5])
    torch.testing.assert_close(readout[:, :, 5:10], expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(weights[:, 5:10, 0], torch.ones(2, 5))
    local = mha.build(16, num_heads=2)
    local.load_state_dict(
        module.state_dict()
    )  # the first chunk has no memory: plain causal attention
    torch.testing.assert_close(module(x)[:, :5], local(x[:, :5]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk_size,top_k,length", [(4, 2, 17), (3, 1, 14), (5, 8, 23), (2, 3, 9)])
def test_equals_the_papers_recall_token_by_token(chunk_size, top_k, length):
    torch.manual_seed(chunk_size)
    module = hcam.build(16, num_heads=2, chunk_size=chunk_size, top_k=top_k)
    x = torch.randn(2, length, 16)
    torch.testing.assert_close(module(x), explicit_hcam(module, x), rtol=1e-5, atol=1e-5)


def test_relevance_weights_are_a_softmax_over_the_top_k_eligible_chunks():
    torch.manual_seed(0)
    module = hcam.build(16, num_heads=2, chunk_size=3, top_k=2)
    x = torch.randn(2, 20, 16)
    q, k, v = module.proj.split(x)
    _, weights = hcam.hierarchical_readout(q, k, v, module.summary_keys(x, 6), 3, 2)
    query_chunk = torch.arange(20) // 3
    has_memory = query_chunk > 0
    torch.testing.assert_close(weights.sum(-1)[:, has_memory], torch.ones(2, int(has_memory.sum())))
    assert torch.equal(weights[:, ~has_memory], torch.zeros_like(weights[:, ~has_memory]))
    ineligible = query_chunk[:, None] <= torch.arange(6)[None, :]
    assert torch.equal(weights[:, ineligible], torch.zeros_like(weights[:, ineligible]))
    used = (weights > 0).sum(-1)
    assert torch.equal(used, query_chunk.clamp(max=2).expand(2, -1))  # min(k, eligible) chunks each


def test_summaries_are_stop_gradient_but_w_k_still_learns_from_the_relevance():
    torch.manual_seed(0)
    module = hcam.build(16, num_heads=2, chunk_size=4, top_k=2)
    x = torch.randn(1, 12, 16, requires_grad=True)
    module.summary_keys(x, 3).square().sum().backward()
    assert x.grad is None  # nothing flows back into the tokens through the summaries
    grad = module.proj.qkv.weight.grad
    assert grad[16:32].abs().sum() > 0 and grad[:16].abs().sum() == 0 and grad[32:].abs().sum() == 0


@pytest.mark.parametrize("length", [1, 3, 4, 5, 9, 13])
def test_odd_lengths_and_batch_one(length):
    torch.manual_seed(length)
    module = hcam.build(24, num_heads=3, chunk_size=4, top_k=2)
    x = torch.randn(1, length, 24)
    out = module(x)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out, explicit_hcam(module, x), rtol=1e-5, atol=1e-5)


def brute_force_keys_read(length: int, chunk_size: int, top_k: int) -> tuple[int, int, int]:
    chunks = [t // chunk_size for t in range(length)]
    return (
        sum(chunks),
        sum(min(top_k, i) * chunk_size for i in chunks),
        sum(t - i * chunk_size + 1 for t, i in enumerate(chunks)),
    )


@pytest.mark.parametrize(
    "length,chunk_size,top_k", [(1, 4, 2), (7, 4, 2), (32, 4, 2), (33, 16, 8), (50, 3, 4)]
)
def test_keys_read_counts_each_query(length, chunk_size, top_k):
    assert hcam.keys_read(length, chunk_size, top_k) == brute_force_keys_read(
        length, chunk_size, top_k
    )


@pytest.mark.parametrize("length", [1, 4, 9, 33])
def test_effective_flops_are_at_most_the_measured_dense_flops(length):
    batch, dim, c, top_k = 2, 16, 4, 2
    module = hcam.build(dim, num_heads=2, chunk_size=c, top_k=top_k)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(torch.randn(batch, length, dim))
    declared = hcam.flops(batch, length, dim, num_heads=2, chunk_size=c, top_k=top_k)
    # The reference: padded local chunks, and, once a past chunk exists, W_K on every complete
    # chunk's summary, every summary scored and every complete chunk read in detail by every query.
    local_chunk = min(c, length)
    dense = (
        declared.projections
        + 4 * batch * -(-length // local_chunk) * local_chunk * local_chunk * dim
    )
    if length > c:
        m = length // c
        dense += (
            2 * batch * m * dim * dim
            + 2 * batch * length * m * dim
            + 4 * batch * length * m * c * dim
        )
    assert counter.get_total_flops() == dense
    assert declared.total <= dense
    scored, detail, local = hcam.keys_read(length, c, top_k)
    assert declared.attention == 4 * batch * dim * (detail + local)


def test_cache_keeps_everything_and_reads_k_chunks_plus_summaries():
    # 33 tokens in chunks of 4: 8 summaries kept; the next token reads 2 chunks, its own 1 token so
    # far, 8 summaries.
    cost = hcam.cache(33, 64, bytes_per_element=2, chunk_size=4, top_k=2)
    assert cost.kv_stored == (2 * 33 + 8) * 64 * 2 and cost.state == 0
    assert cost.kv_read_per_token == (2 * (2 * 4 + 1) + 8) * 64 * 2
    long = hcam.cache(4096, 64, chunk_size=16, top_k=8)
    assert (
        long.kv_stored > mha.cache(4096, 64).kv_stored
        and long.kv_read_per_token < mha.cache(4096, 64).kv_stored / 4
    )


@pytest.mark.parametrize(
    "bad,name",
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"top_k": 0}, "top_k"),
        ({"num_heads": 5}, "num_heads"),
        ({"causal": False}, "causal only"),
    ],
)
def test_impossible_hyperparameters_are_config_errors(bad, name):
    with pytest.raises(ConfigError, match=name):
        hcam.build(16, **bad)
