"""What a training-free cell cost: the mechanism's prefill FLOPs and KV cache against `dense`
attention at the prompt lengths the model really read, and the `CellOutcome` every pretrained-model
suite returns.

One place, so that LongBench (both backends) and RewardBench price a prompt the same way and their
`prefill_flop_fraction` / `kv_kept_fraction` columns mean one thing on the leaderboard.
"""

from __future__ import annotations

from typing import Any, Mapping

from attnbench.cell import CellOutcome
from attnbench.mechanism import MechanismSpec


def prefill_costs(
    mechanism: MechanismSpec,
    hparams: Mapping[str, Any],
    shape: Mapping[str, int],
    bytes_per_element: int,
    lengths: list[int],
) -> tuple[dict[str, float], dict[str, float]]:
    """Per layer, averaged over the prompts read: the mechanism's prefill FLOPs by part and its KV
    cache (cost columns); and, summed over the prompts, its prefill FLOPs and KV kept as fractions
    of dense's.
    """
    from attnbench.mechanisms import dense

    heads, kv_heads, head_dim = shape["num_heads"], shape["num_kv_heads"], shape["head_dim"]
    flops = [mechanism.flops(1, n, heads, head_dim, causal=True, **hparams) for n in lengths]
    reference = sum(dense.flops(1, n, heads, head_dim).total for n in lengths)
    costs = {
        "flops_attention": sum(f.attention for f in flops) / len(lengths),
        "flops_selection": sum(f.selection for f in flops) / len(lengths),
        "flops_projections": sum(f.projections for f in flops) / len(lengths),
    }
    fractions = {"prefill_flop_fraction": sum(f.total for f in flops) / reference}
    if mechanism.cache is not None:
        caches = [
            mechanism.cache(n, kv_heads, head_dim, bytes_per_element=bytes_per_element, **hparams)
            for n in lengths
        ]
        kept = sum(
            dense.cache(n, kv_heads, head_dim, bytes_per_element=bytes_per_element).kv_stored
            for n in lengths
        )
        costs.update(
            kv_cache_bytes=sum(c.kv_stored for c in caches) / len(lengths),
            kv_read_bytes_per_token=sum(c.kv_read_per_token for c in caches) / len(lengths),
            state_bytes=sum(c.state for c in caches) / len(lengths),
        )
        fractions["kv_kept_fraction"] = sum(c.kv_stored for c in caches) / kept
    return costs, fractions


def inference_outcome(
    model: Any,
    mechanism: MechanismSpec,
    hparams: Mapping[str, Any],
    lengths: list[int],
    metrics: dict[str, float],
    details: dict[str, Any],
) -> CellOutcome:
    """The outcome of a cell that trained nothing: its metrics with the cost fractions, budgeted in
    the prompt tokens read, and the model's shape and the mechanism's settings beside the suite's
    details.
    """
    from attnbench.toolkit.pretrained import model_shape

    shape = model_shape(model)
    costs, fractions = prefill_costs(
        mechanism, hparams, shape, next(model.parameters()).element_size(), lengths
    )
    return CellOutcome(
        metrics={**metrics, **fractions},
        costs=costs,
        budget_used=float(sum(lengths)),
        flops=0,
        steps=0,
        params=sum(p.numel() for p in model.parameters()),
        details={
            **details,
            "tokens_read": sum(lengths),
            "model_shape": shape,
            "mechanism_hparams": dict(hparams),
        },
    )
