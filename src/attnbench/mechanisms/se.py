"""Squeeze-and-Excitation — "Squeeze-and-Excitation Networks" (Hu, Shen, Sun; CVPR 2018;
arXiv:1709.01507).

Channel attention from global context: squeeze each channel to its spatial mean z = mean_{h,w} x,
excite through a bottleneck MLP and gate the channels,

    out = x * sigmoid(W2 relu(W1 z + b1) + b2),   W1: C -> C/r,  W2: C/r -> C,  r = 16.

The hidden width is max(C // r, min_hidden) with min_hidden = 8: the paper has no minimum, but at
the small channel counts of CPU smoke runs C/16 would leave one or zero hidden units.

Matches timm's `timm.layers.SEModule` (1x1 convolutions fc1/fc2 with biases, ReLU, sigmoid gate;
same parameter names and shapes). Differs: timm rounds the hidden width to a multiple of 8
(`make_divisible(C / r, 8)`); here it is floored and clamped, which agrees for every power of two
(64 -> 8, 256 -> 16, 512 -> 32) and may differ by a few units otherwise.

FLOPs (FlopCounterMode's convention, multiply-add = 2): the two 1x1 convolutions on the pooled
(B, C, 1, 1) descriptor, 2 B C h each, all of it `attention`. Pooling, ReLU, sigmoid and the gating
product are elementwise and uncounted.
"""

from __future__ import annotations

from attnbench.mechanism import MechanismSpec
from attnbench.mechanisms._channels import SqueezeExcite
from attnbench.mechanisms._channels import se_flops as flops

__all__ = ["SPEC", "SqueezeExcite", "build", "flops"]


def build(channels: int, **hparams: object) -> SqueezeExcite:
    return SqueezeExcite(channels, **hparams)


SPEC = MechanismSpec(
    name="se",
    kind="feature_map",
    description=(
        "Squeeze-and-excitation: channel gates from a bottleneck MLP on the global average."
    ),
    paper="Hu, Shen, Sun, Squeeze-and-Excitation Networks, CVPR 2018, arXiv:1709.01507",
    build=build,
    flops=flops,
    supports_causal=False,
    defaults={"reduction": 16, "min_hidden": 8},
)
