"""Multi-head attention — "Attention Is All You Need" (Vaswani et al., 2017).

Each head computes softmax(Q K^T / sqrt(d)) V (with a causal mask when causal) and an output
projection mixes the heads. This is the dense reference every other sequence mechanism is
compared against. The FLOP count is the one FlopCounterMode measures on SDPA's math path: the
full L x L score matrix, causal or not, since the math path masks rather than skips.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.mechanism import FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import QKVProjection, check_heads, full_kv_cache, projection_flops


class MultiHeadAttention(nn.Module):
    def __init__(
        self, dim: int, num_heads: int = 8, causal: bool = True, bias: bool = True
    ) -> None:
        super().__init__()
        self.causal = causal
        self.proj = QKVProjection(dim, num_heads, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj.split(x)
        return self.proj.merge(F.scaled_dot_product_attention(q, k, v, is_causal=self.causal))


def flops(
    batch: int, seq_len: int, dim: int, num_heads: int = 8, causal: bool = True, **_: object
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    scores_and_mix = 2 * (2 * batch * seq_len * seq_len * dim)  # Q K^T and A V
    return FlopBreakdown(
        attention=scores_and_mix, projections=projection_flops(batch, seq_len, dim)
    )


def cache(seq_len: int, dim: int, bytes_per_element: int = 2, **_: object):
    return full_kv_cache(seq_len, dim, bytes_per_element)


def build(dim: int, causal: bool = True, **hparams: object) -> MultiHeadAttention:
    return MultiHeadAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="mha",
    kind="sequence",
    description="Dense scaled dot-product multi-head attention (the reference).",
    paper="Vaswani et al., Attention Is All You Need, NeurIPS 2017, arXiv:1706.03762",
    build=build,
    flops=flops,
    cache=cache,
    defaults={"num_heads": 8},
)
