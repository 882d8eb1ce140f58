"""The Med-VQA model the suite trains: a patch image encoder, a small question encoder, the fusion
mechanism under test, and a classifier over the training answers.

image (3, S, S) -> patch embedding (P x P, stride P) + positions + LayerNorm -> (S/P)^2 image
tokens; question words -> embedding + positions -> `text_layers` pre-norm blocks (self-attention,
written as the `cross` mechanism reading the question itself with its padding masked, then an MLP);
then `fusion_layers` pre-norm blocks: x = x + fusion(LN(x), image tokens, masks), x = x +
MLP(LN(x)); the mean of the real question tokens -> LayerNorm -> answer logits. Every mechanism sits
in the same slots with the same widths, so the mechanism is the only difference between two rows.
`forward_flops` counts one forward pass analytically and equals FlopCounterMode (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from attnbench.mechanism import FusionMasks, MechanismSpec
from attnbench.mechanisms import cross


def mean_over_tokens(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D) averaged over the real tokens of each example -> (B, D); an example with none
    gives zeros."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1)


@dataclass(frozen=True)
class ModelConfig:
    image_size: int
    patch_size: int
    dim: int
    vocab_size: int
    max_question_tokens: int
    text_layers: int
    fusion_layers: int
    mlp_ratio: int
    num_answers: int
    text_heads: int

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class Batch(NamedTuple):
    images: torch.Tensor  # (B, 3, S, S) float, normalised
    tokens: torch.Tensor  # (B, L) int64
    token_mask: torch.Tensor  # (B, L) bool, True = a real word


class Block(nn.Module):
    def __init__(self, dim: int, mixer: nn.Module, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mixer = mixer
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None, mask: torch.Tensor
    ) -> torch.Tensor:
        h = self.norm1(x)
        if context is None:  # self-attention over the question, padding never read
            x = x + self.mixer(h, h, FusionMasks(x=mask, context=mask))
        else:
            x = x + self.mixer(h, context, FusionMasks(x=mask))
        return x + self.mlp(self.norm2(x))


class VQAModel(nn.Module):
    def __init__(
        self, config: ModelConfig, mechanism: MechanismSpec, hparams: dict[str, Any]
    ) -> None:
        super().__init__()
        d = config.dim
        self.patch = nn.Conv2d(3, d, config.patch_size, stride=config.patch_size)
        self.image_positions = nn.Parameter(torch.randn(1, config.image_tokens, d) * 0.02)
        self.image_norm = nn.LayerNorm(d)
        self.embed = nn.Embedding(config.vocab_size, d, padding_idx=0)
        self.text_positions = nn.Parameter(torch.randn(1, config.max_question_tokens, d) * 0.02)
        self.text_blocks = nn.ModuleList(
            Block(d, cross.build(d, num_heads=config.text_heads), config.mlp_ratio)
            for _ in range(config.text_layers)
        )
        self.fusion_blocks = nn.ModuleList(
            Block(d, mechanism.build(d, **hparams), config.mlp_ratio)
            for _ in range(config.fusion_layers)
        )
        self.head_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.num_answers)

    def forward(self, batch: Batch) -> torch.Tensor:
        context = self.patch(batch.images).flatten(2).transpose(1, 2)
        context = self.image_norm(context + self.image_positions)
        mask = batch.token_mask
        x = self.embed(batch.tokens) + self.text_positions[:, : batch.tokens.shape[1]]
        for block in self.text_blocks:
            x = block(x, None, mask)
        for block in self.fusion_blocks:
            x = block(x, context, mask)
        return self.head(self.head_norm(mean_over_tokens(x, mask)))


def forward_flops(
    config: ModelConfig, mechanism: MechanismSpec, hparams: dict[str, Any], batch: int
) -> dict[str, int]:
    """FLOPs of one forward pass by part; `mechanism_*` sum the fusion mechanism over its layers."""
    d, q_len, kv_len = config.dim, config.max_question_tokens, config.image_tokens
    mlp = 2 * 2 * batch * q_len * d * config.mlp_ratio * d
    fused = mechanism.flops(batch, q_len, kv_len, d, **hparams)
    parts = {
        "patch_embedding": 2 * batch * kv_len * d * 3 * config.patch_size**2,
        "question_encoder": (
            config.text_layers
            * (cross.flops(batch, q_len, q_len, d, num_heads=config.text_heads).total + mlp)
        ),
        "fusion_mlps": config.fusion_layers * mlp,
        "head": 2 * batch * d * config.num_answers,
    }
    for part in ("attention", "selection", "projections"):
        parts[f"mechanism_{part}"] = config.fusion_layers * getattr(fused, part)
    parts["mechanism_total"] = config.fusion_layers * fused.total
    parts["total"] = (
        sum(v for k, v in parts.items() if not k.startswith("mechanism_"))
        + parts["mechanism_total"]
    )
    return parts
