"""Coordinate Attention — "Coordinate Attention for Efficient Mobile Network Design" (Hou, Zhou,
Feng; CVPR 2021; arXiv:2103.02907; code houqb/CoordAttention).

SE squeezes a whole channel to one number and loses where things are; coordinate attention keeps
one coordinate. It pools along each axis separately,

    z^h_c(i) = mean_j x_c(i, j)   (B, C, H),      z^w_c(j) = mean_i x_c(i, j)   (B, C, W),

encodes both strips with one shared 1x1 convolution, BatchNorm and h-swish,
f = h_swish(BN(F1([z^h; z^w]))) with C -> C/r channels over the H + W positions, splits f back into
f^h and f^w, and turns each into a gate with its own 1x1 convolution C/r -> C:

    out_c(i, j) = x_c(i, j) * sigmoid(F_h(f^h))_c(i) * sigmoid(F_w(f^w))_c(j).

The gate along H depends only on the row i, the one along W only on the column j. Reduction
r = 32 and hidden width max(C // r, 8), as in the official code (`mip = max(8, inp // reduction)`);
the gate convolutions have biases as there, the shared one has none (the official one does, but the
BatchNorm right after it subtracts any constant, so that bias never trains). BatchNorm normalises
over the batch while training, as everywhere in the CNN around it; in eval mode it uses running
statistics and images are independent.

Matches timm's `timm.layers.CoordAttn` (conv1, bn1, hard-swish, conv_h, conv_w, sigmoid gates; same
parameter names). Differs: timm sizes the bottleneck as make_divisible(C / 16 * 2/3, 8) and drops
the gate convolutions' biases by default; here the official code's width and gate biases are kept.

FLOPs (FlopCounterMode's convention, multiply-add = 2), all `attention`: the shared convolution
over H + W positions, 2 B (H + W) C h, and the two gate convolutions, 2 B H h C + 2 B W h C.
Pooling, BatchNorm, h-swish, sigmoid and the gating products are uncounted.
"""

from __future__ import annotations

from attnbench.mechanism import MechanismSpec
from attnbench.mechanisms._channels import CoordinateAttention
from attnbench.mechanisms._channels import coord_flops as flops

__all__ = ["SPEC", "CoordinateAttention", "build", "flops"]


def build(channels: int, **hparams: object) -> CoordinateAttention:
    return CoordinateAttention(channels, **hparams)


SPEC = MechanismSpec(
    name="coord",
    kind="feature_map",
    description=(
        "Coordinate attention: gates along H and along W from direction-wise pooled strips."
    ),
    paper=(
        "Hou, Zhou, Feng, Coordinate Attention for Efficient Mobile Network Design, CVPR 2021,"
        " arXiv:2103.02907"
    ),
    build=build,
    flops=flops,
    supports_causal=False,
    defaults={"reduction": 32, "min_hidden": 8},
)
