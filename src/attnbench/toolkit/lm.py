"""The small language model suites train from scratch: a pluggable sequence mixer in a fixed
backbone.

Token embeddings, position information, `n_layers` pre-norm blocks (an optional short causal
convolution, the mechanism, an optional MLP), a final LayerNorm and an LM head tied to the token
embeddings. Weights start as in Zoology (normal, std 0.02; output projections scaled by
1/sqrt(2 n_layers)).

Two position schemes, because the suites ask different things of them:
* `learned` absolute embeddings, Zoology's MQAR backbone (`mlp=False`, no convolution);
* `none` plus a `short_conv` (a depth-wise causal convolution over the last few tokens in every
  block, as in H3/Based): the block knows which token came just before, so copying circuits form
  easily, and nothing in the backbone is tied to a position, so a model trained at one length is
  defined at any other. The needle suite uses it to test extrapolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import FlopBreakdown, MechanismSpec
from attnbench.values import is_whole

IGNORE_INDEX = -100
POSITIONS = ("learned", "none")


@dataclass(frozen=True)
class LMConfig:
    vocab_size: int
    seq_len: int
    d_model: int
    n_layers: int = 2
    mlp: bool = False
    mlp_ratio: int = 4
    positions: str = "learned"
    short_conv: int = 0  # kernel size of the causal depth-wise convolution per block; 0 = none

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise ConfigError(f"positions {self.positions!r} is not one of {', '.join(POSITIONS)}")
        if not is_whole(self.short_conv, 0):
            raise ConfigError(f"short_conv {self.short_conv!r} must be a kernel size >= 0")


class ShortConv(nn.Module):
    """Causal depth-wise convolution: output t mixes inputs t-k+1..t of the same channel."""

    def __init__(self, width: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(width, width, kernel, groups=width, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))
        return self.conv(padded).transpose(1, 2)


class Block(nn.Module):
    def __init__(self, config: LMConfig, mixer: nn.Module) -> None:
        super().__init__()
        self.conv = None
        if config.short_conv:
            self.norm0 = nn.LayerNorm(config.d_model)
            self.conv = ShortConv(config.d_model, config.short_conv)
        self.norm1 = nn.LayerNorm(config.d_model)
        self.mixer = mixer
        self.mlp = None
        if config.mlp:
            hidden = config.mlp_ratio * config.d_model
            self.norm2 = nn.LayerNorm(config.d_model)
            self.mlp = nn.Sequential(
                nn.Linear(config.d_model, hidden), nn.GELU(), nn.Linear(hidden, config.d_model)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x = x + self.conv(self.norm0(x))
        x = x + self.mixer(self.norm1(x))
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x


class MixerLM(nn.Module):
    def __init__(self, config: LMConfig, mechanism: MechanismSpec, hparams: dict) -> None:
        super().__init__()
        self.config = config
        self.token_embeddings = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embeddings = (
            nn.Embedding(config.seq_len, config.d_model) if config.positions == "learned" else None
        )
        self.blocks = nn.ModuleList(
            Block(config, mechanism.build(config.d_model, causal=True, **hparams))
            for _ in range(config.n_layers)
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
        x = self.token_embeddings(tokens)
        if self.position_embeddings is not None:
            if tokens.shape[1] > self.config.seq_len:
                raise ValueError(
                    f"{tokens.shape[1]} tokens exceed the {self.config.seq_len} learned positions"
                )
            x = x + self.position_embeddings(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.norm(x))


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


def forward_flops(
    config: LMConfig,
    mechanism: MechanismSpec,
    hparams: dict,
    batch: int,
    seq_len: int | None = None,
) -> dict[str, int]:
    """Analytic forward FLOPs of the whole model at `seq_len` (default: the config's): mechanism per
    layer, short convolution, optional MLP, LM head. Embeddings, norms and residuals are uncounted,
    as FlopCounterMode does not count them."""
    length, width = seq_len or config.seq_len, config.d_model
    mixer = FlopBreakdown()
    for _ in range(config.n_layers):
        mixer = mixer + mechanism.flops(batch, length, width, causal=True, **hparams)
    conv = 2 * batch * length * width * config.short_conv * config.n_layers
    mlp = (
        2 * (2 * batch * length * width * config.mlp_ratio * width) * config.n_layers
        if config.mlp
        else 0
    )
    head = 2 * batch * length * width * config.vocab_size
    return {
        **{f"mixer_{k}": v for k, v in mixer.as_dict().items()},
        "short_conv": conv,
        "mlp": mlp,
        "lm_head": head,
        "total": mixer.total + conv + mlp + head,
    }


def training_step_flops(
    config: LMConfig,
    mechanism: MechanismSpec,
    hparams: dict,
    batch: int,
    seq_len: int | None = None,
) -> int:
    """Forward plus backward: the backward pass costs twice the forward (input and weight
    gradients)."""
    return 3 * forward_flops(config, mechanism, hparams, batch, seq_len)["total"]


def layer_costs(
    mechanism: MechanismSpec, hparams: dict, seq_len: int, width: int
) -> dict[str, float]:
    """One mechanism layer on one sequence: forward FLOPs by part, and decode memory in float32
    bytes."""
    flops = mechanism.flops(1, seq_len, width, causal=True, **hparams)
    costs = {
        "flops_attention": flops.attention,
        "flops_selection": flops.selection,
        "flops_projections": flops.projections,
    }
    if mechanism.cache is not None:
        cache = mechanism.cache(seq_len, width, bytes_per_element=4, **hparams)
        costs.update(
            kv_cache_bytes=cache.kv_stored,
            kv_read_bytes_per_token=cache.kv_read_per_token,
            state_bytes=cache.state,
        )
    return costs
