"""One RewardBench cell: the pretrained model(s) with the mechanism installed give every selected
pair its two rewards; the per-pair rule, per-subset accuracy and the weighted sections score them
(`scoring`).

Each pair's record — id, subset, both rewards, result, tokens read, truncation and the mode's extras
— is kept in the cell's details beside the data's source and fingerprint, so every score can be
recomputed.
"""

from __future__ import annotations

import math
from typing import Any

from attnbench.cell import CellOutcome
from attnbench.errors import ConfigError
from attnbench.mechanism import MechanismSpec
from attnbench.suite import CellContext
from attnbench.suites.rewardbench.data import Loaded, first_rows
from attnbench.suites.rewardbench.rewards import ClassifierReward, ImplicitReward, JudgeReward
from attnbench.suites.rewardbench.scoring import (
    cell_metrics,
    metric_version,
    pair_result,
    subset_accuracy,
)
from attnbench.suites.rewardbench.smoke import RANDOM_MODEL, random_model
from attnbench.suites.rewardbench.task import RewardBenchTask
from attnbench.toolkit.prefill_costs import inference_outcome
from attnbench.toolkit.pretrained import install, load


def load_model(
    ref: str, task: RewardBenchTask, device: str, role: str = "model"
) -> tuple[Any, Any]:
    """A checkpoint (local folder or cached hub id) in the task's dtype, or the built-in
    `random:tiny` (float32), with the mode's head: a reward head for `classifier`, a language-model
    head otherwise."""
    classifier = task.mode == "classifier"
    if ref == RANDOM_MODEL:
        model, tokenizer = random_model(classifier, role)
        return model.to(device), tokenizer
    return load(
        ref,
        dtype=task.dtype,
        device=device,
        head="sequence-classification" if classifier else "causal-lm",
    )


def scorer_for(
    task: RewardBenchTask, mechanism: MechanismSpec, hparams: dict[str, Any], device: str
):
    """The mode's scorer, every model it reads with the mechanism installed as its attention."""
    model, tokenizer = load_model(str(task.model), task, device)
    install(model, mechanism, hparams)
    if task.mode == "classifier":
        return model, ClassifierReward(model, tokenizer, task.chat_template, task.max_length)
    if task.mode == "judge":
        return model, JudgeReward(
            model,
            tokenizer,
            task.chat_template,
            task.max_length,
            declare_segments="segments" in mechanism.defaults,
        )
    reference = None
    if task.reference is not None:
        reference, reference_tokenizer = load_model(task.reference, task, device, role="reference")
        if reference_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise ConfigError(
                f"reference {task.reference} does not share the tokenizer of model {task.model}"
            )
        install(reference, mechanism, hparams)
    return model, ImplicitReward(
        model, tokenizer, task.chat_template, task.max_length, reference, task.ref_free_norm
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def evaluate(
    task: RewardBenchTask,
    data: Loaded,
    mechanism: MechanismSpec,
    hparams: dict[str, Any],
    ctx: CellContext,
) -> CellOutcome:
    model, scorer = scorer_for(task, mechanism, hparams, ctx.device)
    rows = first_rows(data.rows, task.max_examples)
    pairs: list[dict[str, Any]] = []
    lengths: list[int] = []
    for done, row in enumerate(rows, start=1):
        scored = scorer.score(row)
        pairs.append(
            {
                "id": row["id"],
                "subset": row["subset"],
                "chosen_reward": _finite(scored.chosen),
                "rejected_reward": _finite(scored.rejected),
                "result": pair_result(scored.chosen, scored.rejected),
                "tokens": sum(scored.lengths),
                "truncated": scored.truncated,
                **scored.extra,
            }
        )
        lengths.extend(scored.lengths)
        ctx.on_step(done, len(rows))
    metrics = cell_metrics(subset_accuracy((p["subset"], p["result"]) for p in pairs))
    if task.mode == "judge":
        metrics["position_consistency"] = (
            100 * sum(p["position_consistent"] for p in pairs) / len(pairs)
        )
    details = {
        "model": str(task.model),
        "reference": task.reference,
        "mode": task.mode,
        "dtype": task.dtype,
        "max_length": task.max_length,
        "chat_template": scorer.chat,
        "ref_free_norm": (
            task.ref_free_norm if task.mode == "implicit" and task.reference is None else None
        ),
        "segments_declared": task.mode == "judge" and "segments" in mechanism.defaults,
        "metric_version": metric_version(),
        "data": {"source": data.source, "fingerprint": data.fingerprint},
        "truncated_pairs": sum(p["truncated"] for p in pairs),
        "pairs": pairs,
    }
    return inference_outcome(model, mechanism, hparams, lengths, metrics, details)
