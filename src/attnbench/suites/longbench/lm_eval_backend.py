"""One LongBench cell through lm-eval (`--backend lm-eval`): lm-eval's own tasks, run by its Hugging
Face wrapper.

The model is loaded and the mechanism installed as for the native backend
(`attnbench.toolkit.pretrained`), then handed to lm-eval's HFLM as an instance, one prompt at a time
(batch size 1, so no padding changes what a mechanism sees). Each selected dataset is one lm-eval
evaluation of a task from the cell's task folder (`lm_eval_tasks`), so progress is reported per
dataset. HFLM cuts a long prompt to its last `length - max_gen_toks` tokens; its length is set per
task so that it keeps `max_length` prompt tokens, as the native backend does (lm-eval's answer
lengths are THUDM's, `prompts.MAX_NEW_TOKENS`; each result records the task's own). Prompt lengths
are measured at the model's first forward call of each generation and priced as the native backend
prices them. Scores are stored in the native scale (0-100, two decimals; lm-eval reports 0-1), each
row's prediction too.
"""

from __future__ import annotations

import logging
import math
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from attnbench.cell import CellOutcome
from attnbench.mechanism import MechanismSpec
from attnbench.suite import CellContext
from attnbench.suites.longbench.data import Loaded, config_name
from attnbench.suites.longbench.lm_eval_tasks import VARIANT_NOTE, metric_version, write_task
from attnbench.suites.longbench.metrics import bucket_scores, overall_scores
from attnbench.suites.longbench.prompts import MAX_NEW_TOKENS
from attnbench.suites.longbench.task import LongBenchTask

RESULT_KEY = "score,none"  # lm-eval's `score` metric under its default (no) filter


@contextmanager
def prefill_lengths(model: Any) -> Iterator[list[int]]:
    """The prompt length of every generation the model starts: its forward calls on an empty
    cache."""
    lengths: list[int] = []

    def record(module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        cache = kwargs.get("past_key_values", kwargs.get("cache"))  # transformers 4 / 5 name it so
        if ids is not None and (cache is None or cache.get_seq_length() == 0):
            lengths.append(int(ids.shape[1]))

    handle = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        yield lengths
    finally:
        handle.remove()


@contextmanager
def quiet() -> Iterator[None]:
    """lm-eval's per-task warnings (an instance passed as `pretrained`, ...) and the datasets
    progress bars of each task's JSON file off the run's output."""
    import datasets

    logger = logging.getLogger("lm_eval")
    level, bars = logger.level, datasets.is_progress_bar_enabled()
    logger.setLevel(logging.ERROR)
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        logger.setLevel(level)
        if bars:
            datasets.enable_progress_bars()


def collect(
    name: str, task: str, output: dict[str, Any], variant: str
) -> tuple[dict[str, float], list[dict]]:
    """A dataset's metrics in the native names and scale, and its rows (official `_id`, prediction,
    score) from lm-eval's results and logged samples."""
    samples = sorted(output["samples"][task], key=lambda sample: sample["doc_id"])
    rows = [
        {
            "_id": s["doc"]["_id"],
            "pred": s["filtered_resps"][0],
            "score": float(s["score"]),
            "length": s["doc"]["length"],
        }
        for s in samples
    ]
    metrics = {name: round(100 * float(output["results"][task][RESULT_KEY]), 2)}
    if variant == "longbench_e":
        for bucket, value in bucket_scores(
            [r["score"] for r in rows], [r["length"] for r in rows]
        ).items():
            if math.isfinite(value):
                metrics[f"{name}/{bucket}"] = value
    return metrics, rows


def evaluate_lm_eval(
    task: LongBenchTask,
    data: dict[str, Loaded],
    mechanism: MechanismSpec,
    hparams: dict[str, Any],
    ctx: CellContext,
) -> CellOutcome:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from attnbench.toolkit.prefill_costs import inference_outcome
    from attnbench.toolkit.pretrained import install, load

    model, tokenizer = load(str(task.model), dtype=task.dtype, device=ctx.device)
    key = install(model, mechanism, hparams)
    chat = (
        task.chat_template
        if task.chat_template is not None
        else bool(getattr(tokenizer, "chat_template", None))
    )
    selected = {name: data[name].rows[: task.max_examples] for name in task.names}
    total, done = sum(len(rows) for rows in selected.values()), 0
    metrics: dict[str, float] = {}
    predictions: dict[str, Any] = {}
    tasks: dict[str, Any] = {}
    lengths: list[int] = []
    with (
        tempfile.TemporaryDirectory(prefix="attnbench-lm-eval-") as tmp,
        quiet(),
        prefill_lengths(model) as seen,
    ):
        names = {
            name: write_task(Path(tmp), config_name(name, task.variant), rows)
            for name, rows in selected.items()
        }
        manager = TaskManager(include_path=tmp, include_defaults=False)
        for name, rows in selected.items():
            # HFLM keeps `length - max_gen_toks` prompt tokens; lm-eval's answer lengths are THUDM's
            lm = HFLM(
                pretrained=model,
                tokenizer=tokenizer,
                batch_size=1,
                max_length=task.max_length + MAX_NEW_TOKENS[name],
            )
            first = len(seen)
            output = simple_evaluate(
                model=lm,
                tasks=[names[name]],
                task_manager=manager,
                apply_chat_template=chat,
                bootstrap_iters=0,
                log_samples=True,
            )
            found, records = collect(name, names[name], output, task.variant)
            metrics.update(found)
            lengths.extend(seen[first:])
            predictions[name] = {
                "config": config_name(name, task.variant),
                "split": "test",
                "lm_eval_task": names[name],
                "source": data[name].source,
                "fingerprint": data[name].fingerprint,
                "rows": records,
            }
            generation = output["configs"][names[name]]["generation_kwargs"]
            tasks[names[name]] = {
                "version": output["versions"][names[name]],
                "max_gen_toks": generation["max_gen_toks"],
                "until": generation.get("until") or [],
                "prompt_tokens": seen[first:],
            }
            done += len(rows)
            ctx.on_step(done, total)
    details = {
        "backend": "lm-eval",
        "variant_note": VARIANT_NOTE,
        "metric_version": metric_version(),
        "model": str(task.model),
        "dtype": task.dtype,
        "variant": task.variant,
        "max_length": task.max_length,
        "chat_template": chat,
        "attention": key,
        "lm_eval_tasks": tasks,
        "predictions": predictions,
    }
    metrics.update(overall_scores(metrics, list(selected), task.variant))
    return inference_outcome(model, mechanism, hparams, lengths, metrics, details)
