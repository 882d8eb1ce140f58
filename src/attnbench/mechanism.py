"""The mechanism contract: what a plug-in declares so that any suite can build, cost and compare it.

This module must not import torch: specs are read by `attnbench list` and the planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from attnbench.errors import ConfigError
from attnbench.values import check_like

KINDS = ("sequence", "feature_map", "fusion", "pretrained")


@dataclass(frozen=True)
class FlopBreakdown:
    """Forward-pass FLOPs of one mechanism call, split so that sparse and dense methods compare
    fairly.

    A multiply-add counts as 2, as `torch.utils.flop_counter.FlopCounterMode` does.
    """

    attention: int = 0
    selection: int = 0
    projections: int = 0

    @property
    def total(self) -> int:
        return self.attention + self.selection + self.projections

    def __add__(self, other: FlopBreakdown) -> FlopBreakdown:
        return FlopBreakdown(
            self.attention + other.attention,
            self.selection + other.selection,
            self.projections + other.projections,
        )

    def scaled(self, factor: int) -> FlopBreakdown:
        return FlopBreakdown(
            self.attention * factor, self.selection * factor, self.projections * factor
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "attention": self.attention,
            "selection": self.selection,
            "projections": self.projections,
            "total": self.total,
        }


@dataclass(frozen=True)
class CacheCost:
    """Decode-time memory of one layer for one sequence that has seen `seq_len` tokens, in bytes.

    `kv_stored`: the KV cache (or its compressed or evicted form) kept; `kv_read_per_token`: the
    bytes of it read to produce the next token; `state`: fixed-size recurrent or memory state.
    A sparse-read mechanism keeps the whole cache but reads little; an evicting one keeps little.
    """

    kv_stored: int
    kv_read_per_token: int
    state: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "kv_stored": self.kv_stored,
            "kv_read_per_token": self.kv_read_per_token,
            "state": self.state,
        }


@dataclass(frozen=True)
class FusionMasks:
    """Which tokens of a `fusion` call are real, as (B, Lq) and (B, Lk) boolean tensors (True = a
    token, False = padding); None means every token is real. A fusion mechanism must not let a
    padded token change any output at a real query position; outputs at padded query positions need
    only be finite. (Plain tensors, so this module stays torch-free.)"""

    x: Any = None
    context: Any = None


@dataclass(frozen=True)
class MechanismSpec:
    """A registered mechanism.

    `build(dim, causal=..., **hparams)` returns the module; for the `sequence` kind it maps `(B, L,
    D) -> (B, L, D)`. A `fusion` module is built as `build(dim, **hparams)`, is called as `module(x
    (B, Lq, D), context (B, Lk, D), masks: FusionMasks | None)` and returns (B, Lq, D), the update a
    model adds to x; its `flops(batch, q_len, kv_len, dim, **hparams)` costs one call. `flops(batch,
    seq_len, dim, causal=..., **hparams)` is the analytic cost of one forward pass. `flops_exact`
    says the declared FLOPs equal what FlopCounterMode counts on the reference implementation;
    sparse mechanisms whose readable reference computes densely and masks declare their effective
    work instead and set it False. `cache(seq_len, dim, bytes_per_element=2, **hparams)` gives the
    decode-time memory per layer. `defaults` are the paper's hyper-parameters; `profile_defaults`
    overrides them per profile (e.g. a smaller window for CPU smoke runs) and takes precedence over
    a suite's overrides.
    """

    name: str
    kind: str
    description: str
    paper: str
    build: Callable[..., Any]
    flops: Callable[..., FlopBreakdown]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    profile_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    supports_causal: bool = True
    supports_bidirectional: bool = True
    flops_exact: bool = True
    cache: Callable[..., CacheCost] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(
                f"mechanism {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}"
            )
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(
            self,
            "profile_defaults",
            MappingProxyType({k: dict(v) for k, v in self.profile_defaults.items()}),
        )

    def hparams(
        self, profile: str | None = None, overrides: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The hyper-parameters a cell uses: paper defaults, then the profile's, then explicit
        overrides."""
        merged = dict(self.defaults)
        merged.update(self.profile_defaults.get(profile or "", {}))
        for key, value in (overrides or {}).items():
            if key not in merged:
                known = ", ".join(sorted(merged)) or "none"
                raise ConfigError(
                    f"mechanism {self.name!r} has no hyper-parameter {key!r} (known: {known})"
                )
            check_like(merged[key], value, f"mechanism {self.name!r}: hyper-parameter {key}")
            merged[key] = value
        return merged

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "paper": self.paper,
            "defaults": dict(self.defaults),
            "profile_defaults": {k: dict(v) for k, v in self.profile_defaults.items()},
            "causal": self.supports_causal,
            "bidirectional": self.supports_bidirectional,
            "flops_exact": self.flops_exact,
        }
