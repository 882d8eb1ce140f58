"""The siamese network the SECOND suite trains, and its analytic FLOPs.

SCanNet's triple encoder-decoder (Ding et al., "Joint Spatio-Temporal Modeling for Semantic Change
Detection in Remote Sensing Images", TGRS 2024; DingLei14/SCanNet `models/SCanNet.py`, read as a
reference), built small and from scratch:

* one encoder shared by both dates: a 3x3 stride-2 stem, then residual stages whose every block
  ends in the `feature_map` mechanism (the EuroSAT CNN's `ResidualBlock`), then a 1x1 head to
  `width` channels. The first stage's output is the low-level feature; the rest must halve it
  exactly once, as SCanNet keeps ResNet's layer1 at 1/4 and its dilated layers 2-4 at 1/8;
* a change branch: residual blocks on the two dates' features concatenated (SCanNet's `resCD`);
* three decoder blocks (transposed-convolution upsampling, the low-level feature through a 1x1
  transit, a 3x3 fusion): one per date and one for change, fed with both dates' low-level features;
  with `decoder_attention` the mechanism also ends each of them, where the CBAM + Dice paper
  (Ratnayake et al., arXiv 2505.04199) puts CBAM;
* a semantic classifier per date (7 classes) and a change classifier (one logit), upsampled
  bilinearly to the input size.

SCanNet's CSWin transformer over the three decoded maps and its ImageNet-pretrained ResNet-34 are
left out: the attention under study is the mechanism, and every model here starts from scratch.
FLOPs follow FlopCounterMode (convolutions and transposed convolutions count, a multiply-add is 2;
norms, activations, interpolation and sums do not); a training step costs three forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.mechanism import FlopBreakdown, MechanismSpec
from attnbench.toolkit.vision import ResidualBlock, conv_out

NUM_CLASSES = 7
STEM_STRIDE = 2


@dataclass(frozen=True)
class SCDConfig:
    in_channels: int
    height: int
    width_px: int
    stem_width: int
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    strides: tuple[int, ...]  # of each stage's first block
    # channels after the encoder head, of the change branch and of the decoders (SCanNet: 128)
    width: int
    cd_blocks: int
    decoder_attention: bool = False
    num_classes: int = NUM_CLASSES

    def layout(self) -> Iterator[tuple[str, int, int, int, int, int]]:
        """Every encoder block: (placement name, in channels, out channels, stride, output
        height, width)."""
        channels = self.stem_width
        h, w = conv_out(self.height, STEM_STRIDE), conv_out(self.width_px, STEM_STRIDE)
        for stage, (width, count, stride) in enumerate(
            zip(self.widths, self.blocks, self.strides), start=1
        ):
            for index in range(count):
                step = stride if index == 0 else 1
                h, w = conv_out(h, step), conv_out(w, step)
                yield (
                    (f"stage{stage}" if count == 1 else f"stage{stage}.{index + 1}"),
                    channels,
                    width,
                    step,
                    h,
                    w,
                )
                channels = width

    def low_size(self) -> tuple[int, int]:
        """The first stage's output size (the low-level feature)."""
        last = [(h, w) for name, *_, h, w in self.layout() if name.split(".")[0] == "stage1"][-1]
        return last

    def high_size(self) -> tuple[int, int]:
        *_, h, w = list(self.layout())[-1]
        return h, w


