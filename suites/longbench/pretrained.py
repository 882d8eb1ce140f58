"""One LongBench cell: a pretrained model with the mechanism installed reads every selected row and answers.

Rows run one at a time (no padding can change what a mechanism sees), each prompt built, truncated and
wrapped as pred.py does (`prompts`), decoded greedily up to the dataset's answer length, and scored with
eval.py's rules (`metrics`). Each row's prediction and score are kept in the cell's details, keyed by the
row's `_id`, beside the data's fingerprint, so any score can be recomputed from the official data.
"""
from __future__ import annotations

import math
from typing import Any

from attnbench.cell import CellOutcome
from attnbench.mechanism import MechanismSpec
from attnbench.mechanisms import dense
from attnbench.pretrained import model_shape
from attnbench.suite import CellContext
from attnbench.suites.longbench.data import Loaded, config_name
from attnbench.suites.longbench.metrics import (BUCKETS, DATASET2METRIC, bucket_scores, dataset_score,
                                                example_score, metric_version)
from attnbench.suites.longbench.prompts import MAX_NEW_TOKENS, STOP_AT_NEWLINE_DATASETS, prompt_ids
from attnbench.suites.longbench.suite import LongBenchTask


def generate(model: Any, tokenizer: Any, ids: list[int], max_new_tokens: int, stop_at_newline: bool = False) -> str:
    """The greedy continuation of one prompt, special tokens skipped. `stop_at_newline` ends it at the
    tokenizer's newline as well as at its end-of-sequence token, after at least one token (pred.py's samsum)."""
    import torch

    input_ids = torch.tensor([ids], device=model.device)
    options: dict[str, Any] = {"do_sample": False, "num_beams": 1, "max_new_tokens": max_new_tokens,
                               "attention_mask": torch.ones_like(input_ids)}
    if stop_at_newline:
        newline = tokenizer.encode("\n", add_special_tokens=False)
        options["eos_token_id"] = [t for t in (tokenizer.eos_token_id, *newline[-1:]) if t is not None]
        options["min_new_tokens"] = 1
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is not None:
        options["pad_token_id"] = pad
    with torch.inference_mode():
        output = model.generate(input_ids, **options)
    return tokenizer.decode(output[0, len(ids):], skip_special_tokens=True)


def prefill_costs(mechanism: MechanismSpec, hparams: dict[str, Any], shape: dict[str, int], bytes_per_element: int,
                  lengths: list[int]) -> tuple[dict[str, float], dict[str, float]]:
    """Per layer, averaged over the prompts read: the mechanism's prefill FLOPs by part and its KV cache
    (cost columns); and, summed over the prompts, its prefill FLOPs and KV kept as fractions of dense's."""
    heads, kv_heads, head_dim = shape["num_heads"], shape["num_kv_heads"], shape["head_dim"]
    flops = [mechanism.flops(1, n, heads, head_dim, causal=True, **hparams) for n in lengths]
    reference = sum(dense.flops(1, n, heads, head_dim).total for n in lengths)
    costs = {"flops_attention": sum(f.attention for f in flops) / len(lengths),
             "flops_selection": sum(f.selection for f in flops) / len(lengths),
             "flops_projections": sum(f.projections for f in flops) / len(lengths)}
    fractions = {"prefill_flop_fraction": sum(f.total for f in flops) / reference}
    if mechanism.cache is not None:
        caches = [mechanism.cache(n, kv_heads, head_dim, bytes_per_element=bytes_per_element, **hparams)
                  for n in lengths]
        kept = sum(dense.cache(n, kv_heads, head_dim, bytes_per_element=bytes_per_element).kv_stored for n in lengths)
        costs.update(kv_cache_bytes=sum(c.kv_stored for c in caches) / len(lengths),
                     kv_read_bytes_per_token=sum(c.kv_read_per_token for c in caches) / len(lengths),
                     state_bytes=sum(c.state for c in caches) / len(lengths))
        fractions["kv_kept_fraction"] = sum(c.kv_stored for c in caches) / kept
    return costs, fractions


def evaluate_pretrained(task: LongBenchTask, data: dict[str, Loaded], mechanism: MechanismSpec,
                        hparams: dict[str, Any], ctx: CellContext) -> CellOutcome:
    from attnbench.pretrained import install, load

    model, tokenizer = load(str(task.model), dtype=task.dtype, device=ctx.device)
    install(model, mechanism, hparams)
    chat = task.chat_template if task.chat_template is not None else bool(getattr(tokenizer, "chat_template", None))
    selected = {name: data[name].rows[:task.max_examples] for name in task.names}
    total, done = sum(len(rows) for rows in selected.values()), 0
    metrics: dict[str, float] = {}
    predictions: dict[str, Any] = {}
    lengths: list[int] = []
    for name, rows in selected.items():
        all_classes = rows[-1]["all_classes"]  # eval.py scores a file with its last row's classes
        records = []
        for row in rows:
            ids, truncated = prompt_ids(tokenizer, name, row, task.max_length, chat)
            pred = generate(model, tokenizer, ids, MAX_NEW_TOKENS[name], name in STOP_AT_NEWLINE_DATASETS)
            score = example_score(name, pred, row["answers"], all_classes)
            records.append({"_id": row["_id"], "pred": pred, "score": score, "length": row["length"],
                            "prompt_tokens": len(ids), "truncated": truncated})
            lengths.append(len(ids))
            done += 1
            ctx.on_step(done, total)
        scores = [record["score"] for record in records]
        metrics[name] = dataset_score(scores)
        if task.variant == "longbench_e":
            for bucket, value in bucket_scores(scores, [r["length"] for r in records]).items():
                if math.isfinite(value):
                    metrics[f"{name}/{bucket}"] = value
        predictions[name] = {"config": config_name(name, task.variant), "split": "test",
                             "metric": DATASET2METRIC[name].__name__, "source": data[name].source,
                             "fingerprint": data[name].fingerprint, "all_classes": all_classes, "rows": records}
    metrics["score"] = round(sum(metrics[name] for name in selected) / len(selected), 2)
    if task.variant == "longbench_e":
        for bucket in BUCKETS:
            values = [metrics[f"{name}/{bucket}"] for name in selected if f"{name}/{bucket}" in metrics]
            if values:
                metrics[f"score/{bucket}"] = round(sum(values) / len(values), 2)
    shape = model_shape(model)
    costs, fractions = prefill_costs(mechanism, hparams, shape, next(model.parameters()).element_size(), lengths)
    metrics.update(fractions)
    return CellOutcome(
        metrics=metrics,
        costs=costs,
        budget_used=float(sum(lengths)),
        flops=0,
        steps=0,
        params=sum(p.numel() for p in model.parameters()),
        details={"model": str(task.model), "dtype": task.dtype, "variant": task.variant,
                 "max_length": task.max_length, "chat_template": chat, "metric_version": metric_version(),
                 "prompts": "THUDM/LongBench config/dataset2prompt.json and dataset2maxlen.json @2e00731",
                 "tokens_read": sum(lengths), "model_shape": shape, "mechanism_hparams": hparams,
                 "predictions": predictions},
    )
