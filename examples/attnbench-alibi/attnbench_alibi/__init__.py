"""ALiBi attention — "Train Short, Test Long" (Press et al., ICLR 2022), as an attnbench plug-in.

No position embeddings inside the mechanism: each head h adds -m_h * (i - j) to the score of
query i on key j, with head slopes m_h a geometric sequence 2^(-8h/H). Costs are those of mha
(the bias is elementwise, which FlopCounterMode does not count).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.mechanism import FlopBreakdown, MechanismSpec


def slopes(num_heads: int) -> torch.Tensor:
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / num_heads) for h in range(num_heads)])


class ALiBiAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int = 8, causal: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide the model width {dim}")
        self.num_heads, self.causal = num_heads, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.register_buffer("slopes", slopes(num_heads), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = (
            self.qkv(x).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        )
        position = torch.arange(length, device=x.device)
        distance = (position[:, None] - position[None, :]).to(x.dtype)
        bias = -self.slopes.to(x.dtype)[:, None, None] * distance.abs()
        if self.causal:
            bias = bias.masked_fill(distance < 0, float("-inf"))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim))


def flops(
    batch: int, seq_len: int, dim: int, num_heads: int = 8, causal: bool = True, **_: object
) -> FlopBreakdown:
    return FlopBreakdown(
        attention=4 * batch * seq_len * seq_len * dim, projections=8 * batch * seq_len * dim * dim
    )


SPEC = MechanismSpec(
    name="alibi",
    kind="sequence",
    description="Softmax attention with linear distance biases per head (ALiBi).",
    paper="Press et al., Train Short, Test Long, ICLR 2022, arXiv:2108.12409",
    build=lambda dim, causal=True, **hparams: ALiBiAttention(dim, causal=causal, **hparams),
    flops=flops,
    defaults={"num_heads": 8},
)
