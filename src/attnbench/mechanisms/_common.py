"""Pieces shared by the built-in mechanisms: head splitting, projection costs, the bottleneck width
of the channel mechanisms (se, cbam, coord) and the sliding-window mask (sliding_window, nsa)."""

from __future__ import annotations

import torch
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost


def check_heads(dim: int, num_heads: int) -> int:
    """Head width, or a clear error when the model width does not split into heads."""
    if num_heads < 1 or dim % num_heads:
        raise ConfigError(f"num_heads={num_heads} must be >= 1 and divide the model width {dim}")
    return dim // num_heads


class QKVProjection(nn.Module):
    """The fused query/key/value projection and the output projection of standard attention."""

    def __init__(self, dim: int, num_heads: int, bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = check_heads(dim, num_heads)
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, D) -> three (B, H, L, d) tensors."""
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def merge(self, heads: torch.Tensor) -> torch.Tensor:
        """(B, H, L, d) -> (B, L, D) through the output projection."""
        batch, _, length, _ = heads.shape
        return self.out_proj(heads.transpose(1, 2).reshape(batch, length, -1))


def projection_flops(batch: int, seq_len: int, dim: int) -> int:
    """Q, K, V and output projections: four D x D matmuls per token, 2 FLOPs per multiply-add."""
    return 8 * batch * seq_len * dim * dim


def full_kv_cache(
    seq_len: int, dim: int, bytes_per_element: int = 2, kv_dim: int | None = None
) -> CacheCost:
    """A cache holding every past key and value (width `kv_dim`, default `dim`), all read per
    token."""
    stored = 2 * seq_len * (kv_dim or dim) * bytes_per_element
    return CacheCost(kv_stored=stored, kv_read_per_token=stored)


def reduced_channels(channels: int, reduction: int, min_hidden: int) -> int:
    """The bottleneck width C // r, at least `min_hidden` (shared by se, cbam and coord)."""
    if channels < 1 or reduction < 1 or min_hidden < 1:
        raise ConfigError(
            f"channels={channels}, reduction={reduction} and min_hidden={min_hidden} must be >= 1"
        )
    return max(channels // reduction, min_hidden)


def window_mask_mod(window: int, causal: bool):
    """FlexAttention-style `mask_mod(b, h, q_idx, kv_idx) -> bool`: True where a query may
    attend."""

    def mask_mod(b, h, q_idx, kv_idx):
        distance = q_idx - kv_idx
        if causal:
            return (distance >= 0) & (distance < window)
        return distance.abs() < window

    return mask_mod
