"""The block-sparse kernel against masked dense SDPA, outputs and gradients, through Triton's
interpreter.

Tolerance (float32 in, float32 products): |kernel - reference| <= 2e-5 + 1e-4 |reference|, for
outputs and for the gradients of q, k, v and the key scores. Lengths are chosen not to be multiples
of the tiles (16) or of MoBA's blocks, batch 1 and 2, two heads, head width 16 and 24 (not a power
of two).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from attnbench.kernels.block_sparse import (
    TokenRules,
    block_sparse_attention,
    check_tiles,
)  # noqa: E402
from attnbench.kernels.layout import BlockLayout, window_tiles  # noqa: E402
from attnbench.kernels.sparse_patterns import (  # noqa: E402
    dma_attention,
    moba_attention,
    moba_selection,
    window_attention,
)
from attnbench.mechanisms.dma import keep_mask  # noqa: E402
from attnbench.mechanisms.moba import select_blocks, token_mask  # noqa: E402
from attnbench.mechanisms.sliding_window import window_mask_mod  # noqa: E402

ATOL, RTOL = 2e-5, 1e-4
TILE = 16


def qkv(batch: int, length: int, head_dim: int = 16, heads: int = 2) -> list[torch.Tensor]:
    return [torch.randn(batch, heads, length, head_dim, requires_grad=True) for _ in range(3)]


def assert_same(kernel_fn, reference_fn, inputs: list[torch.Tensor]) -> None:
    """Equal outputs, and equal gradients for every input, for one random output gradient."""
    out, expected = kernel_fn(), reference_fn()
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=RTOL)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, inputs, grad)
    want = torch.autograd.grad(expected, inputs, grad)
    for name, a, b in zip("qkvb", got, want):
        torch.testing.assert_close(
            a, b, atol=ATOL, rtol=RTOL, msg=lambda m, name=name: f"gradient of {name}: {m}"
        )


@pytest.mark.parametrize("batch,length,head_dim", [(1, 37, 16), (2, 50, 24)])
def test_causal_layout_equals_causal_sdpa(batch, length, head_dim):
    q, k, v = qkv(batch, length, head_dim)
    layout = BlockLayout.from_mask(window_tiles(length, 0, True, TILE, TILE), length, TILE, TILE)
    assert_same(
        lambda: block_sparse_attention(q, k, v, layout),
        lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        [q, k, v],
    )


@pytest.mark.parametrize("window,causal", [(5, True), (20, True), (7, False)])
def test_sliding_window_matches_its_mask(window, causal):
    length = 45
    q, k, v = qkv(1, length)
    positions = torch.arange(length)
    mask = window_mask_mod(window, causal)(None, None, positions[:, None], positions[None, :])
    assert_same(
        lambda: window_attention(q, k, v, window, causal, TILE, TILE),
        lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        [q, k, v],
    )


@pytest.mark.parametrize(
    "batch,length,block,top_k", [(1, 53, 8, 3), (2, 41, 12, 2), (1, 40, 16, 2)]
)
def test_moba_matches_reference_routing(batch, length, block, top_k):
    """Blocks smaller than, not dividing, and equal to the tile: the per-query rule does the
    cutting."""
    q, k, v = qkv(batch, length)
    mask = token_mask(select_blocks(q, k, block, top_k), block)
    assert_same(
        lambda: moba_attention(q, k, v, block, top_k, TILE, TILE),
        lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        [q, k, v],
    )


def test_moba_selection_lists_each_querys_chosen_blocks():
    q, k, _ = qkv(1, 40)
    chosen = select_blocks(q, k, 8, 3)
    ids = moba_selection(q, k, 8, 3)
    n = chosen.shape[-1]
    rebuilt = torch.zeros(*chosen.shape[:-1], n + 1, dtype=torch.bool)
    rebuilt.scatter_(-1, torch.where(ids >= 0, ids, n), True)  # column n collects the "none"s
    assert torch.equal(rebuilt[..., :n], chosen)
    assert (ids >= 0).sum(-1).min() >= 1  # the own block, always


@pytest.mark.parametrize("batch,causal", [(1, True), (2, False)])
def test_dma_matches_reference_keep_and_bias(batch, causal):
    length, window = 43, 9
    q, k, v = qkv(batch, length)
    scores = torch.randn(batch, 2, length, requires_grad=True)

    def reference():
        keep = keep_mask(scores, window, causal)
        bias = scores[:, :, None, :].masked_fill(~keep, float("-inf"))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)

    assert_same(
        lambda: dma_attention(q, k, v, scores, window, causal, TILE, TILE),
        reference,
        [q, k, v, scores],
    )


def test_a_query_with_no_allowed_key_reads_zeros_and_passes_no_gradient():
    """A layout may leave a query tile empty; its outputs are 0, not NaN, and nothing flows back."""
    length = 32
    q, k, v = qkv(1, length)
    tiles = window_tiles(length, 0, True, TILE, TILE).clone()
    tiles[..., 1, :] = False  # the second query tile reads nothing
    out = block_sparse_attention(q, k, v, BlockLayout.from_mask(tiles, length, TILE, TILE))
    assert torch.equal(out[:, :, TILE:], torch.zeros_like(out[:, :, TILE:]))
    out.sum().backward()
    assert torch.isfinite(q.grad).all() and torch.equal(
        q.grad[:, :, TILE:], torch.zeros_like(q.grad[:, :, TILE:])
    )


def test_inputs_that_do_not_fit_the_layout_are_refused():
    q, k, v = qkv(1, 32)
    layout = BlockLayout.from_mask(window_tiles(48, 0, True, TILE, TILE), 48, TILE, TILE)
    with pytest.raises(ValueError, match="length 48"):
        block_sparse_attention(q, k, v, layout)
    ok = BlockLayout.from_mask(window_tiles(32, 0, True, TILE, TILE), 32, TILE, TILE)
    with pytest.raises(ValueError, match="come together"):
        block_sparse_attention(q, k, v, ok, TokenRules(), key_bias=torch.zeros(1, 2, 32))


def test_half_precision_runs_the_16_bit_path():
    """float16 in (the GPU path's casts: probabilities and dS to the inputs' dtype, float32
    accumulators), against float32 SDPA on the same values. bfloat16 takes the same code, but Triton
    3.9's interpreter multiplies bfloat16 dot operands as raw integers, so only float16 can be
    checked on a CPU."""
    length = 37
    q, k, v = (t.detach().half().requires_grad_() for t in qkv(1, length, 32))
    layout = BlockLayout.from_mask(window_tiles(length, 0, True, TILE, TILE), length, TILE, TILE)
    out = block_sparse_attention(q, k, v, layout)
    assert out.dtype == torch.float16
    ref = [t.detach().float().requires_grad_() for t in (q, k, v)]
    expected = F.scaled_dot_product_attention(*ref, is_causal=True)
    torch.testing.assert_close(out.float(), expected, atol=2e-3, rtol=1e-2)
    grad = torch.randn_like(expected)
    got = torch.autograd.grad(out, (q, k, v), grad.half())
    want = torch.autograd.grad(expected, ref, grad)
    for a, b in zip(got, want):
        assert a.dtype == torch.float16
        torch.testing.assert_close(a.float(), b, atol=1e-2, rtol=1e-2)


def test_tiles_a_gpu_cannot_compile_and_mixed_dtypes_are_refused():
    """The interpreter runs 8-wide tiles (the CPU benchmark uses them); a GPU's tl.dot needs a
    reduction dimension of 16 or more, and no target takes tiles that are not powers of two."""
    check_tiles(8, 16, gpu=False)
    check_tiles(16, 64, gpu=True)
    with pytest.raises(ValueError, match="power of two >= 16 on a GPU"):
        check_tiles(8, 16, gpu=True)
    q, k, v = qkv(1, 48)
    odd = BlockLayout.from_mask(window_tiles(48, 0, True, 16, 24), 48, 16, 24)
    with pytest.raises(ValueError, match="power of two"):
        block_sparse_attention(q, k, v, odd)
    ok = BlockLayout.from_mask(window_tiles(48, 0, True, TILE, TILE), 48, TILE, TILE)
    with pytest.raises(ValueError, match="one dtype"):
        block_sparse_attention(q, k, v.detach().double(), ok)
