"""Pieces shared by the built-in sequence mechanisms: head splitting and projection costs."""
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


def full_kv_cache(seq_len: int, dim: int, bytes_per_element: int = 2, kv_dim: int | None = None) -> CacheCost:
    """A cache holding every past key and value (width `kv_dim`, default `dim`), all read per token."""
    stored = 2 * seq_len * (kv_dim or dim) * bytes_per_element
    return CacheCost(kv_stored=stored, kv_read_per_token=stored)
