"""One LongBench cell: a pretrained model with the mechanism installed reads every selected row and
answers.

Rows run one at a time (no padding can change what a mechanism sees), each prompt built, truncated
and wrapped as pred.py does (`prompts`), decoded greedily up to the dataset's answer length, and
scored with eval.py's rules (`metrics`). Each row's prediction and score are kept in the cell's
details, keyed by the row's `_id`, beside the data's fingerprint, so any score can be recomputed
from the official data.
"""

from __future__ import annotations

import math
from typing import Any

from attnbench.cell import CellOutcome
from attnbench.mechanism import MechanismSpec
from attnbench.suite import CellContext
from attnbench.suites.longbench.data import Loaded, config_name
from attnbench.suites.longbench.metrics import (
    DATASET2METRIC,
    bucket_scores,
    dataset_score,
    example_score,
    metric_version,
    overall_scores,
)
from attnbench.suites.longbench.prompts import MAX_NEW_TOKENS, STOP_AT_NEWLINE_DATASETS, prompt_ids
from attnbench.suites.longbench.task import LongBenchTask
from attnbench.toolkit.prefill_costs import inference_outcome


def generate(
    model: Any, tokenizer: Any, ids: list[int], max_new_tokens: int, stop_at_newline: bool = False
) -> str:
    """The greedy continuation of one prompt, special tokens skipped. `stop_at_newline` ends it at
    the tokenizer's newline as well as at its end-of-sequence token, after at least one token
    (pred.py's samsum).
    """
    import torch

    input_ids = torch.tensor([ids], device=model.device)
    options: dict[str, Any] = {
        "do_sample": False,
        "num_beams": 1,
        "max_new_tokens": max_new_tokens,
        "attention_mask": torch.ones_like(input_ids),
    }
    if stop_at_newline:
        newline = tokenizer.encode("\n", add_special_tokens=False)
        options["eos_token_id"] = [
            t for t in (tokenizer.eos_token_id, *newline[-1:]) if t is not None
        ]
        options["min_new_tokens"] = 1
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is not None:
        options["pad_token_id"] = pad
    with torch.inference_mode():
        output = model.generate(input_ids, **options)
    return tokenizer.decode(output[0, len(ids) :], skip_special_tokens=True)


def evaluate_pretrained(
    task: LongBenchTask,
    data: dict[str, Loaded],
    mechanism: MechanismSpec,
    hparams: dict[str, Any],
    ctx: CellContext,
) -> CellOutcome:
    from attnbench.toolkit.pretrained import install, load

    model, tokenizer = load(str(task.model), dtype=task.dtype, device=ctx.device)
    install(model, mechanism, hparams)
    chat = (
        task.chat_template
        if task.chat_template is not None
        else bool(getattr(tokenizer, "chat_template", None))
    )
    selected = {name: data[name].rows[: task.max_examples] for name in task.names}
    total, done = sum(len(rows) for rows in selected.values()), 0
    metrics: dict[str, float] = {}
    predictions: dict[str, Any] = {}
    lengths: list[int] = []
    for name, rows in selected.items():
        all_classes = rows[-1]["all_classes"]  # eval.py scores a file with its last row's classes
        records = []
        for row in rows:
            ids, truncated = prompt_ids(tokenizer, name, row, task.max_length, chat)
            pred = generate(
                model, tokenizer, ids, MAX_NEW_TOKENS[name], name in STOP_AT_NEWLINE_DATASETS
            )
            score = example_score(name, pred, row["answers"], all_classes)
            records.append(
                {
                    "_id": row["_id"],
                    "pred": pred,
                    "score": score,
                    "length": row["length"],
                    "prompt_tokens": len(ids),
                    "truncated": truncated,
                }
            )
            lengths.append(len(ids))
            done += 1
            ctx.on_step(done, total)
        scores = [record["score"] for record in records]
        metrics[name] = dataset_score(scores)
        if task.variant == "longbench_e":
            for bucket, value in bucket_scores(scores, [r["length"] for r in records]).items():
                if math.isfinite(value):
                    metrics[f"{name}/{bucket}"] = value
        predictions[name] = {
            "config": config_name(name, task.variant),
            "split": "test",
            "metric": DATASET2METRIC[name].__name__,
            "source": data[name].source,
            "fingerprint": data[name].fingerprint,
            "all_classes": all_classes,
            "rows": records,
        }
    details = {
        "model": str(task.model),
        "dtype": task.dtype,
        "variant": task.variant,
        "max_length": task.max_length,
        "chat_template": chat,
        "metric_version": metric_version(),
        "prompts": "THUDM/LongBench config/dataset2prompt.json and dataset2maxlen.json @2e00731",
        "predictions": predictions,
    }
    metrics.update(overall_scores(metrics, list(selected), task.variant))
    return inference_outcome(model, mechanism, hparams, lengths, metrics, details)
