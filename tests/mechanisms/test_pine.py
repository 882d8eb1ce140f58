"""PINE: the model's own attention without segments; with them, equal to a per-query written-out
reference (RoPE applied to unrotated q and k at the re-assigned positions), independent of the
segments' order, bidirectional between segments, decoding with a cache equal to the full pass; bad
declarations refused.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from attnbench.errors import ConfigError
from attnbench.mechanisms import dense, pine
from attnbench.registry import MECHANISMS
from attnbench.toolkit.pretrained import install
from tests.support.tiny import qkv, tiny_llama

TOL = dict(rtol=1e-5, atol=1e-5)  # float32 logits; re-positioning turns each query once more


def rope(x: torch.Tensor, positions: torch.Tensor, config) -> torch.Tensor:
    """transformers' own RoPE of x (..., L, Dh) at the given positions."""
    from transformers.models.llama.modeling_llama import (
        LlamaRotaryEmbedding,
        rotate_half,
    )

    cos, sin = LlamaRotaryEmbedding(config)(x.float(), positions[None])
    return x * cos[0].to(x.dtype) + rotate_half(x) * sin[0].to(x.dtype)


def importance(q, k, spans, scaling, skip=None):
    """Position-free importance of each segment to query q (Dh,) over keys k (L, Dh): its mean
    weight per token."""
    start, end = spans[0][0], spans[-1][1]
    scores = q @ k[start:end].T * scaling
    if skip is not None:
        scores[spans[skip][0] - start : spans[skip][1] - start] = float("-inf")
    weights = torch.softmax(scores, -1)
    return torch.stack([weights[s - start : e - start].sum() / (e - s) for s, e in spans])


def written_out(q_raw, k_raw, v, spans, scaling, config):
    """PINE for one example, query by query and head by head, from unrotated q (H, L, Dh), k and
    v (H, L, Dh)."""
    heads, length, _ = q_raw.shape
    start, end = spans[0][0], spans[-1][1]
    sizes = [e - s for s, e in spans]
    segment = {j: i for i, (s, e) in enumerate(spans) for j in range(s, e)}
    out = torch.zeros_like(q_raw)
    for h in range(heads):
        for t in range(length):
            if t < start:
                scores = torch.zeros(len(spans))
            elif t < end:
                own = segment[t]
                scores = sum(
                    importance(q_raw[h, u], k_raw[h], spans, scaling, own)
                    for u in range(*spans[own])
                )
                scores[own] = float("inf")
            else:
                scores = importance(q_raw[h, t], k_raw[h], spans, scaling)
            order = scores.argsort(descending=True, stable=True).tolist()
            shift, ahead = [0] * len(spans), 0
            for i in order:
                shift[i], ahead = ahead, ahead + sizes[i]
            position = torch.tensor(
                [
                    (
                        end - sizes[segment[j]] - shift[segment[j]] + j - spans[segment[j]][0]
                        if j in segment
                        else j
                    )
                    for j in range(length)
                ]
            )
            q_t = rope(q_raw[h, t : t + 1], position[t : t + 1], config)
            k_t = torch.cat(
                [rope(k_raw[h, j : j + 1], position[j : j + 1], config) for j in range(length)]
            )
            scores = (q_t @ k_t.T * scaling)[0].masked_fill(position > position[t], float("-inf"))
            out[h, t] = torch.softmax(scores, -1) @ v[h]
    return out


def test_without_segments_it_is_the_models_own_attention(module):
    query, key, value = qkv(2, 20, 20)
    for attention in (
        pine.build(),
        pine.build(segments=[[3, 8]]),
    ):  # one segment cannot be reordered
        out, _ = attention(module, query, key, value, None, scaling=module.scaling)
        assert torch.equal(
            out, dense.build()(module, query, key, value, None, scaling=module.scaling)[0]
        )


def test_equals_the_written_out_reference(module):
    config, spans = module.config, [(3, 7), (7, 13), (13, 15)]
    q_raw, k_raw, v = qkv(1, 19, 19, dtype=torch.float64, seed=3)
    positions = torch.arange(19)
    query, key = rope(q_raw[0], positions, config)[None], rope(k_raw[0], positions, config)[None]
    out, _ = pine.build()(module, query, key, v, None, scaling=module.scaling, pine_segments=spans)
    groups = q_raw.shape[1] // k_raw.shape[1]
    expected = written_out(
        q_raw[0],
        k_raw[0].repeat_interleave(groups, 0),
        v[0].repeat_interleave(groups, 0),
        spans,
        module.scaling,
        config,
    )
    # float64 throughout, but transformers computes RoPE's cos and sin in float32
    torch.testing.assert_close(out[0].transpose(0, 1), expected, rtol=1e-6, atol=1e-6)


