"""Block layouts: the tile lists agree with their mask both ways, and each pattern's tiles cover
its pairs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnbench.kernels.layout import (
    BlockLayout,
    cdiv,
    selected_tiles,
    threshold_tiles,
    window_tiles,
)
from attnbench.mechanisms.dma import keep_mask
from attnbench.mechanisms.moba import select_blocks, token_mask
from attnbench.mechanisms.sliding_window import window_mask_mod


def tiles_of(pairs: torch.Tensor, block_m: int, block_n: int) -> torch.Tensor:
    """(..., L, L) allowed pairs -> (..., n_q, n_k): tiles holding at least one."""
    length = pairs.shape[-1]
    n_q, n_k = cdiv(length, block_m), cdiv(length, block_n)
    padded = torch.nn.functional.pad(pairs, (0, n_k * block_n - length, 0, n_q * block_m - length))
    return padded.view(*pairs.shape[:-2], n_q, block_m, n_k, block_n).any(-1).any(-2)


def test_lists_are_the_mask_read_by_rows_and_by_columns():
    mask = torch.rand(2, 3, 5, 4) < 0.5
    layout = BlockLayout.from_mask(mask, 70, 16, 18)
    for rows, (indices, counts) in (
        (mask, (layout.kv_indices, layout.kv_counts)),
        (mask.transpose(-1, -2), (layout.q_indices, layout.q_counts)),
    ):
        assert torch.equal(counts, rows.sum(-1, dtype=torch.int32))
        for b, h, r in torch.cartesian_prod(
            torch.arange(2), torch.arange(3), torch.arange(rows.shape[-2])
        ):
            listed = indices[b, h, r, : counts[b, h, r]].tolist()
            assert (
                listed == rows[b, h, r].nonzero().flatten().tolist()
            )  # ascending, exactly the True columns
    assert layout.tiles_visited == int(mask.sum())


def test_a_mask_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        BlockLayout.from_mask(torch.ones(1, 1, 2, 2, dtype=torch.bool), 70, 16, 16)


@settings(max_examples=40, deadline=None)
@given(
    length=st.integers(1, 90),
    window=st.integers(0, 40),
    causal=st.booleans(),
    block_m=st.sampled_from([8, 16]),
    block_n=st.sampled_from([8, 16, 32]),
)
def test_window_tiles_are_exactly_the_tiles_of_the_band(length, window, causal, block_m, block_n):
    positions = torch.arange(length)
    if window:
        pairs = window_mask_mod(window, causal)(None, None, positions[:, None], positions[None, :])
    else:
        pairs = (
            positions[:, None] >= positions[None, :]
            if causal
            else torch.ones(length, length, dtype=torch.bool)
        )
    assert torch.equal(
        window_tiles(length, window, causal, block_m, block_n)[0, 0],
        tiles_of(pairs, block_m, block_n),
    )


@pytest.mark.parametrize(
    "length,block,top_k,block_n", [(53, 8, 3, 16), (41, 12, 2, 16), (64, 16, 2, 32)]
)
def test_selected_tiles_are_the_tiles_of_the_chosen_blocks(length, block, top_k, block_n):
    q, k = torch.randn(2, 2, length, 8), torch.randn(2, 2, length, 8)
    chosen = select_blocks(q, k, block, top_k)
    ids = (
        torch.where(chosen, torch.arange(chosen.shape[-1]), -1)
        .topk(min(top_k, chosen.shape[-1]), -1)
        .values
    )
    whole_blocks = chosen.repeat_interleave(block, dim=-1)[..., :length]  # without the causal cut
    assert torch.equal(
        selected_tiles(ids, block, length, 16, block_n), tiles_of(whole_blocks, 16, block_n)
    )
    tiles = selected_tiles(ids, block, length, 16, block_n)
    assert not (tiles_of(token_mask(chosen, block), 16, block_n) & ~tiles).any()


@pytest.mark.parametrize("causal", [True, False])
def test_threshold_tiles_cover_every_kept_pair(causal):
    pytest.importorskip("triton")
    from attnbench.kernels.sparse_patterns import dma_thresholds

    scores = torch.randn(2, 2, 70)
    keep = keep_mask(scores, 9, causal).expand(2, 2, 70, 70)
    thresholds = dma_thresholds(scores, 9, causal, chunk=16)
    tiles = threshold_tiles(scores, thresholds, causal, 16, 16)
    assert not (tiles_of(keep, 16, 16) & ~tiles).any()
    kept_by_threshold = scores[:, :, None, :] >= thresholds[..., None]
    if causal:
        kept_by_threshold &= torch.ones(70, 70, dtype=torch.bool).tril()
    assert torch.equal(
        kept_by_threshold, keep
    )  # no ties in random scores: the threshold is the top-w
