"""Native Sparse Attention: each branch against an explicit masked softmax, the gated sum, full
selection is causal attention, summaries only after their block ends, and costs as declared."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.mechanisms import mha, nsa

TOL = dict(rtol=1e-5, atol=1e-5)


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(..., d) query against (..., n, d) keys and values."""
    scores = torch.einsum("...d,...nd->...n", q, k) / q.shape[-1] ** 0.5
    return torch.einsum("...n,...nd->...d", torch.softmax(scores, -1), v)


def overlap(i: int, j: int, l: int, d: int, l_sel: int) -> int:
    return max(0, min(i * d + l, (j + 1) * l_sel) - max(i * d, j * l_sel))


def explicit_summary(
    module: nsa.NativeSparseAttention, x: torch.Tensor, i: int, values: bool
) -> torch.Tensor:
    """phi of block i of (B, H, L, d_h) keys or values: sum_r W_r x_{i d + r} + b, weights of its
    conv group."""
    head_dim, l, d = x.shape[-1], module.compress_block, module.compress_stride
    group = slice(head_dim, 2 * head_dim) if values else slice(0, head_dim)
    weight, bias = module.compress.weight[group], module.compress.bias[group]
    return torch.einsum("oir,bhri->bho", weight, x[:, :, i * d : i * d + l]) + bias


