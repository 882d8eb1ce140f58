"""Co-guided attention — CACE-Net, "CACE-Net: Co-guidance Attention and Contrastive Enhancement for
Effective Audio-Visual Event Localization" (He et al., ACM MM 2024; code Brain-Cog-Lab/CACE-Net).

Each modality attends to the other and gates itself with the result, instead of one modality only
guiding the other. Step 1, the question guides the image: every image token attends to the question
(a) and is re-weighted, c' = c + beta * sigmoid(a) * c. Step 2, the guided image guides the
question: every question token attends to c' (g) and the update is psai * sigmoid(g) * x, the
authors' residual gate (their out = x + psai * sigmoid(g) * x; the model around this module adds x).
psai = 0.3 is the authors' setting; beta = 0.4 is the value of their single-direction module. Padded
tokens of either stream are never read. FLOPs: two cross-attentions, one in each direction.
"""

from __future__ import annotations

import torch
from torch import nn

from attnbench.mechanism import FlopBreakdown, FusionMasks, MechanismSpec
from attnbench.mechanisms._common import check_heads
from attnbench.mechanisms._fusion import (
    CrossProjection,
    attention_flops,
    cross_projection_flops,
    padding,
)


class CoGuidedAttention(nn.Module):
    def __init__(
        self, dim: int, num_heads: int = 8, psai: float = 0.3, beta: float = 0.4, bias: bool = True
    ) -> None:
        super().__init__()
        self.psai, self.beta = psai, beta
        self.question_to_image = CrossProjection(
            dim, num_heads, bias
        )  # image tokens read the question
        self.image_to_question = CrossProjection(
            dim, num_heads, bias
        )  # question tokens read the guided image

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, masks: FusionMasks | None = None
    ) -> torch.Tensor:
        x_mask, context_mask = padding(masks, x, context)
        guide = self.question_to_image(context, x, x_mask[:, None, :])
        guided = context + self.beta * torch.sigmoid(guide) * context
        gate = self.image_to_question(x, guided, context_mask[:, None, :])
        return self.psai * torch.sigmoid(gate) * x


def flops(
    batch: int, q_len: int, kv_len: int, dim: int, num_heads: int = 8, **_: object
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    return FlopBreakdown(
        attention=2 * attention_flops(batch, q_len, kv_len, dim),
        projections=cross_projection_flops(batch, kv_len, q_len, dim)
        + cross_projection_flops(batch, q_len, kv_len, dim),
    )


def build(dim: int, **hparams: object) -> CoGuidedAttention:
    return CoGuidedAttention(dim, **hparams)


SPEC = MechanismSpec(
    name="coguided",
    kind="fusion",
    description=(
        "Bidirectional co-guidance: each modality attends to the other and gates itself (CACE-Net)."
    ),
    paper=(
        "He et al., CACE-Net: Co-guidance Attention and Contrastive Enhancement for Effective"
        " Audio-Visual Event Localization, ACM MM 2024, arXiv:2408.01952"
    ),
    build=build,
    flops=flops,
    defaults={"num_heads": 8, "psai": 0.3, "beta": 0.4},
    supports_causal=False,
)
