"""CBAM — "CBAM: Convolutional Block Attention Module" (Woo, Park, Lee, Kweon; ECCV 2018;
arXiv:1807.06521).

Two gates applied in sequence, channel first, then spatial (the paper's best arrangement):

    channel:  F' = F  * sigmoid(MLP(avgpool(F)) + MLP(maxpool(F))),   MLP = W1 relu(W0 .), C -> C/r
    -> C spatial:  F'' = F' * sigmoid(conv_kxk([mean_c(F'); max_c(F')]))

with one MLP shared by the two pooled descriptors (r = 16), and a k x k convolution (k = 7,
zero "same" padding) over the two channel-pooled maps. The spatial gate reads F', so it sees the
channel-recalibrated features. The hidden width is max(C // r, min_hidden), min_hidden = 1.

Matches timm's `timm.layers.CbamModule` (`channel.fc1`/`fc2` as bias-free 1x1 convolutions, ReLU,
sigmoid gates, channel then spatial). Differs: timm's spatial branch is a `ConvNormAct`, a
convolution followed by BatchNorm (as in the authors' code); here it is the paper's formula, a plain
bias-free convolution, as in the CBAM network of the EuroSAT paper this benchmark reproduces
(virAditya/satellite-image-classification-eurosat, models/attention_7layer.py). Without the
BatchNorm nothing in the module depends on the other images of a batch, even in training.

FLOPs (FlopCounterMode's convention, multiply-add = 2), all `attention`: the shared MLP twice
(average and max descriptors), 2 x 2 x 2 B C h; the spatial convolution, 2 B H W (2 k^2) (the
counter charges every output position the full kernel, padding included). Pooling, sigmoid and
the gating products are uncounted.
"""

from __future__ import annotations

import torch
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import reduced_channels


class ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int, min_hidden: int) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction, min_hidden)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=False)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=False)

    def mlp(self, descriptor: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(descriptor)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True))
        return x * torch.sigmoid(logits)


class SpatialAttention(nn.Module):
    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size={kernel_size} must be odd and positive (same padding)")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(maps))


class CBAM(nn.Module):
    def __init__(
        self, channels: int, reduction: int = 16, kernel_size: int = 7, min_hidden: int = 1
    ) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction, min_hidden)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


def flops(
    batch: int,
    channels: int,
    height: int,
    width: int,
    reduction: int = 16,
    kernel_size: int = 7,
    min_hidden: int = 1,
    **_: object,
) -> FlopBreakdown:
    hidden = reduced_channels(channels, reduction, min_hidden)
    shared_mlp = 2 * (2 * (2 * batch * channels * hidden))  # two descriptors, two layers each
    spatial_conv = 2 * batch * height * width * (2 * kernel_size * kernel_size)
    return FlopBreakdown(attention=shared_mlp + spatial_conv)


def build(channels: int, **hparams: object) -> CBAM:
    return CBAM(channels, **hparams)


SPEC = MechanismSpec(
    name="cbam",
    kind="feature_map",
    description=(
        "CBAM: channel gate (avg+max MLP) then spatial gate (7x7 conv on channel avg/max maps)."
    ),
    paper=(
        "Woo, Park, Lee, Kweon, CBAM: Convolutional Block Attention Module, ECCV 2018,"
        " arXiv:1807.06521"
    ),
    build=build,
    flops=flops,
    supports_causal=False,
    defaults={"reduction": 16, "kernel_size": 7, "min_hidden": 1},
)
