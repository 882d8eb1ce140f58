"""The language model MQAR trains: Zoology's two-layer backbone with a pluggable sequence mixer.

Token + learned position embeddings, `n_layers` pre-norm blocks (mechanism, then an optional
MLP that Zoology leaves off for MQAR), a final LayerNorm and an LM head tied to the token
embeddings. Weights start as in Zoology (normal, std 0.02; output projections scaled by
1/sqrt(2 n_layers)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from attnbench.mechanism import FlopBreakdown, MechanismSpec


@dataclass(frozen=True)
class LMConfig:
    vocab_size: int
    seq_len: int
    d_model: int
    n_layers: int = 2
    mlp: bool = False
    mlp_ratio: int = 4


class Block(nn.Module):
    def __init__(self, config: LMConfig, mixer: nn.Module) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model)
        self.mixer = mixer
        self.mlp = None
        if config.mlp:
            hidden = config.mlp_ratio * config.d_model
            self.norm2 = nn.LayerNorm(config.d_model)
            self.mlp = nn.Sequential(nn.Linear(config.d_model, hidden), nn.GELU(), nn.Linear(hidden, config.d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norm1(x))
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x


class MixerLM(nn.Module):
    def __init__(self, config: LMConfig, mechanism: MechanismSpec, hparams: dict) -> None:
        super().__init__()
        self.config = config
        self.token_embeddings = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embeddings = nn.Embedding(config.seq_len, config.d_model)
        self.blocks = nn.ModuleList(
            Block(config, mechanism.build(config.d_model, causal=True, **hparams)) for _ in range(config.n_layers)
        )
        self.norm = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        self._scale_residual_outputs()
        self.lm_head.weight = self.token_embeddings.weight

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def _scale_residual_outputs(self) -> None:
        for name, param in self.named_parameters():
            if name.endswith(("out_proj.weight", "mlp.2.weight")):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * self.config.n_layers))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embeddings(tokens) + self.position_embeddings(positions)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.norm(x))


def forward_flops(config: LMConfig, mechanism: MechanismSpec, hparams: dict, batch: int) -> dict[str, int]:
    """Analytic forward FLOPs of the whole model: mechanism per layer, optional MLP, LM head."""
    length, width = config.seq_len, config.d_model
    mixer = FlopBreakdown()
    for _ in range(config.n_layers):
        mixer = mixer + mechanism.flops(batch, length, width, causal=True, **hparams)
    mlp = 2 * (2 * batch * length * width * config.mlp_ratio * width) * config.n_layers if config.mlp else 0
    head = 2 * batch * length * width * config.vocab_size
    return {**{f"mixer_{k}": v for k, v in mixer.as_dict().items()}, "mlp": mlp, "lm_head": head,
            "total": mixer.total + mlp + head}


def training_step_flops(config: LMConfig, mechanism: MechanismSpec, hparams: dict, batch: int) -> int:
    """Forward plus backward: the backward pass costs twice the forward (input and weight gradients)."""
    return 3 * forward_flops(config, mechanism, hparams, batch)["total"]
