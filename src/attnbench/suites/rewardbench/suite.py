"""RewardBench (AllenAI, v1) as an attnbench suite: a pretrained reward model or judge, with a
`pretrained` mechanism installed as its attention, scores the chosen and the rejected response of
each of the 2,985 pairs of the `filtered` split; the official per-pair rule, per-subset accuracy and
weighted sections score it.

A cell stores `score` (the mean of the four sections), `section/<Chat|Chat Hard|Safety|Reasoning>`
and `subset/<name>` (percent), the sections under the weights used before 2024-09-10 as
`2024-09-10-before/...`, what the mechanism saved against dense attention (`prefill_flop_fraction`,
`kv_kept_fraction`), and every pair's rewards and result. Modes: `classifier` (a
sequence-classification reward model), `implicit` (DPO log-probabilities, with or without a
`reference` model) and `judge` (side-by-side verdicts; pine is told the two responses' spans).
Nothing is trained: a cell is budgeted in the tokens it reads. A cell without a model or without the
data is stored as skipped, with the reason.
"""

from __future__ import annotations

from typing import Any, Mapping

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellSpec
from attnbench.errors import ConfigError, SkipCell
from attnbench.suite import CellContext, Suite, Task
from attnbench.suites.rewardbench.smoke import RANDOM_MODEL
from attnbench.suites.rewardbench.task import TASKS, RewardBenchTask


class RewardBenchSuite(Suite):
    name = "rewardbench"
    description = (
        "RewardBench (AllenAI, v1): 2,985 chosen/rejected pairs in 23 subsets, scored by a"
        " pretrained reward model or judge; Chat, Chat Hard, Safety, Reasoning."
    )
    accepts = ("pretrained",)
    groups = ("judge",)
    primary_metric = "score"
    higher_is_better = True
    version = "1"
    rank_per_task = True  # a task is one model (and reference) in one mode
    settings_class = RewardBenchTask
    profile_tasks = {profile: (task,) for profile, task in TASKS.items()}

    def configure(self, task: Task, overrides: Mapping[str, Any]) -> Task:
        unknown = sorted(set(overrides) - self.settings("smoke"))
        if unknown:
            raise ConfigError(
                f"suite 'rewardbench' has no task setting {unknown[0]!r} "
                f"(settings: {', '.join(sorted(self.settings('smoke')))})"
            )
        overrides = dict(overrides)
        if (
            task.config.get("data") == "synthetic"
            and "data" not in overrides
            and overrides.get("model") not in (None, RANDOM_MODEL)
        ):
            overrides["data"] = (
                "hub"  # made-up rows only go with the random model: a real one reads RewardBench
            )
        return self.make_task({**task.config, **overrides}, task.label)

    def default_seeds(self, profile: str) -> int:
        return 1  # deterministic scoring of fixed pairs: another seed repeats the same cell

    def default_budget(self, profile: str, task: Task) -> Budget:
        """The tokens the planned pairs may read: `max_length` per sequence."""
        spec = RewardBenchTask.from_config(task.config)
        return Budget(
            "tokens", float(spec.planned_rows() * spec.sequences_per_pair * spec.max_length)
        )

    def budget_for(self, profile: str, task: Task, override: Budget | None) -> Budget:
        """`--budget` limits training; RewardBench trains nothing and always counts the tokens it
        reads."""
        return self.default_budget(profile, task)

    def run_cell(self, cell: CellSpec, mechanism: Any, ctx: CellContext) -> CellOutcome:
        from attnbench.suites.rewardbench.data import DataUnavailable, load

        task = RewardBenchTask.from_config(cell.task_config)
        reasons = []
        if task.model is None:
            reasons.append(
                "no --model (a local checkpoint folder or a cached hub id of a reward model)"
            )
        try:
            data = load(task.data)
        except DataUnavailable as exc:
            reasons.append(str(exc))
        if reasons:
            raise SkipCell("rewardbench: " + "; ".join(reasons))
        from attnbench.suites.rewardbench.evaluate import evaluate

        return evaluate(task, data, mechanism, dict(cell.hparams), ctx)
