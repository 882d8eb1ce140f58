"""Modality-mutual attention — AKI, "Seeing is Understanding: Unlocking Causal Attention into
Modality-Mutual Attention for Multimodal LLMs" (Wang et al., 2025; code sony/aki).

A decoder reads the joint sequence [image; question] under a causal mask, so image tokens never see
the question. AKI adds ones to the block (image rows, question columns): image tokens may read the
whole question (not the answer), so later layers read question-aware image tokens. One joint layer
with a fixed context would throw the image rows' outputs away, so a call runs the joint layer's two
reads with one set of weights: (1) image rows attend under the mask over [image; question], updating
the image tokens (c' = c + attn); (2) question rows attend causally over [c'; question], which is
the returned update. `mask="causal"` drops the image-to-question block: AKI's causal baseline, same
cost. FLOPs: image rows read Lk + Lq keys, question rows read Lk + Lq keys; question keys and values
are projected once.
"""

from __future__ import annotations

import torch
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import FlopBreakdown, FusionMasks, MechanismSpec
from attnbench.mechanisms._common import check_heads
from attnbench.mechanisms._fusion import (
    CrossProjection,
    attend,
    attention_flops,
    linear_flops,
    padding,
)

MASKS = ("mutual", "causal")


def joint_mask(
    kv_len: int, q_len: int, mutual: bool, device: torch.device | None = None
) -> torch.Tensor:
    """(Lk + Lq, Lk + Lq) bool over [image; question]: causal, plus image rows -> question
    columns if mutual."""
    size = kv_len + q_len
    allowed = torch.ones(size, size, dtype=torch.bool, device=device).tril()
    if mutual:
        allowed[:kv_len, kv_len:] = True
    return allowed


class ModalityMutualAttention(nn.Module):
    def __init__(
        self, dim: int, num_heads: int = 8, mask: str = "mutual", bias: bool = True
    ) -> None:
        super().__init__()
        if mask not in MASKS:
            raise ConfigError(f"mutual mask={mask!r} is not one of {', '.join(MASKS)}")
        self.mutual = mask == "mutual"
        self.attn = CrossProjection(dim, num_heads, bias)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, masks: FusionMasks | None = None
    ) -> torch.Tensor:
        x_mask, context_mask = padding(masks, x, context)
        kv_len = context.shape[1]
        allowed = (
            joint_mask(kv_len, x.shape[1], self.mutual, x.device)[None]
            & torch.cat([context_mask, x_mask], dim=1)[:, None, :]
        )
        k_text, v_text = self.attn.keys_values(x)
        k_image, v_image = self.attn.keys_values(context)
        image_heads = attend(
            self.attn.queries(context),
            torch.cat([k_image, k_text], 2),
            torch.cat([v_image, v_text], 2),
            allowed[:, :kv_len],
        )
        updated = context + self.attn.merge(image_heads)
        k_image, v_image = self.attn.keys_values(updated)
        text_heads = attend(
            self.attn.queries(x),
            torch.cat([k_image, k_text], 2),
            torch.cat([v_image, v_text], 2),
            allowed[:, kv_len:],
        )
        return self.attn.merge(text_heads)


def flops(
    batch: int, q_len: int, kv_len: int, dim: int, num_heads: int = 8, **_: object
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    joint = kv_len + q_len
    queries_and_outputs = 2 * linear_flops(batch, joint, dim, dim)  # image rows, then question rows
    keys_values = linear_flops(
        batch, q_len + 2 * kv_len, dim, 2 * dim
    )  # question once, image before and after
    return FlopBreakdown(
        attention=attention_flops(batch, joint, joint, dim),
        projections=queries_and_outputs + keys_values,
    )


def build(dim: int, **hparams: object) -> ModalityMutualAttention:
    return ModalityMutualAttention(dim, **hparams)


SPEC = MechanismSpec(
    name="mutual",
    kind="fusion",
    description=(
        "Joint image-and-question attention where image tokens also read the question (AKI)."
    ),
    paper=(
        "Wang et al., Seeing is Understanding: Unlocking Causal Attention into Modality-Mutual"
        " Attention for Multimodal LLMs, arXiv:2503.02597"
    ),
    build=build,
    flops=flops,
    defaults={"num_heads": 8, "mask": "mutual"},
    supports_causal=False,
)
