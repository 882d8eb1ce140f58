"""Conformance of `sequence` mechanisms: shape and dtype, no causal leak, batch independence,
gradients, determinism, declared FLOPs against FlopCounterMode, and cache costs, at lengths that are
no multiple of any block size."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from attnbench.conformance.common import (
    LEAK_LENGTH,
    LEAK_TOLERANCE,
    LENGTHS,
    CheckResult,
    build_seeded,
    flops_verdict,
    output_mismatch,
)
from attnbench.mechanism import MechanismSpec


def _build(
    spec: MechanismSpec,
    dim: int,
    hparams: Mapping[str, Any],
    causal: bool,
    seed: int,
    dtype: torch.dtype = torch.float32,
) -> torch.nn.Module:
    return build_seeded(spec, dim, hparams, seed, dtype, causal=causal)


def _inputs(
    batch: int, length: int, dim: int, seed: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    return torch.randn(
        batch, length, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    ).to(dtype)


def _shapes(spec, dim, hparams, causal, seed) -> CheckResult:
    for dtype in (torch.float32, torch.float64):
        module = _build(spec, dim, hparams, causal, seed, dtype)
        for batch in (1, 2):
            for length in LENGTHS:
                x = _inputs(batch, length, dim, seed, dtype)
                with torch.no_grad():
                    out = module(x)
                failure = output_mismatch(x, out)
                if failure:
                    return failure
    return CheckResult(
        "shape_dtype", True, f"batch 1-2, lengths {', '.join(map(str, LENGTHS))}, float32/64"
    )


def _causal_leak(spec, dim, hparams, seed) -> CheckResult:
    """Perturb every suffix x[:, t+1:] in turn; outputs at positions <= t must not move."""
    module = _build(spec, dim, hparams, True, seed, torch.float64)
    x = _inputs(1, LEAK_LENGTH, dim, seed, torch.float64)
    noise = _inputs(1, LEAK_LENGTH, dim, seed + 1, torch.float64)
    with torch.no_grad():
        base = module(x)
        for t in range(LEAK_LENGTH - 1):
            changed = torch.cat([x[:, : t + 1], noise[:, t + 1 :]], dim=1)
            moved = (module(changed)[:, : t + 1] - base[:, : t + 1]).abs()
            limit = LEAK_TOLERANCE * (1 + base[:, : t + 1].abs())
            if (moved > limit).any():
                first = int((moved > limit).any(-1).nonzero()[0, 1])
                return CheckResult(
                    "causal_leak",
                    False,
                    f"output at position {first} changed when tokens after "
                    f"position {t} changed (max {float(moved.max()):.2e})",
                )
    return CheckResult("causal_leak", True, f"every position of a length-{LEAK_LENGTH} input")


def _batch_independence(spec, dim, hparams, causal, seed) -> CheckResult:
    module = _build(spec, dim, hparams, causal, seed, torch.float64)
    x = _inputs(2, 9, dim, seed, torch.float64)
    with torch.no_grad():
        alone = module(x[:1])
        together = module(torch.cat([x[:1], _inputs(1, 9, dim, seed + 7, torch.float64)]))[:1]
    if not torch.allclose(alone, together, rtol=1e-9, atol=1e-9):
        return CheckResult(
            "batch_independence", False, "an example's output depends on another example"
        )
    return CheckResult("batch_independence", True)


def _gradients(spec, dim, hparams, causal, seed) -> CheckResult:
    module = _build(spec, dim, hparams, causal, seed)
    module(_inputs(2, LEAK_LENGTH, dim, seed)).square().sum().backward()
    missing = [
        name
        for name, p in module.named_parameters()
        if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))
    ]
    if missing:
        return CheckResult("gradients", False, f"no gradient reaches {', '.join(missing)}")
    return CheckResult("gradients", True, f"{sum(1 for _ in module.parameters())} parameters")


def _determinism(spec, dim, hparams, causal, seed) -> CheckResult:
    outputs = []
    for _ in range(2):
        module = _build(spec, dim, hparams, causal, seed)
        with torch.no_grad():
            outputs.append(module(_inputs(2, 17, dim, seed)))
    if not torch.equal(*outputs):
        return CheckResult("determinism", False, "the same seed gave different modules or outputs")
    return CheckResult("determinism", True)


def _flops(spec, dim, hparams, causal, seed) -> CheckResult:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    module = _build(spec, dim, hparams, causal, seed)
    batch, length = 2, LEAK_LENGTH
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(_inputs(batch, length, dim, seed))
    measured = counter.get_total_flops()
    declared = spec.flops(batch, length, dim, causal=causal, **hparams)
    return flops_verdict(spec, declared.total, measured)


def _cache(spec, dim, hparams) -> CheckResult:
    if spec.cache is None:
        return CheckResult("cache", True, "no cache cost declared")
    cost = spec.cache(LEAK_LENGTH, dim, **hparams)
    values = cost.as_dict()
    if any(not isinstance(v, int) or v < 0 for v in values.values()):
        return CheckResult(
            "cache", False, f"cache costs must be non-negative integers, got {values}"
        )
    return CheckResult("cache", True, ", ".join(f"{k}={v:,}" for k, v in values.items()))


def sequence_checks(
    spec: MechanismSpec, params: Mapping[str, Any], width: int, seed: int
) -> list[tuple[str, Callable[[], CheckResult]]]:
    """The named checks of a sequence mechanism, each a thunk that `run_checks` calls and guards."""
    causal = spec.supports_causal
    checks = [
        ("shape_dtype", lambda: _shapes(spec, width, params, causal, seed)),
        (
            "causal_leak",
            lambda: (
                _causal_leak(spec, width, params, seed)
                if causal
                else CheckResult("causal_leak", True, "bidirectional mechanism: not applicable")
            ),
        ),
        ("batch_independence", lambda: _batch_independence(spec, width, params, causal, seed)),
        ("gradients", lambda: _gradients(spec, width, params, causal, seed)),
        ("determinism", lambda: _determinism(spec, width, params, causal, seed)),
        ("flops", lambda: _flops(spec, width, params, causal, seed)),
        ("cache", lambda: _cache(spec, width, params)),
    ]
    if causal and spec.supports_bidirectional:
        checks.append(("bidirectional", lambda: _shapes(spec, width, params, False, seed)))
    return checks