@torch.no_grad()
def explicit_nsa(module: nsa.NativeSparseAttention, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The paper token by token: the three branch outputs (B, H, L, d_h) and the gated, merged
    output."""
    q, k, v = module.proj.split(x)
    batch, heads, length, _ = q.shape
    l, d, l_sel, n = (
        module.compress_block,
        module.compress_stride,
        module.select_block,
        module.num_selected,
    )
    o_cmp, o_slc, o_win = torch.zeros_like(q), torch.zeros_like(q), torch.zeros_like(q)
    for t in range(length):
        complete = [i for i in range(length) if i * d + l - 1 <= t]
        p = torch.zeros(batch, heads, 0)
        if complete:
            k_cmp = torch.stack([explicit_summary(module, k, i, False) for i in complete], 2)
            v_cmp = torch.stack([explicit_summary(module, v, i, True) for i in complete], 2)
            p = torch.softmax(
                torch.einsum("bhd,bhnd->bhn", q[:, :, t], k_cmp) / q.shape[-1] ** 0.5, -1
            )
            o_cmp[:, :, t] = torch.einsum("bhn,bhnd->bhd", p, v_cmp)
        own = t // l_sel
        for b in range(batch):
            for h in range(heads):
                importance = {
                    j: sum(
                        float(p[b, h, c]) * overlap(i, j, l, d, l_sel)
                        for c, i in enumerate(complete)
                    )
                    for j in range(own)
                }
                picked = sorted(importance, key=importance.get, reverse=True)[: n - 1] + [own]
                keys = [s for j in picked for s in range(j * l_sel, min((j + 1) * l_sel, t + 1))]
                o_slc[b, h, t] = softmax_attention(q[b, h, t], k[b, h, keys], v[b, h, keys])
        start = max(0, t - module.window + 1)
        o_win[:, :, t] = softmax_attention(
            q[:, :, t], k[:, :, start : t + 1], v[:, :, start : t + 1]
        )
    gates = torch.sigmoid(x @ module.gate.weight.T + module.gate.bias).view(batch, length, 3, heads)
    gates = gates.permute(2, 0, 3, 1).unsqueeze(-1)
    out = gates[0] * o_cmp + gates[1] * o_slc + gates[2] * o_win
    return o_cmp, o_slc, o_win, module.proj.merge(out)


# (l, d, l', n, w, L): l <= l' and d <= l, so every past selection block has a positive importance
# and the ranking has no ties; lengths that are no multiple of any block size.
CONFIGS = [
    (4, 2, 4, 2, 3, 17),
    (4, 4, 8, 2, 5, 19),
    (2, 1, 2, 3, 4, 11),
    (5, 3, 7, 3, 6, 23),
    (3, 2, 6, 1, 2, 13),
]


@pytest.mark.parametrize("l,d,l_sel,n,w,length", CONFIGS)
def test_each_branch_and_the_gated_sum_equal_the_paper_token_by_token(l, d, l_sel, n, w, length):
    torch.manual_seed(l * 10 + d)
    module = nsa.build(
        16,
        num_heads=2,
        compress_block=l,
        compress_stride=d,
        select_block=l_sel,
        num_selected=n,
        window=w,
    )
    x = torch.randn(2, length, 16)
    q, k, v = module.proj.split(x)
    (o_cmp, o_slc, o_win), _ = module.branches(q, k, v)
    e_cmp, e_slc, e_win, expected = explicit_nsa(module, x)
    torch.testing.assert_close(o_cmp, e_cmp, **TOL)
    torch.testing.assert_close(o_slc, e_slc, **TOL)
    torch.testing.assert_close(o_win, e_win, **TOL)
    torch.testing.assert_close(module(x), expected, **TOL)


def test_the_gates_weigh_the_branches_per_head():
    """With W_g = 0 and a per-branch bias, every head mixes the branches with sigmoid(bias)."""
    torch.manual_seed(0)
    module = nsa.build(
        16,
        num_heads=2,
        compress_block=2,
        compress_stride=2,
        select_block=4,
        num_selected=1,
        window=3,
    )
    bias = torch.tensor([-1.0, -1.0, 0.0, 0.0, 2.0, 2.0])  # (cmp, slc, win) x 2 heads
    with torch.no_grad():
        module.gate.weight.zero_()
        module.gate.bias.copy_(bias)
    x = torch.randn(2, 9, 16)
    (o_cmp, o_slc, o_win), _ = module.branches(*module.proj.split(x))
    g = torch.sigmoid(bias[::2])
    torch.testing.assert_close(
        module(x), module.proj.merge(g[0] * o_cmp + g[1] * o_slc + g[2] * o_win), **TOL
    )


@pytest.mark.parametrize("length", [8, 13])
def test_selecting_every_block_and_a_full_window_are_causal_attention(length):
    torch.manual_seed(length)
    module = nsa.build(
        16,
        num_heads=2,
        compress_block=3,
        compress_stride=2,
        select_block=4,
        num_selected=4,
        window=length,
    )
    dense = mha.build(16, num_heads=2)
    dense.proj.load_state_dict(module.proj.state_dict())
    x = torch.randn(2, length, 16)
    q, k, v = module.proj.split(x)
    (_, o_slc, o_win), chosen = module.branches(q, k, v)
    causal = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.equal(
        chosen,
        (torch.arange(length)[:, None] // 4 >= torch.arange(chosen.shape[-1])).expand_as(chosen),
    )
    torch.testing.assert_close(o_slc, causal, **TOL)
    torch.testing.assert_close(o_win, causal, **TOL)
    torch.testing.assert_close(dense.proj.merge(o_slc), dense(x), **TOL)


def test_selection_takes_the_top_n_blocks_by_importance_and_always_the_own_block():
    torch.manual_seed(3)
    l, d, l_sel, n, length = 4, 2, 4, 3, 26
    p_cmp = torch.softmax(torch.randn(2, 2, length, nsa.num_summaries(length, l, d)), -1)
    chosen = nsa.select_blocks(p_cmp, l, d, l_sel, n)
    importance = p_cmp @ nsa.block_overlap(length, l, d, l_sel).float()
    own = torch.arange(length) // l_sel
    assert torch.equal(chosen.sum(-1), (own + 1).clamp(max=n).expand(2, 2, -1))
    assert chosen[..., torch.arange(length), own].all()
    for t in range(l_sel, length):
        past = torch.arange(own[t])
        picked, rest = chosen[:, :, t, past], ~chosen[:, :, t, past]
        scores = importance[:, :, t, past]
        lowest_picked = scores.masked_fill(~picked, float("inf")).amin(-1)
        highest_rest = scores.masked_fill(~rest, float("-inf")).amax(-1)
        assert (lowest_picked >= highest_rest).all()
    assert not (chosen & (torch.arange(chosen.shape[-1]) > own[:, None])).any()


def test_block_overlap_is_eq_9_weights_for_the_papers_blocks():
    """l = 32, d = 16, l' = 64: selection block j gets 1, 2, 2, 2, 1 (x d tokens) of the
    summaries 4j-1 .. 4j+3."""
    overlap = nsa.block_overlap(256, 32, 16, 64)
    assert overlap.shape == (15, 4)
    assert overlap[3:8, 1].tolist() == [16, 32, 32, 32, 16] and overlap[:, 1].sum() == 128
    assert torch.equal(
        nsa.block_overlap(12, 4, 4, 4), 4 * torch.eye(3, dtype=torch.long)
    )  # l = d = l'


def test_a_summary_is_read_only_once_its_block_is_complete():
    """Blocks of 4 every 2: changing the key and value of token s moves the compressed output first
    at the end of the earliest complete block holding s, never before, and never if no complete
    block holds s.
    """
    torch.manual_seed(0)
    l, d, length = 4, 2, 15
    module = nsa.build(
        16,
        num_heads=2,
        compress_block=l,
        compress_stride=d,
        select_block=4,
        num_selected=2,
        window=3,
    ).double()
    x = torch.randn(1, length, 16, dtype=torch.float64)
    q, k, v = module.proj.split(x)
    base = module.branches(q, k, v)[0][0]
    assert torch.equal(base[:, :, : l - 1], torch.zeros_like(base[:, :, : l - 1]))
    for s in range(length):
        k2, v2 = k.clone(), v.clone()
        k2[:, :, s] += 1.0
        v2[:, :, s] += 1.0
        moved = (module.branches(q, k2, v2)[0][0] - base).abs().amax((0, 1, 3))
        ends = [
            i * d + l - 1 for i in range(nsa.num_summaries(length, l, d)) if i * d <= s < i * d + l
        ]
        first = min(ends, default=length)
        assert (moved[:first] == 0).all() and (moved[first:] > 0).all()


@pytest.mark.parametrize("length", [1, 2, 3, 5, 9])
def test_odd_lengths_and_batch_one(length):
    torch.manual_seed(length)
    module = nsa.build(
        24,
        num_heads=3,
        compress_block=4,
        compress_stride=2,
        select_block=4,
        num_selected=2,
        window=3,
    )
    x = torch.randn(1, length, 24)
    out = module(x)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out, explicit_nsa(module, x)[-1], **TOL)


@pytest.mark.parametrize(
    "l,d,l_sel,n,w,length", CONFIGS + [(4, 2, 8, 2, 8, 1), (4, 2, 8, 2, 8, 33)]
)
def test_keys_read_count_the_masks(l, d, l_sel, n, w, length):
    torch.manual_seed(0)
    module = nsa.build(
        8,
        num_heads=1,
        compress_block=l,
        compress_stride=d,
        select_block=l_sel,
        num_selected=n,
        window=w,
    )
    q, k, v = module.proj.split(torch.randn(1, length, 8))
    _, chosen = module.branches(q, k, v)
    t = torch.arange(length)
    tokens = chosen.repeat_interleave(l_sel, -1)[..., :length] & (t[:, None] >= t)
    summaries, mapped, selected, windowed = nsa.keys_read(length, l, d, l_sel, n, w)
    visible = (torch.arange(nsa.num_summaries(length, l, d)) * d + l - 1)[None, :] <= t[:, None]
    assert summaries == int(visible.sum())
    assert mapped == int(
        (visible.long() @ (nsa.block_overlap(length, l, d, l_sel) > 0).long()).sum()
    )
    assert selected == int(tokens.sum())
    assert windowed == int(module.window_mask_mod(None, None, t[:, None], t).sum())


@pytest.mark.parametrize("length", [1, 5, 17, 33])
def test_effective_flops_are_at_most_the_measured_dense_flops(length):
    batch, dim, heads, l, d, l_sel, n, w = 2, 16, 2, 4, 2, 8, 2, 8
    hparams = dict(
        num_heads=heads,
        compress_block=l,
        compress_stride=d,
        select_block=l_sel,
        num_selected=n,
        window=w,
    )
    module = nsa.build(dim, **hparams)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(torch.randn(batch, length, dim))
    declared = nsa.flops(batch, length, dim, **hparams)
    # The reference: phi on every summary, all m summaries scored and mixed, the importance mapping
    # over all (summary, block) pairs, the gates, and two dense masked SDPAs over L x L.
    m, head_dim = nsa.num_summaries(length, l, d), dim // heads
    blocks = -(-length // l_sel)
    dense = (
        declared.projections
        + 4 * batch * m * l * head_dim * dim
        + 4 * batch * length * m * dim
        + 2 * batch * heads * length * m * blocks
        + 6 * batch * length * heads * dim
        + 8 * batch * length * length * dim
    )
    assert counter.get_total_flops() == dense
    assert declared.total <= dense
    summaries, mapped, selected, windowed = nsa.keys_read(length, l, d, l_sel, n, w)
    assert declared.attention == 4 * batch * dim * (summaries + selected + windowed)
    assert declared.selection == batch * (
        4 * m * l * head_dim * dim + 6 * length * heads * dim + 2 * heads * mapped
    )


def test_long_sequences_read_far_less_than_dense():
    dense = mha.flops(1, 8192, 256, num_heads=8)
    sparse = nsa.flops(1, 8192, 256, **nsa.SPEC.defaults)
    assert sparse.attention < dense.attention / 2 and sparse.projections == dense.projections


def test_cache_keeps_everything_plus_summaries_and_reads_summaries_blocks_and_window():
    # 33 tokens, blocks of 4 every 2: 15 summaries; the next token reads them, 2 x 8 selected and 8
    # window keys.
    cost = nsa.cache(
        33,
        64,
        bytes_per_element=2,
        compress_block=4,
        compress_stride=2,
        select_block=8,
        num_selected=2,
        window=8,
    )
    assert cost.kv_stored == 2 * (33 + 15) * 64 * 2 and cost.state == 0
    assert cost.kv_read_per_token == 2 * (15 + 16 + 8) * 64 * 2
    assert (
        nsa.cache(
            5, 64, compress_block=4, compress_stride=2, select_block=8, num_selected=2, window=8
        ).kv_read_per_token
        == 2 * (1 + 5 + 5) * 64 * 2
    )  # short: everything is read
    long = nsa.cache(65536, 64, **nsa.SPEC.defaults)
    assert (
        long.kv_stored > mha.cache(65536, 64).kv_stored
        and long.kv_read_per_token < mha.cache(65536, 64).kv_stored / 8
    )


@pytest.mark.parametrize(
    "bad,name",
    [
        ({"compress_block": 0}, "compress_block"),
        ({"compress_stride": 0}, "compress_stride"),
        ({"compress_stride": 5, "compress_block": 4}, "compress_stride"),
        ({"select_block": 0}, "select_block"),
        ({"num_selected": 0}, "num_selected"),
        ({"window": 0}, "window"),
        ({"num_heads": 5}, "num_heads"),
        ({"causal": False}, "causal only"),
    ],
)
def test_impossible_hyperparameters_are_config_errors(bad, name):
    with pytest.raises(ConfigError, match=name):
        nsa.build(16, **bad)
