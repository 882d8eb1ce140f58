"""Landmark Attention: the paper's grouped softmax token by token, weights that sum to 1, one block
is causal attention, retrieving every block is the training form, no leak, and costs as declared."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.mechanisms import landmark, mha
from tests.mechanisms.leak import assert_no_causal_leak

TOL = dict(rtol=1e-5, atol=1e-5)


def make(dim: int = 16, num_heads: int = 2, **hparams: int) -> landmark.LandmarkAttention:
    """A module whose landmark query is not zero, so that it reads its block unevenly."""
    module = landmark.build(dim, num_heads=num_heads, **hparams)
    with torch.no_grad():
        module.landmark_query.normal_()
    return module


@torch.no_grad()
def explicit_landmark(
    module: landmark.LandmarkAttention, x: torch.Tensor, retrieve: bool
) -> torch.Tensor:
    """The paper token by token. Query t in block b: one softmax over the landmark scores of the
    past blocks (the top-k of them when retrieving) and the scores of its own block's tokens up to
    t; a past block's share is spread over its tokens by a softmax over them. The landmark key of
    block g is its keys read by the learned landmark query u."""
    q, k, v = module.proj.split(x)
    batch, heads, length, head_dim = q.shape
    c = module.block_size
    out = torch.zeros_like(q)
    for b in range(batch):
        for h in range(heads):
            u = module.landmark_query[h]
            for t in range(length):
                own = range(t // c * c, t + 1)
                past = list(range(t // c))
                landmark_keys = [
                    torch.softmax(k[b, h, g * c : (g + 1) * c] @ u / head_dim**0.5, 0)
                    @ k[b, h, g * c : (g + 1) * c]
                    for g in past
                ]
                landmark_scores = {
                    g: float(q[b, h, t] @ key) / head_dim**0.5
                    for g, key in zip(past, landmark_keys)
                }
                if retrieve:
                    past = sorted(past, key=landmark_scores.get, reverse=True)[: module.top_k]
                logits = torch.tensor(
                    [landmark_scores[g] for g in past]
                    + [float(q[b, h, t] @ k[b, h, j]) / head_dim**0.5 for j in own]
                )
                top = torch.softmax(logits.to(x.dtype), 0)
                for share, g in zip(top[: len(past)], past):
                    block = slice(g * c, (g + 1) * c)
                    within = torch.softmax(k[b, h, block] @ q[b, h, t] / head_dim**0.5, 0)
                    out[b, h, t] += share * within @ v[b, h, block]
                out[b, h, t] += top[len(past) :] @ v[b, h, own.start : t + 1]
    return module.proj.merge(out)


@pytest.mark.parametrize("block_size,top_k,length", [(4, 2, 17), (3, 1, 14), (5, 8, 23), (2, 3, 9)])
@pytest.mark.parametrize("retrieve", [False, True])
def test_equals_the_papers_grouped_softmax_token_by_token(block_size, top_k, length, retrieve):
    torch.manual_seed(block_size)
    module = make(block_size=block_size, top_k=top_k).train(not retrieve)
    x = torch.randn(2, length, 16)
    torch.testing.assert_close(module(x), explicit_landmark(module, x, retrieve), **TOL)


@pytest.mark.parametrize("top_k", [None, 1, 2])
def test_grouped_softmax_weights_sum_to_one_and_skip_the_future_and_unretrieved_blocks(top_k):
    torch.manual_seed(0)
    length, c = 19, 3
    scores, landmark_scores = (
        torch.randn(2, 2, length, length),
        torch.randn(2, 2, length, length // c),
    )
    weights = landmark.grouped_softmax(scores, landmark_scores, c, top_k)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, length), **TOL)
    t = torch.arange(length)
    assert torch.equal(weights[..., t[:, None] < t], torch.zeros_like(weights[..., t[:, None] < t]))
    m = length // c
    mass = (
        weights[..., : m * c].unflatten(-1, (m, c)).sum(-1)
    )  # what each query gives each complete block
    past_blocks_read = ((mass > 0) & (torch.arange(m) < (t // c)[:, None])).sum(-1)
    expected = t // c if top_k is None else (t // c).clamp(max=top_k)
    assert torch.equal(past_blocks_read, expected.expand(2, 2, -1))


@pytest.mark.parametrize("block_size,length", [(13, 13), (20, 13)])
@pytest.mark.parametrize("training", [True, False])
def test_one_block_covering_the_sequence_is_causal_attention(block_size, length, training):
    torch.manual_seed(block_size)
    module = make(block_size=block_size, top_k=1).train(training)
    dense = mha.build(16, num_heads=2)
    dense.proj.load_state_dict(module.proj.state_dict())
    x = torch.randn(2, length, 16)
    torch.testing.assert_close(module(x), dense(x), **TOL)


def test_retrieving_every_block_is_the_training_form():
    torch.manual_seed(0)
    module = make(block_size=3, top_k=6)
    x = torch.randn(2, 20, 16)  # 6 complete blocks
    torch.testing.assert_close(module.eval()(x), module.train()(x), rtol=0, atol=0)
    module.top_k = 2
    assert not torch.allclose(module.eval()(x), module.train()(x))


def test_landmark_keys_start_as_block_means_and_the_landmark_query_learns():
    torch.manual_seed(0)
    module = landmark.build(16, num_heads=2, block_size=4, top_k=2)
    k = torch.randn(2, 2, 14, 8)
    torch.testing.assert_close(
        module.landmark_keys(k), k[:, :, :12].unflatten(2, (3, 4)).mean(3), **TOL
    )
    module(torch.randn(2, 14, 16)).square().sum().backward()
    assert module.landmark_query.grad.abs().sum() > 0


def test_no_causal_leak_in_eval_mode():
    """Conformance checks a module as built (training mode); retrieval at evaluation must not
    leak either."""
    torch.manual_seed(1)
    module = make(block_size=3, top_k=2).double().eval()
    x = torch.randn(1, 19, 16, dtype=torch.float64)
    assert_no_causal_leak(module, x, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("length", [1, 3, 4, 5, 9, 13])
def test_odd_lengths_and_batch_one(length):
    torch.manual_seed(length)
    module = make(24, num_heads=3, block_size=4, top_k=1).eval()
    x = torch.randn(1, length, 24)
    out = module(x)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out, explicit_landmark(module, x, retrieve=True), **TOL)


@pytest.mark.parametrize("length,block_size", [(1, 4), (7, 4), (32, 4), (33, 50), (101, 7)])
def test_landmarks_scored_counts_each_query(length, block_size):
    assert landmark.landmarks_scored(length, block_size) == sum(
        t // block_size for t in range(length)
    )


@pytest.mark.parametrize("length", [1, 4, 9, 33])
def test_effective_flops_are_at_most_the_measured_dense_flops(length):
    batch, dim, c = 2, 16, 4
    module = landmark.build(dim, num_heads=2, block_size=c, top_k=2)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(torch.randn(batch, length, dim))
    declared = landmark.flops(batch, length, dim, num_heads=2, block_size=c, top_k=2)
    # The reference: full L x L scores and mixing, every query against every complete block's
    # landmark, and the landmark keys of all complete blocks.
    m = length // c
    dense = (
        declared.projections
        + 4 * batch * length * length * dim
        + 2 * batch * length * m * dim
        + 4 * batch * m * c * dim
    )
    assert counter.get_total_flops() == dense
    assert declared.total <= dense
    assert declared.attention == 4 * batch * dim * length * (length + 1) // 2


def test_cache_keeps_everything_and_reads_landmarks_k_blocks_and_the_own_block():
    # 33 tokens in blocks of 4: 8 landmark keys; the next token reads them, 2 blocks and its block's
    # 1 token.
    cost = landmark.cache(33, 64, bytes_per_element=2, block_size=4, top_k=2)
    assert cost.kv_stored == (2 * 33 + 8) * 64 * 2 and cost.state == 0
    assert cost.kv_read_per_token == (2 * (2 * 4 + 1) + 8) * 64 * 2
    long = landmark.cache(4096, 64, **landmark.SPEC.defaults)
    assert (
        long.kv_stored > mha.cache(4096, 64).kv_stored
        and long.kv_read_per_token < mha.cache(4096, 64).kv_stored / 4
    )


@pytest.mark.parametrize(
    "bad,name",
    [
        ({"block_size": 0}, "block_size"),
        ({"top_k": 0}, "top_k"),
        ({"num_heads": 5}, "num_heads"),
        ({"causal": False}, "causal only"),
    ],
)
def test_impossible_hyperparameters_are_config_errors(bad, name):
    with pytest.raises(ConfigError, match=name):
        landmark.build(16, **bad)
