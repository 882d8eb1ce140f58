"""SALE: the 4-bit code, dense at threshold 0 (attention function and model), sink and local blocks
alone at an unreachable threshold, what is counted is what is computed, no future value read, dense
decoding, costs.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from attnbench.errors import ConfigError
from attnbench.mechanisms import dense, sale
from attnbench.registry import MECHANISMS
from attnbench.toolkit.pretrained import install
from tests.support.tiny import qkv, tiny_llama

TOL = dict(
    rtol=1e-5, atol=1e-5
)  # float32; the block-sparse softmax sums in another order than SDPA
SMALL = dict(block_q=8, block_k=4, local_window=8, dense_below=16)


def test_the_4_bit_code_is_within_half_a_step():
    x = torch.randn(3, 5, 64, generator=torch.Generator().manual_seed(0))
    codes, scale = sale.quantize_int4(x)
    assert codes.abs().max() == 7 and torch.equal(codes, codes.round())
    assert ((x - codes * scale).abs() <= scale / 2 + 1e-7).all()


@pytest.mark.parametrize("q_len", [40, 53])
def test_threshold_zero_is_dense(module, q_len):
    query, key, value = qkv(2, q_len, q_len, dtype=torch.float32)
    attention = sale.build(threshold=0.0, **SMALL)
    out, _ = attention(module, query, key, value, None, scaling=module.scaling)
    torch.testing.assert_close(
        out, dense.build()(module, query, key, value, None, scaling=module.scaling)[0], **TOL
    )
    assert attention.last_stats["mode"] == "sparse" and attention.last_stats["density"] == 1.0


def test_threshold_zero_through_the_model_gives_dense_logits():
    model = tiny_llama()
    tokens = torch.randint(4, 45, (2, 50), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        own = model(tokens).logits
        install(model, MECHANISMS.get("sale"), {**SMALL, "threshold": 0.0, "thresholds": None})
        torch.testing.assert_close(model(tokens).logits, own, **TOL)


def test_an_unreachable_threshold_leaves_the_sink_and_the_local_window(module):
    query, key, value = qkv(1, 61, 61)
    attention = sale.build(threshold=float("inf"), **SMALL)
    attention(module, query, key, value, None, scaling=module.scaling)
    stats = attention.last_stats
    assert stats["pairs"] == 4 * (61 * 62 // 2 - sale.estimated_pairs(61, 8, 4, 8))
    assert stats["selection_flops"] == 2 * 16 * 4 * sale.estimated_pairs(61, 8, 4, 8)
    assert sale.flops(1, 61, 4, 16, **SMALL).selection == stats["selection_flops"]


def test_what_is_counted_is_what_is_computed(module):
    query, key, value = qkv(1, 64, 64)
    query[..., :3] *= 4  # peakier attention, so that the relative score leaves blocks out
    key[..., :3] *= 4
    attention = sale.build(threshold=0.05, **SMALL)
    out, _ = attention(module, query, key, value, None, scaling=module.scaling)
    blocks, _ = sale.select_blocks(
        query, key, module.scaling, 8, 4, 8, torch.full((4,), 0.05, dtype=torch.float64)
    )
    causal = torch.ones(64, 64, dtype=torch.bool).tril()
    keep = blocks.repeat_interleave(8, -2).repeat_interleave(4, -1) & causal
    torch.testing.assert_close(
        out,
        dense.build()(module, query, key, value, keep, scaling=module.scaling)[0],
        rtol=1e-10,
        atol=1e-10,
    )
    stats = attention.last_stats
    assert stats["pairs"] == int(keep.sum()) and 0 < stats["density"] < 1
    assert (
        abs(
            sale.flops(1, 64, 4, 16, density=stats["density"], **SMALL).attention
            - stats["attention_flops"]
        )
        <= 1
    )


def test_per_head_thresholds_by_layer(module):
    query, key, value = qkv(1, 48, 48)
    dense_heads = sale.build(
        threshold=float("inf"), thresholds={"0": [0.0] * 4}, **SMALL
    )  # module is layer 0
    out, _ = dense_heads(module, query, key, value, None, scaling=module.scaling)
    torch.testing.assert_close(
        out,
        dense.build()(module, query, key, value, None, scaling=module.scaling)[0],
        rtol=1e-10,
        atol=1e-10,
    )


def test_no_query_reads_a_later_value(module):
    query, key, value = qkv(1, 64, 64)
    attention = sale.build(threshold=0.05, **SMALL)
    before, _ = attention(module, query, key, value, None, scaling=module.scaling)
    moved = value.clone()
    moved[:, :, 30:] = 100.0
    assert torch.equal(
        attention(module, query, key, moved, None, scaling=module.scaling)[0][:, :30],
        before[:, :30],
    )


@pytest.mark.parametrize(
    "q_len,kv_len", [(1, 60), (5, 60), (16, 16)]
)  # decoding, a chunk, a short prompt
def test_decoding_chunks_and_short_prompts_are_dense(module, q_len, kv_len):
    query, key, value = qkv(2, q_len, kv_len)
    attention = sale.build(**SMALL)
    out, _ = attention(module, query, key, value, None, scaling=module.scaling)
    assert torch.equal(
        out, dense.build()(module, query, key, value, None, scaling=module.scaling)[0]
    )
    assert attention.last_stats["mode"] == "dense"


def test_costs():
    assert sale.flops(2, 16, 4, 16, **SMALL) == sale.flops(
        2, 16, 4, 16, **SMALL, density=0.1
    )  # dense below 17
    assert sale.flops(1, 100, 4, 16, **SMALL).attention == 4 * 16 * 4 * 5050
    # rows 0-7 lie in the first block row: sink and window cover every causal key, nothing is
    # estimated
    assert sale.estimated_pairs(8, 8, 4, 8) == 0
    assert sale.cache(100, 2, 16) == dense.cache(100, 2, 16)


def test_impossible_settings_are_refused():
    with pytest.raises(ConfigError, match="sale needs"):
        sale.build(threshold=-1.0)
