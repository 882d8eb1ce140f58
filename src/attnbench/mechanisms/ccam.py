"""Causal cross-attention masks — "Video-CCAM: Enhancing Video-Language Understanding with Causal
Cross-Attention Masks for Short and Long Videos" (Fei et al., 2024).

Plain cross-attention is blind to the order of its context. Video-CCAM splits its queries into as
many consecutive blocks as there are frames and lets block t read frames 0..t only, a
lower-triangular mask over (query block, frame). Here the context's Lk tokens form `frames`
consecutive groups (frame of token j = floor(j F / Lk); `frames=None` makes every token its own
step, as for one image read in raster order), and query i reads frame f iff f Lq < (i + 1) F: with
Lq a multiple of F that is exactly Video-CCAM's blocks, the last query reads everything and the
first reads frame 0. Lq, Lk, i and j count real tokens only (per example, from the masks): a
question padded to a fixed length would otherwise end on padding, and its real words would never
read the later part of the image. Costs are those of `cross`: the dense reference masks, it does not
skip.
"""

from __future__ import annotations

import torch
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import FlopBreakdown, FusionMasks, MechanismSpec
from attnbench.mechanisms._fusion import CrossProjection, cross_attention_flops, padding
from attnbench.values import is_whole


def causal_cross_mask(
    q_len: int, kv_len: int, frames: int | None, device: torch.device | None = None
) -> torch.Tensor:
    """(Lq, Lk) bool: which context tokens each query may read, every token real."""
    return _allowed(
        torch.arange(q_len, device=device)[None],
        torch.tensor([q_len], device=device),
        torch.arange(kv_len, device=device)[None],
        torch.tensor([kv_len], device=device),
        frames,
    )[0]


def padded_causal_cross_mask(
    x_mask: torch.Tensor, context_mask: torch.Tensor, frames: int | None
) -> torch.Tensor:
    """(B, Lq, Lk) bool from the (B, Lq) and (B, Lk) real-token masks: the causal mask over each
    example's real tokens (a token's place is its rank among the real ones), padded context never
    read."""
    q_rank = (x_mask.long().cumsum(1) - 1).clamp(min=0)
    kv_rank = (context_mask.long().cumsum(1) - 1).clamp(min=0)
    q_real = x_mask.sum(1).clamp(min=1)
    kv_real = context_mask.sum(1).clamp(min=1)
    return _allowed(q_rank, q_real, kv_rank, kv_real, frames) & context_mask[:, None, :]


def _allowed(
    q_rank: torch.Tensor,
    q_real: torch.Tensor,
    kv_rank: torch.Tensor,
    kv_real: torch.Tensor,
    frames: int | None,
) -> torch.Tensor:
    """(B, Lq, Lk): frame f = floor(j F / Lk) is read by query i iff f Lq < (i + 1) F, per
    example."""
    steps = kv_real if frames is None else kv_real.clamp(max=frames)
    frame = kv_rank * steps[:, None] // kv_real[:, None]
    return (
        frame[:, None, :] * q_real[:, None, None] < (q_rank[:, :, None] + 1) * steps[:, None, None]
    )


class CausalCrossAttention(nn.Module):
    def __init__(
        self, dim: int, num_heads: int = 8, frames: int | None = None, bias: bool = True
    ) -> None:
        super().__init__()
        if frames is not None and not is_whole(frames, 1):
            raise ConfigError(f"ccam frames={frames!r} must be a positive integer or None")
        self.frames = frames
        self.attn = CrossProjection(dim, num_heads, bias)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, masks: FusionMasks | None = None
    ) -> torch.Tensor:
        x_mask, context_mask = padding(masks, x, context)
        return self.attn(x, context, padded_causal_cross_mask(x_mask, context_mask, self.frames))


def flops(
    batch: int, q_len: int, kv_len: int, dim: int, num_heads: int = 8, **_: object
) -> FlopBreakdown:
    return cross_attention_flops(batch, q_len, kv_len, dim, num_heads=num_heads)


def build(dim: int, **hparams: object) -> CausalCrossAttention:
    return CausalCrossAttention(dim, **hparams)


SPEC = MechanismSpec(
    name="ccam",
    kind="fusion",
    description="Cross-attention with a causal mask over the context's order (Video-CCAM).",
    paper=(
        "Fei et al., Video-CCAM: Enhancing Video-Language Understanding with Causal Cross-Attention"
        " Masks for Short and Long Videos, arXiv:2408.14023"
    ),
    build=build,
    flops=flops,
    defaults={"num_heads": 8, "frames": None},
    supports_causal=False,
)