class Encoder(nn.Module):
    """The siamese encoder: shared by both dates; returns (high-level, low-level) features."""

    def __init__(
        self, config: SCDConfig, mechanism: MechanismSpec, hparams: dict[str, Any]
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(
                config.in_channels, config.stem_width, 3, stride=STEM_STRIDE, padding=1, bias=False
            ),
            nn.BatchNorm2d(config.stem_width),
            nn.ReLU(),
        )
        self.placements = [name for name, *_ in config.layout()]
        self.blocks = nn.ModuleList(
            ResidualBlock(cin, cout, stride, mechanism.build(cout, **hparams), 0.0, 1)
            for _, cin, cout, stride, _, _ in config.layout()
        )
        self.low_blocks = sum(1 for name in self.placements if name.split(".")[0] == "stage1")
        self.head = nn.Sequential(
            nn.Conv2d(config.widths[-1], config.width, 1, bias=False),
            nn.BatchNorm2d(config.width),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        for block in self.blocks[: self.low_blocks]:
            x = block(x)
        low = x
        for block in self.blocks[self.low_blocks :]:
            x = block(x)
        return self.head(x), low


class DecoderBlock(nn.Module):
    """Upsample the high-level map x2, fuse it with the low-level one (SCanNet's
    `_DecoderBlock`)."""

    def __init__(self, high: int, low: int, out: int, reduction: int, mechanism: nn.Module) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(high, high, kernel_size=2, stride=2)
        self.transit = nn.Sequential(
            nn.Conv2d(low, low // reduction, 1, bias=False),
            nn.BatchNorm2d(low // reduction),
            nn.ReLU(),
        )
        self.decode = nn.Sequential(
            nn.Conv2d(high + low // reduction, out, 3, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(),
        )
        self.mechanism = mechanism

    def forward(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return self.mechanism(self.decode(torch.cat([self.up(x), self.transit(low)], dim=1)))


class SCDNet(nn.Module):
    """(B, 2, C, H, W) image pairs -> change logits (B, 1, H, W) and semantic logits per date (B,
    7, H, W) x 2."""

    def __init__(
        self, config: SCDConfig, mechanism: MechanismSpec, hparams: dict[str, Any]
    ) -> None:
        super().__init__()
        width, low = config.width, config.widths[0]

        def decoder_mechanism() -> nn.Module:
            return mechanism.build(width, **hparams) if config.decoder_attention else nn.Identity()

        self.encoder = Encoder(config, mechanism, hparams)
        self.change_blocks = nn.Sequential(
            *(
                ResidualBlock(2 * width if i == 0 else width, width, 1, nn.Identity(), 0.0, 1)
                for i in range(config.cd_blocks)
            )
        )
        self.decoder_a = DecoderBlock(width, low, width, 1, decoder_mechanism())
        self.decoder_b = DecoderBlock(width, low, width, 1, decoder_mechanism())
        self.decoder_change = DecoderBlock(width, 2 * low, width, 2, decoder_mechanism())
        self.classifier_a = nn.Conv2d(width, config.num_classes, 1)
        self.classifier_b = nn.Conv2d(width, config.num_classes, 1)
        self.classifier_change = nn.Sequential(
            nn.Conv2d(width, width // 2, 1),
            nn.BatchNorm2d(width // 2),
            nn.ReLU(),
            nn.Conv2d(width // 2, 1, 1),
        )
        own = {id(m) for _, module in self.mechanisms() for m in module.modules()}
        for module in self.modules():
            if id(module) not in own:
                _init(module)

    def mechanisms(self) -> list[tuple[str, nn.Module]]:
        placed = [
            (f"encoder.{name}", block.mechanism)
            for name, block in zip(self.encoder.placements, self.encoder.blocks)
        ]
        for name in ("a", "b", "change"):
            module = getattr(self, f"decoder_{name}").mechanism
            if not isinstance(module, nn.Identity):
                placed.append((f"decoder.{name}", module))
        return placed

    def forward(self, pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = pair.shape[-2:]
        high_a, low_a = self.encoder(pair[:, 0])
        high_b, low_b = self.encoder(pair[:, 1])
        change = self.change_blocks(torch.cat([high_a, high_b], dim=1))
        change = self.decoder_change(change, torch.cat([low_a, low_b], dim=1))
        semantic_a, semantic_b = self.decoder_a(high_a, low_a), self.decoder_b(high_b, low_b)
        outputs = (
            self.classifier_change(change),
            self.classifier_a(semantic_a),
            self.classifier_b(semantic_b),
        )
        return tuple(
            F.interpolate(o, size=size, mode="bilinear", align_corners=False) for o in outputs
        )


def _init(module: nn.Module) -> None:
    """Kaiming-normal convolutions and unit BatchNorm, as SCanNet's `initialize_weights` starts
    its layers."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _residual(batch: int, cin: int, cout: int, stride: int, h: int, w: int) -> int:
    flops = 2 * batch * h * w * cout * (cin + cout) * 9
    return flops + (2 * batch * h * w * cout * cin if stride != 1 or cin != cout else 0)


def _decoder(batch: int, high: int, low: int, out: int, reduction: int, h: int, w: int) -> int:
    """At the low-level size (h, w): the 2x2 transposed convolution, the transit and the fusion."""
    up = 2 * batch * high * high * 4 * (h // 2) * (w // 2)
    transit = 2 * batch * h * w * low * (low // reduction)
    return up + transit + 2 * batch * h * w * out * (high + low // reduction) * 9


def scd_forward_flops(
    config: SCDConfig, mechanism: MechanismSpec | None, hparams: dict[str, Any], batch: int
) -> dict[str, int]:
    """Forward FLOPs by part for `batch` pairs; `mechanism=None` is the network with `none`."""
    dates = 2 * batch
    stem_h, stem_w = conv_out(config.height, STEM_STRIDE), conv_out(config.width_px, STEM_STRIDE)
    stem = 2 * dates * stem_h * stem_w * config.stem_width * config.in_channels * 9
    encoder, mixer = 0, FlopBreakdown()
    for _, cin, cout, stride, h, w in config.layout():
        encoder += _residual(dates, cin, cout, stride, h, w)
        if mechanism is not None:
            mixer = mixer + mechanism.flops(dates, cout, h, w, **hparams)
    high_h, high_w = config.high_size()
    encoder += 2 * dates * high_h * high_w * config.width * config.widths[-1]
    width, low = config.width, config.widths[0]
    change = sum(
        _residual(batch, 2 * width if i == 0 else width, width, 1, high_h, high_w)
        for i in range(config.cd_blocks)
    )
    low_h, low_w = config.low_size()
    decoders = 2 * _decoder(batch, width, low, width, 1, low_h, low_w) + _decoder(
        batch, width, 2 * low, width, 2, low_h, low_w
    )
    if mechanism is not None and config.decoder_attention:
        for _ in range(3):
            mixer = mixer + mechanism.flops(batch, width, low_h, low_w, **hparams)
    pixels = batch * low_h * low_w
    classifiers = (
        2 * (2 * pixels * width * config.num_classes)
        + 2 * pixels * width * (width // 2)
        + 2 * pixels * (width // 2)
    )
    backbone = {
        "stem": stem,
        "encoder": encoder,
        "change_blocks": change,
        "decoders": decoders,
        "classifiers": classifiers,
    }
    parts = {**backbone, **{f"mechanism_{k}": v for k, v in mixer.as_dict().items()}}
    return {**parts, "total": sum(backbone.values()) + mixer.total}
