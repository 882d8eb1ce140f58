"""FlexPrefill: dense at full budget (attention function and model), the chosen blocks are exactly
what is computed, a planted vertical line is found, no future value is read, dense decoding and
short prompts, costs.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from attnbench.errors import ConfigError
from attnbench.mechanisms import dense, flexprefill
from attnbench.registry import MECHANISMS
from attnbench.toolkit.pretrained import install
from tests.support.tiny import qkv, tiny_llama

TOL = dict(
    rtol=1e-5, atol=1e-5
)  # float32; the block-sparse softmax sums in another order than SDPA
SMALL = dict(
    block_size=8, min_budget=16
)  # sparse from 17 tokens on; at least two columns and diagonals


def padded(q_len: int, kv_len: int) -> torch.Tensor:
    """A boolean keep-mask with the second example left-padded by two tokens."""
    positions = torch.arange(kv_len)
    keep = (positions[None, :] <= positions[kv_len - q_len :, None])[None, None].repeat(2, 1, 1, 1)
    keep[1, ..., :2] = False
    return keep


@pytest.mark.parametrize("tau", [0.0, 10.0])  # every head vertical-slash, every head query-aware
@pytest.mark.parametrize("masked", [False, True])
def test_full_budget_is_dense(module, tau, masked):
    query, key, value = qkv(2, 50, 50, dtype=torch.float32)
    mask = padded(50, 50) if masked else None
    attention = flexprefill.build(gamma=1.0, tau=tau, **SMALL)
    out, _ = attention(module, query, key, value, mask, scaling=module.scaling)
    full, _ = dense.build()(module, query, key, value, mask, scaling=module.scaling)
    rows = (
        slice(2, None) if masked else slice(None)
    )  # padding queries see no key in the second example
    torch.testing.assert_close(out[:, rows], full[:, rows], **TOL)
    assert attention.last_stats["mode"] == "sparse"
    assert attention.last_stats["query_aware_heads"] == (8 if tau else 0)
    if not masked:
        assert attention.last_stats["density"] == 1.0


def test_full_budget_through_the_model_gives_dense_logits():
    model = tiny_llama()
    tokens = torch.randint(4, 45, (2, 60), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        own = model(tokens).logits
        install(
            model,
            MECHANISMS.get("flexprefill"),
            {**SMALL, "gamma": 1.0, "tau": 0.1, "max_budget": None},
        )
        torch.testing.assert_close(model(tokens).logits, own, **TOL)


def test_what_is_counted_is_what_is_computed(module):
    """At a reduced budget the output is dense attention restricted to the chosen blocks, and the
    pairs, their fraction and the FLOPs reported are those of that mask."""
    query, key, value = qkv(2, 70, 70, dtype=torch.float64)
    attention = flexprefill.build(gamma=0.6, tau=10.0, **SMALL)  # every head query-aware
    out, _ = attention(module, query, key, value, None, scaling=module.scaling)
    blocks, _, _ = flexprefill.select_blocks(query, key, module.scaling, 8, 0.6, 10.0, 2, 9)
    causal = torch.ones(70, 70, dtype=torch.bool).tril()
    keep = blocks.repeat_interleave(8, -1).repeat_interleave(8, -2)[..., :70, :70] & causal
    restricted, _ = dense.build()(module, query, key, value, keep, scaling=module.scaling)
    torch.testing.assert_close(out, restricted, rtol=1e-10, atol=1e-10)
    stats = attention.last_stats
    assert stats["pairs"] == int(keep.sum()) and stats["density"] < 1
    declared = flexprefill.flops(2, 70, 4, 16, density=stats["density"], **SMALL)
    assert abs(declared.attention - stats["attention_flops"]) <= 1
    assert (
        declared.selection == stats["selection_flops"]
    )  # the declared bound is exact when every head is query-aware


def test_a_planted_vertical_line_is_kept_and_little_else(module):
    """Every query leans towards one key (37): the vertical-slash heads keep its column and stay
    sparse."""
    query, key, value = qkv(1, 96, 96, dtype=torch.float64)
    shared = torch.randn(16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    query = 0.1 * query + shared
    key = 0.1 * key
    key[:, :, 37] = 3 * shared
    attention = flexprefill.build(gamma=0.9, tau=0.0, **SMALL)
    attention(module, query, key, value, None, scaling=module.scaling)
    blocks, aware, _ = flexprefill.select_blocks(query, key, module.scaling, 8, 0.9, 0.0, 2, 12)
    assert not aware.any() and blocks[..., 4:, 4].all()  # block column 4 holds key 37
    assert attention.last_stats["density"] < 0.5


def test_no_query_reads_a_later_value(module):
    query, key, value = qkv(1, 64, 64)
    attention = flexprefill.build(gamma=0.5, **SMALL)
    before, _ = attention(module, query, key, value, None, scaling=module.scaling)
    for t in (20, 41):
        moved = value.clone()
        moved[:, :, t + 1 :] = 100.0
        after, _ = attention(module, query, key, moved, None, scaling=module.scaling)
        assert torch.equal(after[:, : t + 1], before[:, : t + 1])


@pytest.mark.parametrize(
    "q_len,kv_len", [(1, 60), (5, 60), (16, 16)]
)  # decoding, a chunk, a short prompt
def test_decoding_chunks_and_short_prompts_are_dense(module, q_len, kv_len):
    query, key, value = qkv(2, q_len, kv_len)
    attention = flexprefill.build(**SMALL)
    out, _ = attention(module, query, key, value, None, scaling=module.scaling)
    assert torch.equal(
        out, dense.build()(module, query, key, value, None, scaling=module.scaling)[0]
    )
    assert attention.last_stats["mode"] == "dense" and attention.last_stats["density"] == 1.0


def test_costs():
    # short prompts are dense: 4 Dh per causal pair, 2 x 4 heads x 16 x 17 / 2 pairs
    assert flexprefill.flops(2, 16, 4, 16, **SMALL).attention == 4 * 16 * 2 * 4 * 136
    long = flexprefill.flops(1, 100, 4, 16, **SMALL)
    assert (
        long.attention == 4 * 16 * 4 * 5050
    )  # every causal pair unless a measured density is given
    assert (
        flexprefill.flops(1, 100, 4, 16, density=0.25, **SMALL).attention == 4 * 16 * 4 * 5050 // 4
    )
    assert long.selection == 2 * 16 * 4 * (8 * 100 + 13 + 13 * 13)
    assert flexprefill.cache(100, 2, 16) == dense.cache(100, 2, 16)


@pytest.mark.parametrize(
    "bad", [{"gamma": 0.0}, {"gamma": 1.5}, {"block_size": 0}, {"min_budget": 64, "max_budget": 8}]
)
def test_impossible_settings_are_refused(bad):
    with pytest.raises(ConfigError, match="flexprefill needs"):
        flexprefill.build(**bad)
