"""No attention — the identity baseline for the `feature_map` kind.

out = x. A CNN with `none` in every attention slot is the plain backbone, the row every
feature-map attention module is measured against: what it buys in accuracy is worth what it
costs over this one. No parameters, 0 FLOPs.
"""

from __future__ import annotations

from torch import nn

from attnbench.mechanism import FlopBreakdown, MechanismSpec


def flops(batch: int, channels: int, height: int, width: int, **_: object) -> FlopBreakdown:
    return FlopBreakdown()


def build(channels: int, **_: object) -> nn.Identity:
    return nn.Identity()


SPEC = MechanismSpec(
    name="none",
    kind="feature_map",
    description="Identity: the backbone without attention (the baseline row).",
    paper="(baseline: no attention module)",
    build=build,
    flops=flops,
    supports_causal=False,
    defaults={},
)
