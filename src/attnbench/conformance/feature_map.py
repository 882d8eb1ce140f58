"""Conformance for the `feature_map` kind: a module mapping (B, C, H, W) -> (B, C, H, W) in a CNN.

The checks mirror the sequence ones where they apply: output shape and dtype (float32 and float64,
batch 1 and 2, odd and degenerate spatial sizes, train and eval mode), no mixing across the batch,
gradients reaching every parameter, determinism under a seed, declared FLOPs against
FlopCounterMode, and the values a module reports (`reported_values()`) being finite numbers. There
is no causal check: a feature map has no order. Each check runs at every channel count in
`CHANNELS` (or at the one asked for), so a bottleneck that degenerates at few channels shows up.

BatchNorm normalises over the batch while training, as it does everywhere in the CNN around these
modules; that is not a leak. So the batch check runs in eval mode always, and in training mode
too when the module holds no batch-statistics layer.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from attnbench.conformance.common import CheckResult, build_seeded, flops_verdict, output_mismatch
from attnbench.mechanism import MechanismSpec

CHANNELS = (16, 64)
SIZES = ((7, 9), (13, 5), (1, 1))
FLOP_SIZES = ((7, 9), (13, 5))
BATCH_TOLERANCE = 1e-9


def _inputs(
    batch: int, channels: int, size: tuple[int, int], seed: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Standard normal maps plus a random offset per image and channel, so that channel statistics
    (averages, maxima) differ between images and channels as they do in a trained CNN."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, *size, generator=generator, dtype=torch.float64)
    return (x + torch.randn(batch, channels, 1, 1, generator=generator, dtype=torch.float64)).to(
        dtype
    )


def _has_batch_statistics(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def _shapes(spec, channel_counts, hparams, seed) -> CheckResult:
    for channels in channel_counts:
        for dtype in (torch.float32, torch.float64):
            module = build_seeded(spec, channels, hparams, seed, dtype)
            for training in (True, False):
                module.train(training)
                for batch in (1, 2):
                    for size in SIZES:
                        x = _inputs(batch, channels, size, seed, dtype)
                        with torch.no_grad():
                            out = module(x)
                        failure = output_mismatch(x, out, f" ({'train' if training else 'eval'})")
                        if failure:
                            return failure
    sizes = ", ".join(f"{h}x{w}" for h, w in SIZES)
    return CheckResult(
        "shape_dtype",
        True,
        f"channels {_join(channel_counts)}, batch 1-2, sizes {sizes}, float32/64, train and eval",
    )


def _batch_independence(spec, channel_counts, hparams, seed) -> CheckResult:
    """Change image 1 of a batch of two; image 0's output must not move."""
    modes = []
    for channels in channel_counts:
        module = build_seeded(spec, channels, hparams, seed, torch.float64)
        x = _inputs(2, channels, SIZES[0], seed, torch.float64)
        changed = torch.cat([x[:1], _inputs(1, channels, SIZES[0], seed + 7, torch.float64)])
        modes = ["eval"] if _has_batch_statistics(module) else ["eval", "train"]
        for mode in modes:
            module.train(mode == "train")
            with torch.no_grad():
                base, moved = module(x)[0], module(changed)[0]
            if not torch.allclose(base, moved, rtol=BATCH_TOLERANCE, atol=BATCH_TOLERANCE):
                return CheckResult(
                    "batch_independence",
                    False,
                    "image 0's output changed when image 1 changed "
                    f"({mode} mode, {channels} channels, max "
                    f"{float((base - moved).abs().max()):.2e})",
                )
    note = (
        "" if "train" in modes else " (training mode uses BatchNorm's batch statistics by design)"
    )
    return CheckResult("batch_independence", True, f"{' and '.join(modes)} mode{note}")


