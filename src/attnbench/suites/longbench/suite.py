"""LongBench (THUDM, v1) as an attnbench suite: a pretrained model reads the official long-context
prompts with a `pretrained` mechanism installed as its attention, answers greedily, and is scored
with the official metrics.

A cell runs every selected dataset of one variant (`longbench`: 21 datasets; `longbench_e`: the 13
with length buckets) and stores the mean over datasets as `score`, one metric per dataset (and per
dataset and bucket for LongBench-E), and what the mechanism saved against dense attention at the
prompt lengths actually read: `prefill_flop_fraction` and `kv_kept_fraction`. Nothing is trained, so
cells are budgeted in the prompt tokens they read, never sharing a leaderboard table with trained
cells. A cell without a model, without the data or without the metric packages is stored as skipped,
with the reason.

Two backends evaluate a cell: `native` (THUDM's protocol, `pretrained`) and `lm-eval`
(lm-evaluation-harness's own longbench tasks, `lm_eval_backend`), whose variant differs from the
official one; the backend is part of the task's configuration and label, and its metric version
names lm-eval, so the two are never averaged together.
"""

from __future__ import annotations

from typing import Any, Mapping

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellSpec
from attnbench.errors import ConfigError, SkipCell
from attnbench.suite import BACKENDS, CellContext, Suite, Task
from attnbench.suites.longbench import lm_eval_tasks
from attnbench.suites.longbench.data import DataUnavailable, config_name, load
from attnbench.suites.longbench.metrics import INSTALL_HINT, missing_packages
from attnbench.suites.longbench.task import REFERENCE_MAX_LENGTH, TASKS, LongBenchTask


class LongBenchSuite(Suite):
    name = "longbench"
    description = (
        "LongBench (THUDM): 21 long-context tasks (QA, summarization, few-shot, synthetic, code) "
        "read by a pretrained model."
    )
    accepts = ("pretrained",)
    groups = ("long-context",)
    primary_metric = "score"
    higher_is_better = True
    version = "1"
    rank_per_task = True  # a task is one model read through one backend
    backends = BACKENDS
    settings_class = LongBenchTask
    profile_tasks = {profile: (task,) for profile, task in TASKS.items()}

    def make_task(self, config: Any, label: str) -> Task:
        """Validated first, then resolved (the model's window, the datasets of the variant)."""
        task = LongBenchTask.from_config(dict(config))
        task.validate()
        return task.resolved().as_task()

    def configure(self, task: Task, overrides: Mapping[str, Any]) -> Task:
        unknown = sorted(set(overrides) - self.settings("smoke"))
        if unknown:
            raise ConfigError(
                f"suite 'longbench' has no task setting {unknown[0]!r} "
                f"(settings: {', '.join(sorted(self.settings('smoke')))})"
            )
        return self.make_task({**task.config, **overrides}, task.label)

    def default_seeds(self, profile: str) -> int:
        return 1  # greedy decoding of fixed prompts: another seed repeats the same cell

    def default_budget(self, profile: str, task: Task) -> Budget:
        """The prompt tokens the planned rows may read: `max_length` each (before any chat
        wrapping)."""
        spec = LongBenchTask.from_config(task.config)
        return Budget(
            "tokens", float(spec.planned_rows() * (spec.max_length or REFERENCE_MAX_LENGTH))
        )

    def budget_for(self, profile: str, task: Task, override: Budget | None) -> Budget:
        """`--budget` limits training; LongBench trains nothing and always counts the tokens it
        reads."""
        return self.default_budget(profile, task)

    def run_cell(self, cell: CellSpec, mechanism: Any, ctx: CellContext) -> CellOutcome:
        task = LongBenchTask.from_config(cell.task_config)
        reasons = []
        if task.model is None:
            reasons.append("no --model (a local checkpoint folder or a cached hub id)")
        if task.backend == "lm-eval" and lm_eval_tasks.missing_modules():
            reasons.append(
                f"--backend lm-eval needs {', '.join(lm_eval_tasks.missing_modules())} "
                f"({lm_eval_tasks.INSTALL_HINT})"
            )
        missing = missing_packages()
        if missing:
            reasons.append(f"LongBench's metrics need {', '.join(missing)} ({INSTALL_HINT})")
        data = {}
        try:
            for name in task.names:
                data[name] = load(config_name(name, task.variant), task.data_dir)
        except DataUnavailable as exc:
            reasons.append(str(exc))
        if reasons:
            raise SkipCell("longbench: " + "; ".join(reasons))
        if task.backend == "lm-eval":
            from attnbench.suites.longbench.lm_eval_backend import evaluate_lm_eval

            return evaluate_lm_eval(task, data, mechanism, dict(cell.hparams), ctx)
        from attnbench.suites.longbench.pretrained import evaluate_pretrained

        return evaluate_pretrained(task, data, mechanism, dict(cell.hparams), ctx)
