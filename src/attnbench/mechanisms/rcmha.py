"""Relative convolutional multi-head attention — "RCMHA: Relative Convolutional Multi-Head Attention
for Natural Language Modelling" (Sugiharto, Aradea, Mubarok, 2023, arXiv:2308.03429).

RCMHA joins two additions to multi-head attention. First, Primer's multi-DConv-head (So et al.,
2021, arXiv:2109.08668): after the Q, K and V projections, a depth-wise 1-D convolution over the
sequence (kernel 3) lets each query, key and value mix in its immediate predecessors, so local
n-gram patterns need no attention at all; for causal use the convolution is padded on the left
only. As in Primer, every channel of every head has its own filter (the official code shares one
set of d filters among the heads). Second, Transformer-XL's relative position scores (Dai et al.,
2019, arXiv:1901.02860) replace absolute positions: with learned relative key embeddings r_{i-j}
per head and the learned biases u and v,

    score_ij = [(q_i + u)^T k_j + (q_i + v)^T r_{i-j}] / sqrt(d),

then softmax and the weighted sum of values as usual (the official code learns a scalar per
distance in place of v^T r_{i-j}). Distances beyond `max_distance` (P) share the embedding of the
largest one (Shaw et al., 2018); the official code keeps 2 x 4096 of them. The position term is
computed once per query against the distinct embeddings a sequence uses (R = min(L - 1, P) + 1
causal, twice that less one bidirectional) and gathered into the L x L scores, which go to SDPA as
an additive mask. FLOPs, what FlopCounterMode counts: attention 4 B L^2 D (SDPA math, as mha)
+ 2 B L R D (the position term); projections 8 B L D^2 + 2 B L 3D K (the convolution, counted as
FlopCounterMode counts a depth-wise conv: one multiply-add per tap and channel).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import QKVProjection, check_heads, full_kv_cache, projection_flops


def check_shape(kernel_size: int, max_distance: int) -> None:
    if kernel_size < 1:
        raise ConfigError(f"kernel_size={kernel_size} must be a positive number of tokens")
    if max_distance < 1:
        raise ConfigError(f"max_distance={max_distance} must be a positive number of tokens")


def distances_used(seq_len: int, max_distance: int, causal: bool) -> int:
    """R: how many distinct relative embeddings a length-L sequence reads."""
    largest = min(seq_len - 1, max_distance)
    return largest + 1 if causal else 2 * largest + 1


class RelativeConvolutionalAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        kernel_size: int = 3,
        max_distance: int = 4096,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_shape(kernel_size, max_distance)
        self.causal = causal
        self.kernel_size = kernel_size
        self.max_distance = max_distance
        self.proj = QKVProjection(dim, num_heads, bias)
        # one filter per channel of Q, K and V alike (groups = channels): Primer's multi-DConv-head
        self.conv = nn.Conv1d(3 * dim, 3 * dim, kernel_size, groups=3 * dim)
        head_dim = self.proj.head_dim
        # r_{-P}, ..., r_0, ..., r_P; random rather than zero (as the official code) so that v
        # learns from step one
        self.relative_keys = nn.Parameter(
            0.02 * torch.randn(num_heads, 2 * max_distance + 1, head_dim)
        )
        self.u = nn.Parameter(torch.zeros(num_heads, 1, head_dim))
        self.v = nn.Parameter(torch.zeros(num_heads, 1, head_dim))

    def convolved_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, D) -> Q, K, V as (B, H, L, d), each channel convolved over the sequence."""
        batch, length, _ = x.shape
        left = self.kernel_size - 1 if self.causal else (self.kernel_size - 1) // 2
        # contiguous (B, 3D, L): the CPU depth-wise kernel runs twice as fast as on the transposed
        # view
        qkv = F.pad(
            self.proj.qkv(x).transpose(1, 2), (left, self.kernel_size - 1 - left)
        ).contiguous()
        qkv = (
            self.conv(qkv)
            .transpose(1, 2)
            .reshape(batch, length, 3, self.proj.num_heads, self.proj.head_dim)
        )
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def position_scores(self, q: torch.Tensor) -> torch.Tensor:
        """(q_i + v)^T r_{i-j} / sqrt(d) for every query i and key j, as (B, H, L, L)."""
        batch, heads, length, head_dim = q.shape
        largest = min(length - 1, self.max_distance)
        lowest = 0 if self.causal else -largest
        rows = self.relative_keys[:, self.max_distance + lowest : self.max_distance + largest + 1]
        per_distance = (q + self.v) @ rows.transpose(-1, -2)  # (B, H, L, R): each distinct r once
        positions = torch.arange(length, device=q.device)
        distance = (positions[:, None] - positions[None, :]).clamp(lowest, largest)
        index = (distance - lowest).expand(batch, heads, length, length)
        return per_distance.gather(-1, index) / head_dim**0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.convolved_qkv(x)
        bias = self.position_scores(q)
        if self.causal:
            future = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).triu(1)
            bias = bias.masked_fill(future, float("-inf"))
        # SDPA scales (q + u)^T k by 1/sqrt(d) and adds the position term after scaling
        return self.proj.merge(F.scaled_dot_product_attention(q + self.u, k, v, attn_mask=bias))


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    kernel_size: int = 3,
    max_distance: int = 4096,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    check_shape(kernel_size, max_distance)
    scores_and_mix = 2 * (
        2 * batch * seq_len * seq_len * dim
    )  # (q + u)^T k and A V, full L x L as mha
    position = 2 * batch * seq_len * distances_used(seq_len, max_distance, causal) * dim
    convolution = 2 * batch * seq_len * 3 * dim * kernel_size
    return FlopBreakdown(
        attention=scores_and_mix + position,
        projections=projection_flops(batch, seq_len, dim) + convolution,
    )


def cache(
    seq_len: int,
    dim: int,
    bytes_per_element: int = 2,
    kernel_size: int = 3,
    max_distance: int = 4096,
    **_: object,
) -> CacheCost:
    """Every convolved key and value, all read; plus the last K - 1 projected q, k, v the
    convolution needs."""
    check_shape(kernel_size, max_distance)
    kv = full_kv_cache(seq_len, dim, bytes_per_element)
    return CacheCost(
        kv.kv_stored, kv.kv_read_per_token, state=3 * (kernel_size - 1) * dim * bytes_per_element
    )


def build(dim: int, causal: bool = True, **hparams: object) -> RelativeConvolutionalAttention:
    return RelativeConvolutionalAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="rcmha",
    kind="sequence",
    description=(
        "MHA with causal depth-wise convolutions on Q, K, V and Transformer-XL relative position"
        " scores."
    ),
    paper=(
        "Sugiharto, Aradea, Mubarok, RCMHA: Relative Convolutional Multi-Head Attention for Natural"
        " Language Modelling, arXiv:2308.03429"
    ),
    build=build,
    flops=flops,
    cache=cache,
    # hermansh-id/rcmha: 8 heads (d_model 128), kernel 3, relative embeddings for distances up to
    # 2^12.
    defaults={"num_heads": 8, "kernel_size": 3, "max_distance": 4096},
    # At 32 tokens every distance has its own embedding; 4096 would only add parameters MQAR never
    # reads.
    profile_defaults={"smoke": {"max_distance": 32}},
)
