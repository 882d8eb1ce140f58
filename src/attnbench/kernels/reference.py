"""The PyTorch pieces a kernel shares with its mechanism's reference, so that both compute the same
thing by construction: linear attention's feature map and ones column (`kernels.lightning`,
`mechanisms.linear`, `mechanisms.lightning`) and MoBA's block selection (`kernels.sparse_patterns`,
`mechanisms.moba`). They live here, below both, because a kernel never imports a mechanism."""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-6


def feature_map(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1


def with_ones_column(v: torch.Tensor) -> torch.Tensor:
    return torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)


def block_centroids(k: torch.Tensor, block_size: int) -> torch.Tensor:
    """(B, H, L, d) keys -> (B, H, ceil(L / Bk), d) mean key of each block (the last may be
    partial)."""
    batch, heads, length, head_dim = k.shape
    n = -(-length // block_size)
    sums = (
        F.pad(k, (0, 0, 0, n * block_size - length))
        .view(batch, heads, n, block_size, head_dim)
        .sum(3)
    )
    counts = (length - torch.arange(n, device=k.device) * block_size).clamp(max=block_size)
    return sums / counts[:, None].to(k.dtype)


def select_blocks(q: torch.Tensor, k: torch.Tensor, block_size: int, top_k: int) -> torch.Tensor:
    """(B, H, L, n) bool: each query's top-k blocks by q . centroid, its own block always, no
    future one."""
    length = q.shape[2]
    gate = q @ block_centroids(k, block_size).transpose(-1, -2)
    own = torch.arange(length, device=q.device)[:, None] // block_size
    block = torch.arange(gate.shape[-1], device=q.device)[None, :]
    gate = gate.masked_fill(block > own, float("-inf")).masked_fill(block == own, float("inf"))
    chosen = gate.topk(min(top_k, gate.shape[-1]), dim=-1).indices
    # A query with fewer than k - 1 past blocks also "picks" -inf future blocks; the last mask drops
    # them.
    return torch.zeros_like(gate, dtype=torch.bool).scatter(-1, chosen, True) & (block <= own)
