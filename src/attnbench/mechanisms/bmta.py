"""Balanced Multi-Task Attention — the attention of the 12-layer EuroSAT CNN that reaches 97.23%
test accuracy from scratch (code: virAditya/satellite-image-classification-eurosat,
models/balanced_12layer.py, `BalancedMultiTaskAttention`).

Two attentions on the same input, blended by one learned scalar:

    out = alpha * CA(x) + (1 - alpha) * SE(x),   alpha = sigmoid(alpha_logit),

CA being coordinate attention (`coord`, spatial: where) with reduction 8 and SE
squeeze-and-excitation (`se`, spectral: which channels) with reduction 16. alpha is a sigmoid of
a learned logit, so it stays in (0, 1) whatever the optimiser does; the logit starts at 0.5 as in
the official code (`nn.Parameter(torch.tensor(0.5))`), i.e. alpha starts at sigmoid(0.5) ~ 0.62
(`alpha_logit_init=0` starts it at exactly 0.5); the authors report it near 0.57 after training.
`reported_values()` gives the current alpha, which the suite stores per cell. Bottleneck widths
are C // r with no floor (min_hidden = 1), as in the official code.

The two branches are this package's `coord` and `se` modules, so alpha = 1 is exactly `coord`
and alpha = 0 exactly `se` with the same weights. Differs from the official code there: its CA
uses ReLU rather than the coordinate-attention paper's h-swish, and its 1x1 convolutions and SE
linear layers have no biases. The rest of that paper's recipe, progressive DropBlock (5% to 20% by
stage) and the class-balanced loss, belongs to the suite's network and training, not to this module.

FLOPs: the sum of the two branches' (see coord.py and se.py), all `attention`; the blend is
elementwise and uncounted.
"""

from __future__ import annotations

import torch
from torch import nn

from attnbench.mechanism import FlopBreakdown, MechanismSpec
from attnbench.mechanisms._channels import CoordinateAttention, SqueezeExcite, coord_flops, se_flops


class BalancedMultiTaskAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        ca_reduction: int = 8,
        se_reduction: int = 16,
        min_hidden: int = 1,
        alpha_logit_init: float = 0.5,
    ) -> None:
        super().__init__()
        self.coord = CoordinateAttention(channels, reduction=ca_reduction, min_hidden=min_hidden)
        self.se = SqueezeExcite(channels, reduction=se_reduction, min_hidden=min_hidden)
        self.alpha_logit = nn.Parameter(torch.tensor(float(alpha_logit_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.alpha_logit)
        return alpha * self.coord(x) + (1 - alpha) * self.se(x)

    def reported_values(self) -> dict[str, float]:
        return {"alpha": float(torch.sigmoid(self.alpha_logit.detach()))}


def flops(
    batch: int,
    channels: int,
    height: int,
    width: int,
    ca_reduction: int = 8,
    se_reduction: int = 16,
    min_hidden: int = 1,
    **_: object,
) -> FlopBreakdown:
    return coord_flops(
        batch, channels, height, width, reduction=ca_reduction, min_hidden=min_hidden
    ) + se_flops(batch, channels, height, width, reduction=se_reduction, min_hidden=min_hidden)


def build(channels: int, **hparams: object) -> BalancedMultiTaskAttention:
    return BalancedMultiTaskAttention(channels, **hparams)


SPEC = MechanismSpec(
    name="bmta",
    kind="feature_map",
    description=(
        "Balanced multi-task attention: alpha * coordinate attention + (1 - alpha) * SE, alpha"
        " learned."
    ),
    paper=(
        "Balanced multi-task attention CNN for EuroSAT (97.23%), "
        "code virAditya/satellite-image-classification-eurosat"
    ),
    build=build,
    flops=flops,
    supports_causal=False,
    defaults={"ca_reduction": 8, "se_reduction": 16, "min_hidden": 1, "alpha_logit_init": 0.5},
)
