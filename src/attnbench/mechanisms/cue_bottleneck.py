"""Cue bottleneck — InViC, "InViC: Intent-aware Visual Cues for Medical Visual Question Answering"
(Wang et al., 2026, arXiv:2603.16372).

Med-VQA models answer from language priors while ignoring the image. InViC distils the visual tokens
into K question-conditioned cue tokens and, in its first training stage, masks the answer path's
direct view of the image so that all visual evidence passes through the cues; its second stage
restores the direct view. Here: K learned cue queries plus a projection of the question's mean
(question conditioning) attend to the image (cues = CrossAttn(queries, image)); the question then
attends to the cues only (`stage="bottleneck"`) or to [image; cues] (`stage="restored"`). K = 8 is
this benchmark's choice for small images (the paper's K is not among the sources read). FLOPs: the
conditioning projection, the cue read of the image, the question read of the cues (and the image).
"""

from __future__ import annotations

import torch
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import FlopBreakdown, FusionMasks, MechanismSpec
from attnbench.mechanisms._common import check_heads
from attnbench.mechanisms._fusion import (
    CrossProjection,
    attention_flops,
    cross_projection_flops,
    linear_flops,
    masked_mean,
    padding,
)
from attnbench.values import is_whole

STAGES = ("bottleneck", "restored")


class CueBottleneck(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        num_cues: int = 8,
        stage: str = "bottleneck",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ConfigError(f"cue_bottleneck stage={stage!r} is not one of {', '.join(STAGES)}")
        if not is_whole(num_cues, 1):
            raise ConfigError(f"cue_bottleneck num_cues={num_cues!r} must be a positive integer")
        self.restored = stage == "restored"
        self.cues = nn.Parameter(torch.randn(num_cues, dim) * dim**-0.5)
        self.condition = nn.Linear(dim, dim, bias=bias)
        self.extract = CrossProjection(dim, num_heads, bias)  # cues read the image
        self.read = CrossProjection(dim, num_heads, bias)  # the question reads the cues

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, masks: FusionMasks | None = None
    ) -> torch.Tensor:
        x_mask, context_mask = padding(masks, x, context)
        queries = self.cues + self.condition(masked_mean(x, x_mask)).unsqueeze(1)
        cues = self.extract(queries, context, context_mask[:, None, :])
        if not self.restored:
            return self.read(x, cues, None)
        cue_mask = torch.ones(cues.shape[:2], dtype=torch.bool, device=x.device)
        return self.read(
            x, torch.cat([context, cues], 1), torch.cat([context_mask, cue_mask], 1)[:, None, :]
        )


def flops(
    batch: int,
    q_len: int,
    kv_len: int,
    dim: int,
    num_heads: int = 8,
    num_cues: int = 8,
    stage: str = "bottleneck",
    **_: object,
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    seen = num_cues + (kv_len if stage == "restored" else 0)
    return FlopBreakdown(
        attention=attention_flops(batch, num_cues, kv_len, dim)
        + attention_flops(batch, q_len, seen, dim),
        selection=linear_flops(batch, 1, dim, dim),
        projections=cross_projection_flops(batch, num_cues, kv_len, dim)
        + cross_projection_flops(batch, q_len, seen, dim),
    )


def build(dim: int, **hparams: object) -> CueBottleneck:
    return CueBottleneck(dim, **hparams)


SPEC = MechanismSpec(
    name="cue_bottleneck",
    kind="fusion",
    description=(
        "K question-conditioned cue tokens read the image; the question reads only the cues"
        " (InViC)."
    ),
    paper=(
        "Wang et al., InViC: Intent-aware Visual Cues for Medical Visual Question Answering,"
        " arXiv:2603.16372"
    ),
    build=build,
    flops=flops,
    defaults={"num_heads": 8, "num_cues": 8, "stage": "bottleneck"},
    supports_causal=False,
)
