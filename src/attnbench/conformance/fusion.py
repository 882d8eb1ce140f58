"""Conformance for the `fusion` kind: `module(x (B, Lq, D), context (B, Lk, D), masks) -> (B, Lq,
D)`.

A fusion module that reads padding scores on how much padding an example has; one that ignores the
image answers from the question alone (the shortcut Med-VQA papers warn about) and one that ignores
the question cannot condition on it. So beside the checks every kind runs (shape and dtype, batch
independence, gradients, determinism, FLOPs against FlopCounterMode) this kind checks that masks are
honoured (padded context tokens never change an output; padded query tokens never change an output
at a real query position; no masks equals all-real masks; an example's real outputs equal those of
the same example with its padding cut off, so a mask built over the padded length, such as a causal
order whose last query is padding, fails) and that both inputs reach the output. Shapes include Lq
or Lk of 1, Lq > Lk and Lq < Lk, and an example with a single real context token.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from attnbench.conformance.common import CheckResult, build_seeded, flops_verdict, output_mismatch
from attnbench.mechanism import FusionMasks, MechanismSpec

SHAPES = ((1, 1), (7, 33), (33, 5))  # (Lq, Lk)
FLOP_SHAPES = ((7, 33), (12, 5))
TOLERANCE = 1e-9


def _tokens(
    batch: int, length: int, dim: int, seed: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, dim, generator=generator, dtype=torch.float64).to(dtype)


def _padding(batch: int, length: int) -> torch.Tensor:
    """Example 0 all real; each later example keeps a shorter prefix, at least one token."""
    keep = [max(1, length - (length * i) // batch) if i else length for i in range(batch)]
    if batch > 1:
        keep[-1] = 1 if length > 1 else keep[-1]
    return torch.arange(length)[None, :] < torch.tensor(keep)[:, None]


def _masks(batch: int, q_len: int, kv_len: int) -> FusionMasks:
    return FusionMasks(_padding(batch, q_len), _padding(batch, kv_len))


def _shapes(spec, dim, hparams, seed) -> CheckResult:
    for dtype in (torch.float32, torch.float64):
        module = build_seeded(spec, dim, hparams, seed, dtype)
        for batch in (1, 3):
            for q_len, kv_len in SHAPES:
                x, context = (
                    _tokens(batch, q_len, dim, seed, dtype),
                    _tokens(batch, kv_len, dim, seed + 1, dtype),
                )
                for masks in (None, _masks(batch, q_len, kv_len)):
                    with torch.no_grad():
                        out = module(x, context, masks)
                    where = f" with context {tuple(context.shape)}{' and masks' if masks else ''}"
                    failure = output_mismatch(x, out, where)
                    if failure:
                        return CheckResult("shape_dtype", False, failure.detail + where)
    shapes = ", ".join(f"{q}x{k}" for q, k in SHAPES)
    return CheckResult(
        "shape_dtype", True, f"batch 1 and 3, Lq x Lk {shapes}, float32/64, with and without masks"
    )


def _masks_honoured(spec, dim, hparams, seed) -> CheckResult:
    module = build_seeded(spec, dim, hparams, seed, torch.float64)
    batch, q_len, kv_len = 3, 9, 13
    x, context = (
        _tokens(batch, q_len, dim, seed, torch.float64),
        _tokens(batch, kv_len, dim, seed + 1, torch.float64),
    )
    masks = _masks(batch, q_len, kv_len)
    noise_x, noise_c = (
        _tokens(batch, q_len, dim, seed + 2, torch.float64),
        _tokens(batch, kv_len, dim, seed + 3, torch.float64),
    )
    with torch.no_grad():
        base = module(x, context, masks)
        moved_context = module(x, torch.where(masks.context[..., None], context, noise_c), masks)
        moved_x = module(torch.where(masks.x[..., None], x, noise_x), context, masks)
        unmasked = module(x, context, None)
        all_real = module(
            x,
            context,
            FusionMasks(
                torch.ones(batch, q_len, dtype=torch.bool),
                torch.ones(batch, kv_len, dtype=torch.bool),
            ),
        )
    real = masks.x[..., None]
    if not _close(base, moved_context):
        return CheckResult(
            "masks_honoured",
            False,
            f"changing padded context tokens moved an output (max {_gap(base, moved_context):.2e})",
        )
    if not _close(base * real, moved_x * real):
        return CheckResult(
            "masks_honoured",
            False,
            "changing padded query tokens moved an output at a real "
            f"query position (max {_gap(base * real, moved_x * real):.2e})",
        )
    if not _close(unmasked, all_real):
        return CheckResult(
            "masks_honoured", False, "masks=None differs from masks marking every token real"
        )
    for row in range(
        1, batch
    ):  # the same example without its padding: the real outputs must not move
        q_real, kv_real = int(masks.x[row].sum()), int(masks.context[row].sum())
        with torch.no_grad():
            alone = module(x[row : row + 1, :q_real], context[row : row + 1, :kv_real], None)[0]
        if not _close(base[row, :q_real], alone):
            return CheckResult(
                "masks_honoured",
                False,
                "an example's real outputs depend on how much padding "
                f"follows them (max {_gap(base[row, :q_real], alone):.2e} "
                "against the same example unpadded)",
            )
    return CheckResult(
        "masks_honoured",
        True,
        "padded context and query tokens change no real output, nor does their number",
    )


def _both_inputs_used(spec, dim, hparams, seed) -> CheckResult:
    """Changing the real context, or the real query tokens, must move the output at real
    positions."""
    module = build_seeded(spec, dim, hparams, seed, torch.float64)
    x, context = (
        _tokens(2, 6, dim, seed, torch.float64),
        _tokens(2, 10, dim, seed + 1, torch.float64),
    )
    with torch.no_grad():
        base = module(x, context, None)
        other_context = module(x, _tokens(2, 10, dim, seed + 4, torch.float64), None)
        other_x = module(_tokens(2, 6, dim, seed + 5, torch.float64), context, None)
    if _close(base, other_context):
        return CheckResult(
            "inputs_used", False, "the output does not depend on the context (the image)"
        )
    if _close(base, other_x):
        return CheckResult("inputs_used", False, "the output does not depend on x (the question)")
    return CheckResult("inputs_used", True, "the output depends on both x and the context")


def _batch_independence(spec, dim, hparams, seed) -> CheckResult:
    module = build_seeded(spec, dim, hparams, seed, torch.float64)
    x, context = (
        _tokens(2, 5, dim, seed, torch.float64),
        _tokens(2, 8, dim, seed + 1, torch.float64),
    )
    changed_x = torch.cat([x[:1], _tokens(1, 5, dim, seed + 7, torch.float64)])
    changed_c = torch.cat([context[:1], _tokens(1, 8, dim, seed + 8, torch.float64)])
    with torch.no_grad():
        base, moved = module(x, context, None)[0], module(changed_x, changed_c, None)[0]
    if not _close(base, moved):
        return CheckResult(
            "batch_independence",
            False,
            f"example 0's output changed when example 1 changed (max {_gap(base, moved):.2e})",
        )
    return CheckResult("batch_independence", True)


def _gradients(spec, dim, hparams, seed) -> CheckResult:
    module = build_seeded(spec, dim, hparams, seed)
    x = _tokens(2, 7, dim, seed).requires_grad_(True)
    context = _tokens(2, 11, dim, seed + 1).requires_grad_(True)
    module(x, context, _masks(2, 7, 11)).square().sum().backward()
    missing = [
        name
        for name, p in module.named_parameters()
        if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))
    ]
    missing += [
        name
        for name, t in (("x", x), ("context", context))
        if t.grad is None or not bool(t.grad.abs().sum() > 0)
    ]
    if missing:
        return CheckResult("gradients", False, f"no gradient reaches {', '.join(missing)}")
    finite = all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)
    if not finite or not torch.isfinite(context.grad).all():
        return CheckResult("gradients", False, "non-finite gradients with padded inputs")
    return CheckResult(
        "gradients", True, f"{sum(1 for _ in module.parameters())} parameters, x and context"
    )


def _determinism(spec, dim, hparams, seed) -> CheckResult:
    outputs = []
    for _ in range(2):
        module = build_seeded(spec, dim, hparams, seed)
        with torch.no_grad():
            outputs.append(
                module(_tokens(2, 6, dim, seed), _tokens(2, 9, dim, seed + 1), _masks(2, 6, 9))
            )
    if not torch.equal(*outputs):
        return CheckResult("determinism", False, "the same seed gave different modules or outputs")
    return CheckResult("determinism", True)


def _flops(spec, dim, hparams, seed) -> CheckResult:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    module, batch, details = build_seeded(spec, dim, hparams, seed), 2, []
    for q_len, kv_len in FLOP_SHAPES:
        with (
            torch.no_grad(),
            sdpa_kernel(SDPBackend.MATH),
            FlopCounterMode(display=False) as counter,
        ):
            module(
                _tokens(batch, q_len, dim, seed),
                _tokens(batch, kv_len, dim, seed + 1),
                _masks(batch, q_len, kv_len),
            )
        declared = spec.flops(batch, q_len, kv_len, dim, **hparams)
        verdict = flops_verdict(spec, declared.total, counter.get_total_flops())
        if not verdict.passed:
            return CheckResult("flops", False, f"{verdict.detail} (Lq {q_len}, Lk {kv_len})")
        details.append(
            f"{q_len}x{kv_len}: {declared.total:,}" if spec.flops_exact else verdict.detail
        )
    return CheckResult(
        "flops", True, ("declared = measured, " if spec.flops_exact else "") + "; ".join(details)
    )


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=TOLERANCE, atol=TOLERANCE)


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def fusion_checks(
    spec: MechanismSpec, hparams: Mapping[str, Any], dim: int, seed: int
) -> list[tuple[str, Callable[[], CheckResult]]]:
    """(name, check) pairs for `check_mechanism` to run at model width `dim`."""
    return [
        ("shape_dtype", lambda: _shapes(spec, dim, hparams, seed)),
        ("masks_honoured", lambda: _masks_honoured(spec, dim, hparams, seed)),
        ("inputs_used", lambda: _both_inputs_used(spec, dim, hparams, seed)),
        ("batch_independence", lambda: _batch_independence(spec, dim, hparams, seed)),
        ("gradients", lambda: _gradients(spec, dim, hparams, seed)),
        ("determinism", lambda: _determinism(spec, dim, hparams, seed)),
        ("flops", lambda: _flops(spec, dim, hparams, seed)),
    ]
