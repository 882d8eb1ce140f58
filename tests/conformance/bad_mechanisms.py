"""Deliberately broken mechanisms: each must be caught by conformance, named, and refused."""

from __future__ import annotations

import torch
from torch import nn

from attnbench.mechanism import MechanismSpec
from attnbench.mechanisms import mha


class Leaky(nn.Module):
    """Causal attention plus the mean of the *whole* sequence: peeks at the future."""

    def __init__(self, dim: int, causal: bool = True, num_heads: int = 1) -> None:
        super().__init__()
        self.inner = mha.MultiHeadAttention(dim, num_heads=num_heads, causal=causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + x.mean(dim=1, keepdim=True)


class Unused(mha.MultiHeadAttention):
    """Carries a parameter the forward never uses."""

    def __init__(self, dim: int, causal: bool = True, num_heads: int = 1) -> None:
        super().__init__(dim, num_heads=num_heads, causal=causal)
        self.forgotten = nn.Parameter(torch.ones(3))


class Noisy(mha.MultiHeadAttention):
    """Draws fresh noise on every call, ignoring the seed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unseeded = torch.Generator()
        unseeded.seed()  # a nondeterministic seed, whatever torch.manual_seed says
        return super().forward(x) + 1e-3 * torch.randn(
            x.shape, generator=unseeded, dtype=torch.float64
        ).to(x.dtype)


def spec(name: str, module: type, flops=mha.flops) -> MechanismSpec:
    return MechanismSpec(
        name=name,
        kind="sequence",
        description="broken on purpose",
        paper="none",
        build=lambda dim, causal=True, **h: module(dim, causal=causal, **h),
        flops=flops,
        defaults={"num_heads": 1},
    )


LEAKY = spec("leaky", Leaky)
UNUSED = spec("unused", Unused)
NOISY = spec("noisy", Noisy)
WRONG_FLOPS = spec(
    "wrong_flops", mha.MultiHeadAttention, flops=lambda *a, **k: mha.flops(*a, **k).scaled(2)
)
