"""Block layouts for the block-sparse attention kernel: which key tiles each query tile visits, and
back.

The kernel walks, for each query tile of `block_m` queries, a list of key tiles of `block_n` keys
(the forward pass and dQ), and for each key tile the list of query tiles that visit it (dK, dV);
both lists come from one boolean tile mask (B, H, n_q, n_k), so they always agree. Lists are stored
as (indices, counts), padded to the longest list; a mask shared by every batch element or head
keeps a leading dimension of 1 and is broadcast by strides, never copied. The token-level rules
(causal, window, per-query selection, score threshold) are applied inside the tiles by the kernel:
a layout only has to be a superset of the tiles that hold an allowed pair.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def on_device(device: torch.device) -> AbstractContextManager:
    """Triton launches on the current CUDA device, not on its arguments' one: kernels on tensors of
    another GPU (`attnbench bench kernels --device cuda:1`) must make that device current, or they
    read foreign addresses.
    """
    return torch.cuda.device(device) if device.type == "cuda" else nullcontext()


def _lists(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., n, m) bool -> (..., n, width) int32 column indices, ascending, and (..., n) int32
    counts."""
    counts = mask.sum(-1, dtype=torch.int32)
    width = max(int(counts.max()), 1) if counts.numel() else 1
    # A stable descending sort of the flags puts the True columns first, in ascending order.
    order = torch.sort(mask.to(torch.int8), dim=-1, descending=True, stable=True).indices[
        ..., :width
    ]
    return order.to(torch.int32).contiguous(), counts.contiguous()


@dataclass(frozen=True)
class BlockLayout:
    seq_len: int
    block_m: int
    block_n: int
    kv_indices: torch.Tensor  # (B|1, H|1, n_q, width) key tiles of each query tile
    kv_counts: torch.Tensor  # (B|1, H|1, n_q)
    q_indices: torch.Tensor  # (B|1, H|1, n_k, width) query tiles that visit each key tile
    q_counts: torch.Tensor  # (B|1, H|1, n_k)

    @classmethod
    def from_mask(
        cls, tiles: torch.Tensor, seq_len: int, block_m: int, block_n: int
    ) -> BlockLayout:
        if tiles.dim() != 4 or tiles.shape[-2:] != (cdiv(seq_len, block_m), cdiv(seq_len, block_n)):
            raise ValueError(
                f"tile mask of shape {tuple(tiles.shape)} does not fit length {seq_len} "
                f"in tiles of {block_m} x {block_n}"
            )
        kv_indices, kv_counts = _lists(tiles)
        q_indices, q_counts = _lists(tiles.transpose(-1, -2))
        return cls(seq_len, block_m, block_n, kv_indices, kv_counts, q_indices, q_counts)

    @property
    def tiles_visited(self) -> int:
        """Tile pairs computed per (batch, head) pattern, summed over the stored patterns."""
        return int(self.kv_counts.sum())


def tile_ranges(
    seq_len: int, block: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last position of each tile (the last tile may be short)."""
    start = torch.arange(0, seq_len, block, device=device)
    return start, (start + block).clamp(max=seq_len) - 1


def window_tiles(
    seq_len: int,
    window: int,
    causal: bool,
    block_m: int,
    block_n: int,
    device: torch.device | None = None,
) -> torch.Tensor:
    """(1, 1, n_q, n_k): tiles holding a pair with 0 <= i - j < window (causal) or |i - j| < window.
    window <= 0 means no window (all causal pairs, or all pairs)."""
    q_first, q_last = tile_ranges(seq_len, block_m, device)
    k_first, k_last = tile_ranges(seq_len, block_n, device)
    largest = q_last[:, None] - k_first[None, :]  # the largest i - j over the tile pair
    smallest = q_first[:, None] - k_last[None, :]
    reach = window - 1 if window > 0 else seq_len
    keep = smallest <= reach
    keep &= largest >= 0 if causal else largest >= -reach
    return keep[None, None]


def selected_tiles(
    selected: torch.Tensor, select_block: int, seq_len: int, block_m: int, block_n: int
) -> torch.Tensor:
    """(B, H, L, k) block ids each query reads (-1 for none) -> (B, H, n_q, n_k) tiles holding
    any of them."""
    batch, heads, length, top_k = selected.shape
    n_q, n_k = cdiv(seq_len, block_m), cdiv(seq_len, block_n)
    padded = _pad_rows(selected, n_q * block_m - length).reshape(batch, heads, n_q, block_m * top_k)
    tiles = torch.zeros(batch, heads, n_q, n_k + 1, dtype=torch.bool, device=selected.device)
    first = (padded * select_block) // block_n
    last = ((padded + 1) * select_block - 1).clamp(max=seq_len - 1) // block_n
    for step in range(cdiv(select_block, block_n) + 1):  # a block spans at most this many key tiles
        tile = torch.minimum(first + step, last)
        tiles.scatter_(
            -1, torch.where(padded >= 0, tile, n_k), True
        )  # column n_k collects the "none"s
    return tiles[..., :n_k]


def _pad_rows(selected: torch.Tensor, rows: int) -> torch.Tensor:
    """Append `rows` queries that select nothing."""
    if rows == 0:
        return selected
    pad = selected.new_full((*selected.shape[:2], rows, selected.shape[-1]), -1)
    return torch.cat([selected, pad], dim=2)


def threshold_tiles(
    scores: torch.Tensor, thresholds: torch.Tensor, causal: bool, block_m: int, block_n: int
) -> torch.Tensor:
    """(B, H, L) key scores and per-query thresholds -> (B, H, n_q, n_k): tiles where some key's
    score reaches some query's threshold (and, causally, a key not after the query tile)."""
    seq_len = scores.shape[-1]
    n_q, n_k = cdiv(seq_len, block_m), cdiv(seq_len, block_n)
    best = torch.nn.functional.pad(scores, (0, n_k * block_n - seq_len), value=float("-inf"))
    best = best.view(*scores.shape[:2], n_k, block_n).amax(-1)
    lowest = torch.nn.functional.pad(thresholds, (0, n_q * block_m - seq_len), value=float("inf"))
    lowest = lowest.view(*scores.shape[:2], n_q, block_m).amin(-1)
    tiles = best[..., None, :] >= lowest[..., :, None]
    if causal:
        tiles &= window_tiles(seq_len, 0, True, block_m, block_n, scores.device)
    return tiles
