"""Cross-attention — the encoder-decoder attention of "Attention Is All You Need" (Vaswani et al.,
2017).

Each query token of x (the question) attends to every real token of the context (the image):
softmax(Q K^T / sqrt(d)) V per head, Q from x, K and V from the context, then an output projection.
This is the dense reference of the `fusion` kind; the others are measured against it. Padded
context tokens are never read. FLOPs: projections 4 B Lq D^2 + 4 B Lk D^2, attention 4 B Lq Lk D.
"""

from __future__ import annotations

import torch
from torch import nn

from attnbench.mechanism import FusionMasks, MechanismSpec
from attnbench.mechanisms._fusion import CrossProjection, padding
from attnbench.mechanisms._fusion import cross_attention_flops as flops


class CrossAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int = 8, bias: bool = True) -> None:
        super().__init__()
        self.attn = CrossProjection(dim, num_heads, bias)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, masks: FusionMasks | None = None
    ) -> torch.Tensor:
        _, context_mask = padding(masks, x, context)
        return self.attn(x, context, context_mask[:, None, :])


def build(dim: int, **hparams: object) -> CrossAttention:
    return CrossAttention(dim, **hparams)


SPEC = MechanismSpec(
    name="cross",
    kind="fusion",
    description=(
        "Plain multi-head cross-attention from the question to the image (the fusion reference)."
    ),
    paper="Vaswani et al., Attention Is All You Need, NeurIPS 2017, arXiv:1706.03762",
    build=build,
    flops=flops,
    defaults={"num_heads": 8},
    supports_causal=False,
)
