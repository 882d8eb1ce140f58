"""Grouped-query attention — "GQA: Training Generalized Multi-Query Transformer Models from
Multi-Head Checkpoints" (Ainslie, Lee-Thorp, de Jong, Zemlyanskiy, Lebrón, Sanghai, 2023,
arXiv:2305.13245).

The H query heads are split into G groups; the heads of a group share one key head and one value
head, so only G key/value heads are projected and cached. G = H is multi-head attention and G = 1
is multi-query attention (Shazeer 2019); GQA interpolates between them, keeping most of MHA's
quality with a KV cache (and decode-time memory traffic) G/H the size. Attention itself is
unchanged: every query head still scores every key, so the attention FLOPs equal mha's,
4 B L^2 D on SDPA's math path (the full L x L scores, causal or not); only the key/value
projections shrink, to 2 x 2 B L D (G d) with d = D/H.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import check_heads, full_kv_cache


def check_groups(dim: int, num_heads: int, num_kv_heads: int) -> int:
    """Head width d, or a clear error when the query heads do not split evenly into G groups.

    A G that does not divide H is rejected rather than clamped: a cell records its hyper-parameters,
    and a silently changed G would record a model that never ran.
    """
    head_dim = check_heads(dim, num_heads)
    if num_kv_heads < 1 or num_heads % num_kv_heads:
        raise ConfigError(
            f"num_kv_heads={num_kv_heads} must be >= 1 and divide num_heads={num_heads}"
        )
    return head_dim


class GroupedQKVProjection(nn.Module):
    """Queries for H heads, keys and values for G heads, in one fused matmul, and the output
    projection.

    Named and laid out like mha's QKVProjection (rows: Q, then K, then V), so that with G = H the
    two state dicts are interchangeable.
    """

    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = check_groups(dim, num_heads, num_kv_heads)
        self.qkv = nn.Linear(dim, dim + 2 * num_kv_heads * self.head_dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, D) -> Q (B, H, L, d), K and V (B, G, L, d)."""
        batch, length, dim = x.shape
        q, kv = self.qkv(x).split([dim, 2 * self.num_kv_heads * self.head_dim], dim=-1)
        q = q.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = (
            kv.view(batch, length, 2, self.num_kv_heads, self.head_dim)
            .permute(2, 0, 3, 1, 4)
            .unbind(0)
        )
        return q, k, v

    def merge(self, heads: torch.Tensor) -> torch.Tensor:
        """(B, H, L, d) -> (B, L, D) through the output projection."""
        batch, _, length, _ = heads.shape
        return self.out_proj(heads.transpose(1, 2).reshape(batch, length, -1))


class GroupedQueryAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        num_kv_heads: int = 2,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.causal = causal
        self.proj = GroupedQKVProjection(dim, num_heads, num_kv_heads, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj.split(x)
        # enable_gqa lets query head h read key/value head h // (H/G), the paper's grouping
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, enable_gqa=True)
        return self.proj.merge(out)


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    num_kv_heads: int = 2,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    kv_dim = num_kv_heads * check_groups(dim, num_heads, num_kv_heads)
    scores_and_mix = 2 * (
        2 * batch * seq_len * seq_len * dim
    )  # Q K^T and A V over all H query heads
    projections = (
        2 * batch * seq_len * dim * (2 * dim + 2 * kv_dim)
    )  # Q and output D x D, K and V D x G d
    return FlopBreakdown(attention=scores_and_mix, projections=projections)


def cache(
    seq_len: int,
    dim: int,
    bytes_per_element: int = 2,
    num_heads: int = 8,
    num_kv_heads: int = 2,
    **_: object,
) -> CacheCost:
    """Keys and values of the G shared heads only: G/H of mha's cache, all of it read per token."""
    kv_dim = num_kv_heads * check_groups(dim, num_heads, num_kv_heads)
    return full_kv_cache(seq_len, dim, bytes_per_element, kv_dim=kv_dim)


def build(dim: int, causal: bool = True, **hparams: object) -> GroupedQueryAttention:
    return GroupedQueryAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="gqa",
    kind="sequence",
    description=(
        "Grouped-query attention: H query heads share G key/value heads (G = H is mha, G = 1 is"
        " MQA)."
    ),
    paper=(
        "Ainslie et al., GQA: Training Generalized Multi-Query Transformer Models from Multi-Head "
        "Checkpoints, EMNLP 2023, arXiv:2305.13245"
    ),
    build=build,
    flops=flops,
    cache=cache,
    # H/G = 4, as in Llama-3 (32 query heads, 8 key/value heads); the paper's GQA-8 on T5-XXL is
    # 64/8.
    defaults={"num_heads": 8, "num_kv_heads": 2},
    # With a single head there is nothing to group: GQA would be mha exactly, so smoke pins its own
    # heads instead of taking MQAR's num_heads=1. Four query heads in two groups is a true GQA
    # (neither MHA nor MQA) at MQAR's d_model 64, with 16-wide heads.
    profile_defaults={"smoke": {"num_heads": 4, "num_kv_heads": 2}},
)
