"""The two models the EuroSAT suite trains, and their analytic FLOPs.

* `CNN` (for `feature_map` mechanisms): the 12-layer network of "Balanced Multi-Task Attention for
  Satellite Image Classification" (A. Vir, arXiv 2510.15527; the authors' `balanced_12layer.py`):
  a 3x3 stem, residual stages of blocks (3x3 conv, BN, ReLU, DropBlock, 3x3 conv, BN, the
  mechanism, then the residual sum and ReLU; a 1x1 conv + BN shortcut where the shape changes),
  global average pooling, dropout and a linear head. "12 layers" counts the stem and the 11
  residual blocks (3/3/3/2 at 64/128/256/512 channels), as the authors' code does. The paper's own
  attention (coordinate + squeeze-excitation, mixed by a learned alpha) is the `bmta` mechanism;
  `none` gives the plain residual baseline. Backbone weights start as in the authors' code
  (Kaiming normal, fan-out, for convolutions; N(0, 0.01) for the head); a mechanism's own weights
  are left as its spec builds them.
* `ViT` (for `sequence` mechanisms, built with `causal=False`): a strided-convolution patch
  embedding, learned position embeddings, the pre-norm blocks of `attnbench.toolkit.lm` (mechanism,
  MLP), a final LayerNorm, mean pooling over tokens and a linear head.

FLOPs follow FlopCounterMode: convolutions and matmuls count, a multiply-add is 2, and norms,
activations, pooling, DropBlock and residual sums do not; the mechanism's share comes from its spec.
A training step costs three forward passes (backward = twice forward, as `attnbench.toolkit.lm`
counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from attnbench.mechanism import FlopBreakdown, MechanismSpec
from attnbench.toolkit.lm import Block, LMConfig
from attnbench.toolkit.vision import ResidualBlock, conv_out


@dataclass(frozen=True)
class CNNConfig:
    in_channels: int
    num_classes: int
    image_size: int
    stem_width: int
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    strides: tuple[int, ...]  # of each stage's first block
    dropblock: tuple[float, ...]  # drop probability per stage
    dropblock_size: int = 7
    dropout: float = 0.0

    def layout(self) -> Iterator[tuple[str, int, int, int, int, float]]:
        """Every residual block: (placement name, in channels, out channels, stride, output size,
        drop)."""
        channels, size = self.stem_width, self.image_size
        for stage, (width, count, stride, drop) in enumerate(
            zip(self.widths, self.blocks, self.strides, self.dropblock), start=1
        ):
            for index in range(count):
                step = stride if index == 0 else 1
                size = conv_out(size, step)
                name = f"stage{stage}" if count == 1 else f"stage{stage}.{index + 1}"
                yield name, channels, width, step, size, drop
                channels = width


class CNN(nn.Module):
    def __init__(
        self, config: CNNConfig, mechanism: MechanismSpec, hparams: dict[str, Any]
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, config.stem_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(config.stem_width),
            nn.ReLU(),
        )
        self.placements = [name for name, *_ in config.layout()]
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(
                    cin, cout, stride, mechanism.build(cout, **hparams), drop, config.dropblock_size
                )
                for _, cin, cout, stride, _, drop in config.layout()
            )
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.widths[-1], config.num_classes)
        own = {id(m) for block in self.blocks for m in block.mechanism.modules()}
        for module in self.modules():
            if id(module) not in own:
                _init_like_the_authors(module)

    def mechanisms(self) -> list[tuple[str, nn.Module]]:
        return [(name, block.mechanism) for name, block in zip(self.placements, self.blocks)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.stem(x)).mean(dim=(2, 3))
        return self.head(self.dropout(features))


def _init_like_the_authors(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0, 0.01)
        nn.init.zeros_(module.bias)


def cnn_forward_flops(
    config: CNNConfig, mechanism: MechanismSpec | None, hparams: dict[str, Any], batch: int
) -> dict[str, int]:
    """Forward FLOPs by part; `mechanism=None` is the network with no mechanism, i.e. with
    `none`."""
    size = config.image_size
    stem = 2 * batch * size * size * config.stem_width * config.in_channels * 9
    convs, mixer = 0, FlopBreakdown()
    for _, cin, cout, stride, out, _ in config.layout():
        convs += 2 * batch * out * out * cout * (cin + cout) * 9
        if stride != 1 or cin != cout:
            convs += 2 * batch * out * out * cout * cin
        if mechanism is not None:
            mixer = mixer + mechanism.flops(batch, cout, out, out, **hparams)
    head = 2 * batch * config.widths[-1] * config.num_classes
    return _totals({"stem": stem, "convs": convs, "head": head}, mixer)


@dataclass(frozen=True)
class ViTConfig:
    in_channels: int
    num_classes: int
    image_size: int
    patch_size: int
    dim: int
    depth: int
    mlp_ratio: int = 4

    @property
    def tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def block_config(self) -> LMConfig:
        # attnbench.toolkit.lm's blocks read only the width and the MLP settings of an LMConfig.
        return LMConfig(
            self.num_classes, self.tokens, self.dim, self.depth, mlp=True, mlp_ratio=self.mlp_ratio
        )


class ViT(nn.Module):
    def __init__(
        self, config: ViTConfig, mechanism: MechanismSpec, hparams: dict[str, Any]
    ) -> None:
        super().__init__()
        self.patch_embedding = nn.Conv2d(
            config.in_channels, config.dim, config.patch_size, stride=config.patch_size
        )
        self.position_embeddings = nn.Parameter(torch.zeros(1, config.tokens, config.dim))
        blocks = config.block_config()
        self.blocks = nn.ModuleList(
            Block(blocks, mechanism.build(config.dim, causal=False, **hparams))
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, config.num_classes)
        nn.init.normal_(self.position_embeddings, std=0.02)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                # As attnbench.toolkit.lm starts its models (Zoology's): N(0, 0.02), residual
                # outputs scaled down.
                std = (
                    0.02 / math.sqrt(2 * config.depth)
                    if name.endswith(("out_proj", "mlp.2"))
                    else 0.02
                )
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def mechanisms(self) -> list[tuple[str, nn.Module]]:
        return [(f"layer{i}", block.mixer) for i, block in enumerate(self.blocks, start=1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embedding(x).flatten(2).transpose(1, 2) + self.position_embeddings
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens).mean(dim=1))


def vit_forward_flops(
    config: ViTConfig, mechanism: MechanismSpec, hparams: dict[str, Any], batch: int
) -> dict[str, int]:
    tokens, dim = config.tokens, config.dim
    patch = 2 * batch * tokens * dim * config.in_channels * config.patch_size**2
    mixer = FlopBreakdown()
    for _ in range(config.depth):
        mixer = mixer + mechanism.flops(batch, tokens, dim, causal=False, **hparams)
    mlp = 2 * (2 * batch * tokens * dim * config.mlp_ratio * dim) * config.depth
    head = 2 * batch * dim * config.num_classes
    return _totals({"patch_embedding": patch, "mlp": mlp, "head": head}, mixer)


def _totals(backbone: dict[str, int], mixer: FlopBreakdown) -> dict[str, int]:
    parts = {**backbone, **{f"mechanism_{k}": v for k, v in mixer.as_dict().items()}}
    return {**parts, "total": sum(backbone.values()) + mixer.total}