def _gradients(spec, channel_counts, hparams, seed) -> CheckResult:
    """Every trainable parameter gets a non-zero gradient. The batch holds each image and its
    negation, so a ReLU unit of a small bottleneck is active for at least one of them: a unit dead
    at initialisation for every input would otherwise read as a parameter the output ignores."""
    count = 0
    for channels in channel_counts:
        module = build_seeded(spec, channels, hparams, seed)
        if not any(p.requires_grad for p in module.parameters()):
            return CheckResult("gradients", True, "no trainable parameters")
        x = _inputs(4, channels, SIZES[0], seed)
        module(torch.cat([x, -x])).square().sum().backward()
        missing = [
            name
            for name, p in module.named_parameters()
            if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))
        ]
        if missing:
            return CheckResult(
                "gradients",
                False,
                f"no gradient reaches {', '.join(missing)} ({channels} channels)",
            )
        count = sum(1 for _ in module.parameters())
    return CheckResult("gradients", True, f"{count} parameters")


def _determinism(spec, channel_counts, hparams, seed) -> CheckResult:
    for channels in channel_counts:
        outputs = []
        for _ in range(2):
            module = build_seeded(spec, channels, hparams, seed)
            with torch.no_grad():
                outputs.append(module(_inputs(2, channels, SIZES[1], seed)))
        if not torch.equal(*outputs):
            return CheckResult(
                "determinism",
                False,
                f"the same seed gave different modules or outputs ({channels} channels)",
            )
    return CheckResult("determinism", True)


def _flops(spec, channel_counts, hparams, seed) -> CheckResult:
    from torch.utils.flop_counter import FlopCounterMode

    details = []
    batch = 2
    for channels in channel_counts:
        module = build_seeded(spec, channels, hparams, seed)
        for size in FLOP_SIZES:
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                module(_inputs(batch, channels, size, seed))
            declared = spec.flops(batch, channels, *size, **hparams)
            verdict = flops_verdict(spec, declared.total, counter.get_total_flops())
            where = f"{channels} channels, {size[0]}x{size[1]}"
            if not verdict.passed:
                return CheckResult("flops", False, f"{verdict.detail} ({where})")
            details.append(
                f"{where}: {declared.total:,}" if spec.flops_exact else f"{where}: {verdict.detail}"
            )
    return CheckResult(
        "flops", True, ("declared = measured, " if spec.flops_exact else "") + "; ".join(details)
    )


def _reported_values(spec, channel_counts, hparams, seed) -> CheckResult:
    module = build_seeded(spec, channel_counts[0], hparams, seed)
    report = getattr(module, "reported_values", None)
    if report is None:
        return CheckResult("reported_values", True, "none reported")
    values = report()
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        return CheckResult(
            "reported_values",
            False,
            f"reported_values() must return dict[str, float], got {values!r}",
        )
    bad = {
        k: v
        for k, v in values.items()
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
    }
    if bad:
        return CheckResult("reported_values", False, f"not finite numbers: {bad}")
    return CheckResult(
        "reported_values", True, ", ".join(f"{k}={v:.4g}" for k, v in values.items()) or "empty"
    )


def _join(values: Sequence[int]) -> str:
    return ", ".join(map(str, values))


def feature_map_checks(
    spec: MechanismSpec, hparams: Mapping[str, Any], channel_counts: Sequence[int], seed: int
) -> list[tuple[str, Callable[[], CheckResult]]]:
    """(name, check) pairs for `check_mechanism` to run, each over every channel count."""
    counts = tuple(channel_counts)
    return [
        ("shape_dtype", lambda: _shapes(spec, counts, hparams, seed)),
        ("batch_independence", lambda: _batch_independence(spec, counts, hparams, seed)),
        ("gradients", lambda: _gradients(spec, counts, hparams, seed)),
        ("determinism", lambda: _determinism(spec, counts, hparams, seed)),
        ("flops", lambda: _flops(spec, counts, hparams, seed)),
        ("reported_values", lambda: _reported_values(spec, counts, hparams, seed)),
    ]
