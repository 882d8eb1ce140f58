"""Pieces shared by the built-in `fusion` mechanisms: multi-head cross-attention with masks, and its
costs.

The attention is written out (scores, masked softmax, weighted sum) rather than calling SDPA so that
a query row whose every key is masked returns zeros instead of NaN: padding, a causal cross mask and
a bottleneck can each leave a row with nothing to read.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnbench.mechanism import FlopBreakdown, FusionMasks
from attnbench.mechanisms._common import check_heads


class CrossProjection(nn.Module):
    """Query projection of one stream, key/value projection of another, output projection of the
    heads."""

    def __init__(self, dim: int, num_heads: int, bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = check_heads(dim, num_heads)
        self.q = nn.Linear(dim, dim, bias=bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)

    def queries(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, H, L, d)."""
        return self._heads(self.q(x))

    def keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D) -> two (B, H, L, d)."""
        k, v = self.kv(context).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def merge(self, heads: torch.Tensor) -> torch.Tensor:
        """(B, H, L, d) -> (B, L, D) through the output projection."""
        batch, _, length, _ = heads.shape
        return self.out(heads.transpose(1, 2).reshape(batch, length, -1))

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        batch, length, _ = t.shape
        return t.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, allowed: torch.Tensor | None
    ) -> torch.Tensor:
        """Plain cross-attention from x to context; `allowed` is (B, Lq, Lk) or broadcastable, or
        None."""
        k, v = self.keys_values(context)
        return self.merge(attend(self.queries(x), k, v, allowed))


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over the allowed keys; a row with no allowed key gives zeros.

    `allowed`: bool, (B, Lq, Lk) (shared by the heads) or None for every key.
    """
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if allowed is None:
        return torch.matmul(scores.softmax(-1), v)
    allowed = allowed.unsqueeze(1)
    readable = allowed.any(-1, keepdim=True)
    # A row with nothing to read attends uniformly (no NaN in the forward or the backward) and is
    # zeroed.
    weights = scores.masked_fill(~(allowed | ~readable), float("-inf")).softmax(-1) * readable
    return torch.matmul(weights, v)


def padding(
    masks: FusionMasks | None, x: torch.Tensor, context: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (B, Lq) and (B, Lk) real-token masks, all True where the caller gave none."""
    masks = masks or FusionMasks()
    x_mask = (
        masks.x
        if masks.x is not None
        else torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    )
    c_mask = (
        masks.context
        if masks.context is not None
        else torch.ones(context.shape[:2], dtype=torch.bool, device=context.device)
    )
    return x_mask.bool(), c_mask.bool()


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D) averaged over the real tokens of each example -> (B, D); an example with none
    gives zeros."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1)


def linear_flops(batch: int, tokens: int, d_in: int, d_out: int) -> int:
    return 2 * batch * tokens * d_in * d_out


def attention_flops(batch: int, q_len: int, kv_len: int, dim: int) -> int:
    """Scores and weighted sum: two (Lq x Lk x D) matmuls, 2 FLOPs per multiply-add."""
    return 2 * (2 * batch * q_len * kv_len * dim)


def cross_projection_flops(batch: int, q_len: int, kv_len: int, dim: int) -> int:
    """Queries and outputs on the q_len tokens, keys and values on the kv_len tokens."""
    return 2 * linear_flops(batch, q_len, dim, dim) + linear_flops(batch, kv_len, dim, 2 * dim)


def cross_attention_flops(
    batch: int, q_len: int, kv_len: int, dim: int, num_heads: int = 8, **_: object
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    return FlopBreakdown(
        attention=attention_flops(batch, q_len, kv_len, dim),
        projections=cross_projection_flops(batch, q_len, kv_len, dim),
    )
