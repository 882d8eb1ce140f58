"""Effective work of a block-sparse pattern: the (query, key) pairs its rules allow, tile by tile.

The kernel's TFLOP/s and the density that its speedup is judged against both count allowed pairs,
not visited tiles (attention-gym's sparsity-aware accounting): a tile that is half masked does half
the useful work. The count re-evaluates the kernel's rules in PyTorch on every visited tile, so the
same numbers also tell full tiles (every pair allowed; FlexAttention's "full blocks", no mask_mod)
from partial ones.
"""

from __future__ import annotations

import torch

from attnbench.kernels.block_sparse import TokenRules
from attnbench.kernels.layout import BlockLayout


def visited_tiles(layout: BlockLayout) -> torch.Tensor:
    """(N, 4) rows (batch, head, query tile, key tile) of the stored layout, batch and head 0
    where shared."""
    width = layout.kv_indices.shape[-1]
    listed = torch.arange(width, device=layout.kv_counts.device) < layout.kv_counts[..., None]
    b, h, tile_m, slot = listed.nonzero(as_tuple=True)
    return torch.stack([b, h, tile_m, layout.kv_indices[b, h, tile_m, slot].long()], dim=1)


def allowed_pairs_per_tile(
    layout: BlockLayout, rules: TokenRules, key_bias: torch.Tensor | None = None, chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """The visited tiles (see `visited_tiles`) and how many pairs of each the rules allow."""
    tiles = visited_tiles(layout)
    counts = torch.empty(len(tiles), dtype=torch.long, device=tiles.device)
    rows = torch.arange(layout.block_m, device=tiles.device)
    cols = torch.arange(layout.block_n, device=tiles.device)
    for start in range(0, len(tiles), chunk):
        b, h, tile_m, tile_n = tiles[start : start + chunk].unbind(1)
        i = tile_m[:, None] * layout.block_m + rows  # (n, block_m) query positions
        j = tile_n[:, None] * layout.block_n + cols  # (n, block_n) key positions
        allowed = (i < layout.seq_len)[:, :, None] & (j < layout.seq_len)[:, None, :]
        distance = i[:, :, None] - j[:, None, :]
        if rules.causal:
            allowed &= distance >= 0
        if rules.window > 0:
            allowed &= (distance < rules.window) & (rules.causal | (distance > -rules.window))
        i, j = i.clamp(max=layout.seq_len - 1), j.clamp(max=layout.seq_len - 1)
        if rules.selected is not None:
            chosen = rules.selected[b[:, None], h[:, None], i]  # (n, block_m, k)
            allowed &= (chosen[:, :, None, :] == (j // rules.select_block)[:, None, :, None]).any(
                -1
            )
        if rules.thresholds is not None:
            allowed &= (
                key_bias[b[:, None], h[:, None], j][:, None, :]
                >= rules.thresholds[b[:, None], h[:, None], i][:, :, None]
            )
        counts[start : start + chunk] = allowed.sum((1, 2))
    return tiles, counts


def causal_pairs(seq_len: int) -> int:
    return seq_len * (seq_len + 1) // 2
