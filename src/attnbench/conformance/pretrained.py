"""Conformance for the `pretrained` kind: the mechanism installed in a tiny random Llama.

The checks mirror the sequence ones where they apply to a training-free attention function:
output shape and dtype (called directly, prefill and one-token decode, grouped key/value heads,
batch 1 and odd lengths), no causal leak on the model's logits, batch independence,
determinism, declared FLOPs against FlopCounterMode, cache costs, and the distance of the
model's logits from its own SDPA attention, which `dense` must match.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from attnbench.conformance.common import (
    LEAK_LENGTH,
    LEAK_TOLERANCE,
    LENGTHS,
    CheckResult,
    flops_verdict,
)
from attnbench.errors import ConfigError
from attnbench.mechanism import MechanismSpec
from attnbench.toolkit.pretrained import install, require_transformers

HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB = 64, 2, 4, 2, 101
HEAD_DIM = HIDDEN // HEADS
REFERENCE, REFERENCE_TOLERANCE = "dense", 1e-5


def tiny_llama(seed: int, dtype: torch.dtype = torch.float32) -> Any:
    """A randomly initialised 2-layer Llama with grouped key/value heads, on its own SDPA
    attention."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=256,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.set_attn_implementation("sdpa")
    return model.to(dtype).eval()


def _tokens(batch: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def _logits(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens).logits


def _installed(
    spec: MechanismSpec, hparams: Mapping[str, Any], seed: int, dtype: torch.dtype
) -> Any:
    model = tiny_llama(seed, dtype)
    install(model, spec, dict(hparams))
    return model


def _shapes(spec, hparams, seed) -> CheckResult:
    attention = spec.build(**hparams)
    module = tiny_llama(seed).model.layers[0].self_attn
    generator = torch.Generator().manual_seed(seed)
    for dtype in (torch.float32, torch.float64):
        for batch in (1, 2):
            for q_len, kv_len in [(n, n) for n in LENGTHS] + [(1, LENGTHS[-1])]:
                query = torch.randn(batch, HEADS, q_len, HEAD_DIM, generator=generator, dtype=dtype)
                key, value = torch.randn(
                    2, batch, KV_HEADS, kv_len, HEAD_DIM, generator=generator, dtype=dtype
                )
                with torch.no_grad():
                    out, _ = attention(module, query, key, value, None, scaling=module.scaling)
                if out.shape != (batch, q_len, HEADS, HEAD_DIM) or out.dtype != dtype:
                    return CheckResult(
                        "shape_dtype",
                        False,
                        f"query {tuple(query.shape)} {dtype} gave output "
                        f"{tuple(out.shape)} {out.dtype}",
                    )
                if not torch.isfinite(out).all():
                    return CheckResult(
                        "shape_dtype", False, f"non-finite output for query {tuple(query.shape)}"
                    )
    model = _installed(spec, hparams, seed, torch.float32)
    logits = _logits(model, _tokens(1, LENGTHS[1], seed))
    if logits.shape != (1, LENGTHS[1], VOCAB) or not torch.isfinite(logits).all():
        return CheckResult(
            "shape_dtype",
            False,
            f"the model gave logits {tuple(logits.shape)}, finite: "
            f"{bool(torch.isfinite(logits).all())}",
        )
    return CheckResult(
        "shape_dtype",
        True,
        f"batch 1-2, lengths {', '.join(map(str, LENGTHS))} and a one-token "
        f"decode, {HEADS} query / {KV_HEADS} key-value heads, float32/64",
    )


def _causal_leak(spec, hparams, seed) -> CheckResult:
    """Perturb every suffix of the tokens; the logits at positions <= t must not move.

    Row t of one batch holds the prompt with the tokens after t replaced (one forward pass instead
    of one per t; batch independence is checked on its own).
    """
    model = _installed(spec, hparams, seed, torch.float64)
    tokens, noise = _tokens(1, LEAK_LENGTH, seed), _tokens(1, LEAK_LENGTH, seed + 1)
    keep = torch.arange(LEAK_LENGTH)[None, :] <= torch.arange(LEAK_LENGTH - 1)[:, None]
    base, changed = _logits(model, tokens), _logits(model, torch.where(keep, tokens, noise))
    for t in range(LEAK_LENGTH - 1):
        moved = (changed[t, : t + 1] - base[0, : t + 1]).abs()
        limit = LEAK_TOLERANCE * (1 + base[0, : t + 1].abs())
        if (moved > limit).any():
            first = int((moved > limit).any(-1).nonzero()[0, 0])
            return CheckResult(
                "causal_leak",
                False,
                f"logits at position {first} changed when tokens after "
                f"position {t} changed (max {float(moved.max()):.2e})",
            )
    return CheckResult("causal_leak", True, f"every position of a length-{LEAK_LENGTH} prompt")


def _batch_independence(spec, hparams, seed) -> CheckResult:
    model = _installed(spec, hparams, seed, torch.float64)
    tokens = _tokens(2, 9, seed)
    alone, together = _logits(model, tokens[:1]), _logits(model, tokens)[:1]
    if not torch.allclose(alone, together, rtol=1e-9, atol=1e-9):
        return CheckResult(
            "batch_independence", False, "an example's logits depend on another example"
        )
    return CheckResult("batch_independence", True)


def _determinism(spec, hparams, seed) -> CheckResult:
    tokens = _tokens(2, 17, seed)
    first, second = (
        _logits(_installed(spec, hparams, seed, torch.float32), tokens) for _ in range(2)
    )
    if not torch.equal(first, second):
        return CheckResult("determinism", False, "the same seed and prompt gave different logits")
    return CheckResult("determinism", True)


def _reference(spec, hparams, seed) -> CheckResult:
    """Distance from the model's own SDPA attention; `dense` is that attention and must match it."""
    tokens = _tokens(2, LEAK_LENGTH, seed)
    own = _logits(tiny_llama(seed), tokens)
    distance = float(
        (_logits(_installed(spec, hparams, seed, torch.float32), tokens) - own).abs().max()
    )
    detail = f"max |logits - sdpa logits| = {distance:.2e} (float32, length {LEAK_LENGTH})"
    if spec.name == REFERENCE and distance > REFERENCE_TOLERANCE:
        return CheckResult("reference", False, f"{detail} exceeds {REFERENCE_TOLERANCE:g}")
    return CheckResult("reference", True, detail)


def _flops(spec, hparams, seed) -> CheckResult:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    attention = spec.build(**hparams)
    module = tiny_llama(seed).model.layers[0].self_attn
    batch, length = 2, LEAK_LENGTH
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(batch, HEADS, length, HEAD_DIM, generator=generator)
    key, value = torch.randn(2, batch, KV_HEADS, length, HEAD_DIM, generator=generator)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        attention(module, query, key, value, None, scaling=module.scaling)
    measured = counter.get_total_flops()
    declared = spec.flops(batch, length, HEADS, HEAD_DIM, causal=True, **hparams)
    return flops_verdict(spec, declared.total, measured)


def _cache(spec, hparams) -> CheckResult:
    if spec.cache is None:
        return CheckResult("cache", True, "no cache cost declared")
    values = spec.cache(LEAK_LENGTH, KV_HEADS, HEAD_DIM, **hparams).as_dict()
    if any(not isinstance(v, int) or v < 0 for v in values.values()):
        return CheckResult(
            "cache", False, f"cache costs must be non-negative integers, got {values}"
        )
    return CheckResult("cache", True, ", ".join(f"{k}={v:,}" for k, v in values.items()))


def pretrained_checks(
    spec: MechanismSpec, hparams: Mapping[str, Any], seed: int
) -> list[tuple[str, Callable[[], CheckResult]]]:
    """(name, check) pairs for `check_mechanism` to run; one failing check when transformers is
    missing."""
    try:
        require_transformers()
    except ConfigError as exc:
        missing = CheckResult("transformers", False, str(exc))
        return [("transformers", lambda: missing)]
    return [
        ("shape_dtype", lambda: _shapes(spec, hparams, seed)),
        ("causal_leak", lambda: _causal_leak(spec, hparams, seed)),
        ("batch_independence", lambda: _batch_independence(spec, hparams, seed)),
        ("determinism", lambda: _determinism(spec, hparams, seed)),
        ("reference", lambda: _reference(spec, hparams, seed)),
        ("flops", lambda: _flops(spec, hparams, seed)),
        ("cache", lambda: _cache(spec, hparams)),
    ]