def prompt(order: list[int], seed: int = 3):
    """[prefix (5), segments of 6, 9 and 4 tokens in `order`, suffix (7)] and the segments'
    spans."""
    generator = torch.Generator().manual_seed(seed)
    prefix, suffix = (
        torch.randint(4, 45, (5,), generator=generator),
        torch.randint(4, 45, (7,), generator=generator),
    )
    segments = [torch.randint(4, 45, (n,), generator=generator) for n in (6, 9, 4)]
    spans, at = [], len(prefix)
    for i in order:
        spans.append((at, at + len(segments[i])))
        at += len(segments[i])
    return torch.cat([prefix, *[segments[i] for i in order], suffix])[None], spans


def test_the_segments_order_does_not_matter():
    model = tiny_llama()
    (first, spans_1), (second, spans_2) = prompt([0, 1, 2]), prompt([2, 0, 1])
    with torch.no_grad():
        assert not torch.allclose(model(first).logits[:, -1], model(second).logits[:, -1], **TOL)
        install(model, MECHANISMS.get("pine"), {"segments": None})
        torch.testing.assert_close(
            model(first, pine_segments=spans_1).logits[:, -1],
            model(second, pine_segments=spans_2).logits[:, -1],
            **TOL,
        )


def test_segments_see_each_other_and_the_prefix_sees_none():
    model = tiny_llama()
    install(model, MECHANISMS.get("pine"), {"segments": None})
    tokens, spans = prompt([0, 1, 2])
    changed = tokens.clone()
    changed[0, spans[2][0]] = (
        5 if tokens[0, spans[2][0]] != 5 else 6
    )  # the last segment's first token
    with torch.no_grad():
        before, after = (
            model(tokens, pine_segments=spans).logits,
            model(changed, pine_segments=spans).logits,
        )
    assert torch.equal(before[:, :5], after[:, :5])
    assert not torch.allclose(
        before[:, spans[0][0] : spans[0][1]], after[:, spans[0][0] : spans[0][1]]
    )


def test_decoding_with_a_cache_equals_the_full_pass():
    model = tiny_llama()
    tokens, spans = prompt([1, 0, 2])
    install(model, MECHANISMS.get("pine"), {"segments": [list(span) for span in spans]})
    with torch.no_grad():
        out = model.generate(
            tokens,
            do_sample=False,
            max_new_tokens=5,
            eos_token_id=None,
            pad_token_id=0,
            output_logits=True,
            return_dict_in_generate=True,
        )
        steps = torch.stack(out.logits, 1)
        length = tokens.shape[1]
        torch.testing.assert_close(
            steps, model(out.sequences).logits[:, length - 1 : length + 4], **TOL
        )


def test_the_budget_counts_pairs_between_segments(module):
    query, key, value = qkv(1, 19, 19)
    attention = pine.build()
    attention(
        module,
        query,
        key,
        value,
        None,
        scaling=module.scaling,
        pine_segments=[(3, 7), (7, 13), (13, 15)],
    )
    stats = attention.last_stats
    # beyond causal attention: each segment token also reads every later segment's tokens
    later = 4 * 8 + 6 * 2
    assert stats["pairs"] == 4 * (19 * 20 // 2 + later) and stats["density"] > 1
    assert stats["selection_flops"] == 2 * 16 * 4 * (19 - 3) * 12
    assert pine.flops(1, 19, 4, 16) == dense.flops(1, 19, 4, 16)


@pytest.mark.parametrize("segments", [[(3, 7), (8, 12)], [(7, 3), (3, 9)], [(3, 7), (7, 30)]])
def test_segments_that_cannot_be_laid_out_are_refused(module, segments):
    query, key, value = qkv(1, 19, 19)
    with pytest.raises(ConfigError, match="pine_segments"):
        pine.build()(
            module, query, key, value, None, scaling=module.scaling, pine_segments=segments
        )


def test_positions_other_than_the_default_are_refused(module):
    query, key, value = qkv(1, 19, 19)
    with pytest.raises(ConfigError, match="default positions"):
        pine.build()(
            module,
            query,
            key,
            value,
            None,
            scaling=module.scaling,
            pine_segments=[(3, 7), (7, 13)],
            position_ids=torch.arange(19)[None] + 2,
        )
