"""Each sparse mechanism's pattern as a block layout plus token rules for `block_sparse_attention`.

Must match: `attnbench.mechanisms.moba` (select_blocks, then masked SDPA),
`attnbench.mechanisms.sliding_window` (window_mask_mod) and `attnbench.mechanisms.dma` (keep_mask
and the score bias). The selection itself (MoBA's routing, DMA's scores) is the reference's own
code, so the kernel path differs from the reference only in how the attention over the chosen keys
is computed.

DMA's top-w over each query's prefix becomes a threshold: query t keeps key j <= t when j's score
reaches the w-th largest score of the prefix. That is the same set as the reference's top-k unless
scores tie at the threshold, where top-k breaks the tie arbitrarily and the threshold keeps all tied
keys. The thresholds are computed in chunks of queries, O(L^2) time but O(chunk x L) memory.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from attnbench.kernels.block_sparse import TokenRules, block_sparse_attention
from attnbench.kernels.layout import BlockLayout, selected_tiles, threshold_tiles, window_tiles

# queries and keys per tile on a GPU; FlashMoBA's point is that 16-64 keeps sparse work efficient
TILE = 64


def key_tile_for(block_size: int, largest: int = TILE) -> int:
    """The widest power-of-two key tile (16 to `largest`) that divides MoBA's blocks, so tiles never
    straddle two blocks; blocks that no such tile divides still work, with rules applied per pair.
    """
    tile = largest
    while tile > 16 and block_size % tile:
        tile //= 2
    return tile


@lru_cache(maxsize=32)
def _window_layout(
    seq_len: int, window: int, causal: bool, block_m: int, block_n: int, device: torch.device
) -> BlockLayout:
    return BlockLayout.from_mask(
        window_tiles(seq_len, window, causal, block_m, block_n, device), seq_len, block_m, block_n
    )


def window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    causal: bool = True,
    block_m: int = TILE,
    block_n: int = TILE,
) -> torch.Tensor:
    """Sliding-window attention on (B, H, L, d): the last `window` keys, or those within it both
    ways."""
    layout = _window_layout(q.shape[2], window, causal, block_m, block_n, q.device)
    return block_sparse_attention(q, k, v, layout, TokenRules(causal=causal, window=window))


def moba_selection(q: torch.Tensor, k: torch.Tensor, block_size: int, top_k: int) -> torch.Tensor:
    """(B, H, L, k) ids of the blocks each query reads (the reference's routing), -1 where it has
    fewer."""
    from attnbench.kernels.reference import select_blocks

    chosen = select_blocks(q, k, block_size, top_k)
    ids = torch.arange(chosen.shape[-1], device=q.device)
    return torch.where(chosen, ids, -1).topk(min(top_k, chosen.shape[-1]), dim=-1).values


def moba_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_size: int,
    top_k: int,
    block_m: int = TILE,
    block_n: int | None = None,
) -> torch.Tensor:
    """MoBA on (B, H, L, d): each query reads its own block causally and its top-k - 1 past
    blocks."""
    seq_len = q.shape[2]
    block_n = block_n or key_tile_for(block_size)
    selected = moba_selection(q, k, block_size, top_k)
    tiles = selected_tiles(selected, block_size, seq_len, block_m, block_n)
    tiles &= window_tiles(seq_len, 0, True, block_m, block_n, q.device)
    layout = BlockLayout.from_mask(tiles, seq_len, block_m, block_n)
    return block_sparse_attention(
        q, k, v, layout, TokenRules(causal=True, selected=selected, select_block=block_size)
    )


def dma_thresholds(
    scores: torch.Tensor, window: int, causal: bool, chunk: int = 256
) -> torch.Tensor:
    """(B, H, L) key scores -> (B, H, L): the w-th largest score each query may see (-inf: it
    keeps all)."""
    length = scores.shape[-1]
    w = min(window, length)
    if not causal:
        return scores.topk(w, dim=-1).values[..., -1:].expand_as(scores).contiguous()
    keys = torch.arange(length, device=scores.device)
    out = torch.empty_like(scores)
    for start in range(0, length, chunk):
        rows = keys[start : start + chunk]
        visible = scores[..., None, :].masked_fill(keys[None, :] > rows[:, None], float("-inf"))
        out[..., start : start + len(rows)] = visible.topk(w, dim=-1).values[..., -1]
    return out


def dma_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scores: torch.Tensor,
    window: int,
    causal: bool = True,
    block_m: int = TILE,
    block_n: int = TILE,
) -> torch.Tensor:
    """DMA on (B, H, L, d) with (B, H, L) key scores: softmax(q k^T / sqrt(d) + score) over each
    query's top-w keys; the scores get their gradient through the bias, the selection uses them
    detached."""
    thresholds = dma_thresholds(scores.detach(), window, causal)
    tiles = threshold_tiles(scores.detach(), thresholds, causal, block_m, block_n)
    layout = BlockLayout.from_mask(tiles, q.shape[2], block_m, block_n)
    return block_sparse_attention(
        q, k, v, layout, TokenRules(causal=causal, thresholds=thresholds), key_bias=scores
    )
