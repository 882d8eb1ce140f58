"""What the kernel benchmark times: a shape, the contenders run on it, and the workload that
groups them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

# FlashAttention's convention: the backward pass is dV, dP, dQ, dK and the recomputed Q K^T, 2.5
# forwards.
BACKWARD_FACTOR = 2.5


@dataclass(frozen=True)
class Shape:
    batch: int
    heads: int
    seq_len: int
    head_dim: int
    dtype: torch.dtype
    device: str
    tile: int  # the kernel's query and key tile


@dataclass
class Contender:
    name: str
    run: Callable[[], torch.Tensor]
    inputs: tuple[torch.Tensor, ...]  # what the backward pass differentiates
    flops_forward: float
    backward_factor: float = BACKWARD_FACTOR  # backward FLOPs per forward FLOP

    @property
    def flops_backward(self) -> float:
        return self.backward_factor * self.flops_forward


@dataclass
class Workload:
    mechanism: str
    contenders: list[Contender]
    density: float  # the kernel's allowed pairs over dense causal pairs
    details: dict[str, Any] = field(default_factory=dict)  # stored with the cell
    block_mask: Any = None  # FlexAttention's, for the sparse patterns
