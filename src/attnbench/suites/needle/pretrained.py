"""Pretrained mode: a Hugging Face causal LM reads RULER prompts built with its own tokenizer, with
the mechanism installed through transformers' attention interface, and answers by greedy decoding.

Prompts are RULER's input followed by its answer prefix, as plain text (RULER's base-model
template); each is sized by binary search so that its tokens plus `tokens_to_generate` fit the
grid's length. Predictions get RULER's post-processing and are scored with string_match_all. Nothing
is trained, so the budget is counted in prompt tokens read.
"""

from __future__ import annotations

from typing import Any

from attnbench.budget import Budget
from attnbench.cell import CellOutcome
from attnbench.mechanism import MechanismSpec
from attnbench.suite import CellContext
from attnbench.suites.needle.data import generate
from attnbench.suites.needle.metrics import postprocess_pred, string_match_all
from attnbench.suites.needle.scratch import EVAL_SEED_OFFSET, grid_metrics
from attnbench.suites.needle.task import NeedleTask
from attnbench.toolkit.pretrained import model_shape


def inference_costs(
    mechanism: MechanismSpec, hparams: dict[str, Any], model: Any, length: int
) -> dict[str, float]:
    """Per layer at the longest length: attention FLOPs of a prefill by part, and the KV cache
    kept and read."""
    shape = model_shape(model)
    flops = mechanism.flops(
        1, length, shape["num_heads"], shape["head_dim"], causal=True, **hparams
    )
    costs = {
        "flops_attention": flops.attention,
        "flops_selection": flops.selection,
        "flops_projections": flops.projections,
    }
    if mechanism.cache is not None:
        cache = mechanism.cache(
            length,
            shape["num_kv_heads"],
            shape["head_dim"],
            bytes_per_element=next(model.parameters()).element_size(),
            **hparams,
        )
        costs.update(
            kv_cache_bytes=cache.kv_stored,
            kv_read_bytes_per_token=cache.kv_read_per_token,
            state_bytes=cache.state,
        )
    return costs


def evaluate_pretrained(
    task: NeedleTask,
    mechanism: MechanismSpec,
    hparams: dict[str, Any],
    budget: Budget,
    seed: int,
    ctx: CellContext,
) -> CellOutcome:
    from attnbench.toolkit.pretrained import greedy_generate, install, load

    model, tokenizer = load(str(task.model), dtype=task.dtype, device=ctx.device)
    install(model, mechanism, hparams)
    scores: dict[tuple[int, float], float] = {}
    tokens_read = 0
    points = [(length, depth) for length in task.lengths for depth in task.depths]
    for index, (length, depth) in enumerate(points):
        records = generate(
            task.niah_task,
            count_tokens=tokenizer,
            max_seq_length=length,
            num_samples=task.samples_per_point,
            seed=EVAL_SEED_OFFSET + seed * 10_007 + index,
            tokens_to_generate=task.tokens_to_generate,
            depths=depth,
            essay_dir=task.essay_dir,
        )
        prompts = [record.input + record.answer_prefix for record in records]
        tokens_read += sum(record.length - task.tokens_to_generate for record in records)
        preds = greedy_generate(model, tokenizer, prompts, task.tokens_to_generate)
        scores[(length, depth)] = string_match_all(
            [postprocess_pred(p) for p in preds], [record.outputs for record in records]
        )
        ctx.on_step(index + 1, len(points))
    trained_length = getattr(model.config, "max_position_embeddings", None)
    metrics = grid_metrics(scores, trained_length or max(task.lengths))
    return CellOutcome(
        metrics=metrics,
        costs=inference_costs(mechanism, hparams, model, max(task.lengths)),
        budget_used=float(tokens_read),
        flops=0,
        steps=0,
        params=sum(p.numel() for p in model.parameters()),
        details={
            "model": str(task.model),
            "dtype": task.dtype,
            "tokens_read": tokens_read,
            "model_shape": model_shape(model),
            "mechanism_hparams": hparams,
            "max_position_embeddings": trained_length,
        },
    )
