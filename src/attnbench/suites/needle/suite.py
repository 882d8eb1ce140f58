"""Needle-in-a-haystack as an attnbench suite, in two modes chosen by the mechanism's kind.

* From scratch (`sequence` mechanisms): a small word-level LM trained under the FLOP budget on RULER
  passkey examples at `train_length`, then scored over `lengths` x `depths`, lengths beyond the
  training length included (`attnbench.suites.needle.scratch`).
* Pretrained (`pretrained` mechanisms, `--model` a local checkpoint or cached hub id): the mechanism
  is installed through transformers' attention interface and the model answers RULER prompts built
  with its own tokenizer by greedy decoding (`attnbench.suites.needle.pretrained`). Inference only:
  its cells are budgeted in the prompt tokens they read, so they never share a leaderboard table
  with trained cells.

Every cell stores the mean score (RULER's string_match_all, 0-100) and one `grid/L{length}/D{depth}`
metric per point, from which the leaderboard and the site draw length x depth heat maps.
"""

from __future__ import annotations

from typing import Any, Mapping

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellSpec
from attnbench.errors import ConfigError
from attnbench.suite import CellContext, Suite, Task
from attnbench.suites.needle.task import PRETRAINED_TASKS, SCRATCH_TASKS, NeedleTask


class NeedleSuite(Suite):
    name = "needle"
    description = (
        "Needle in a haystack (RULER NIAH): read back values hidden at a depth of a long context."
    )
    accepts = ("sequence", "pretrained")
    groups = ("long-context",)
    primary_metric = "score"
    higher_is_better = True
    version = "1"
    settings_class = NeedleTask
    profile_tasks = {
        profile: (*SCRATCH_TASKS[profile], *PRETRAINED_TASKS[profile])
        for profile in ("smoke", "paper")
    }
    fixed_settings = frozenset({"mode"})  # a task trains from scratch or reads a pretrained model

    def configure(self, task: Task, overrides: Mapping[str, Any]) -> Task:
        """Settings of the other mode are left to the other mode's tasks (`--model` only reaches
        pretrained)."""
        known = self.settings("smoke")
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(
                f"suite 'needle' has no task setting {unknown[0]!r} "
                f"(settings: {', '.join(sorted(known))})"
            )
        mine = {k: v for k, v in overrides.items() if k in task.config}
        if not mine:
            return task
        return self.make_task({**task.config, **mine}, task.label)

    def pairs_with(self, task: Task, mechanism: Any) -> tuple[bool, str | None]:
        mode = "pretrained" if mechanism.kind == "pretrained" else "scratch"
        if task.config["mode"] != mode:
            return False, None
        if mode == "pretrained" and not task.config.get("model"):
            return (
                False,
                (
                    f"needle skips {mechanism.name}: pretrained mechanisms need --model "
                    "(a local checkpoint folder or a cached hub id)"
                ),
            )
        return True, None

    def default_seeds(self, profile: str) -> int:
        return 2 if profile == "smoke" else 3

    def table_of(self, task: str) -> str:
        """Pretrained cells rank per model (their label is `<niah_task>-<model>`), and two models
        are never averaged; the from-scratch tasks (`<niah_task>-scratch-T<length>`) average in one
        table."""
        from attnbench.suites.needle.data import TASKS

        if "-scratch-T" in task:
            return ""
        return next(
            (
                task[len(name) + 1 :]
                for name in sorted(TASKS, key=len, reverse=True)
                if task.startswith(f"{name}-")
            ),
            "",
        )

    def mechanism_overrides(self, profile: str) -> dict[str, Any]:
        # Width 64 in smoke: two heads of 32 (eight heads of 8 learn retrieval far more slowly).
        return {"num_heads": 2} if profile == "smoke" else {}

    def default_budget(self, profile: str, task: Task) -> Budget:
        """Scratch: what mha spends in `train_steps_for_default_budget` steps. Pretrained: prompt
        tokens read."""
        spec = NeedleTask.from_config(task.config)
        if spec.mode == "pretrained":
            return Budget(
                "tokens", float(sum(spec.lengths) * len(spec.depths) * spec.samples_per_point)
            )
        from attnbench.mechanisms.mha import SPEC as MHA
        from attnbench.suites.needle.scratch import model_config
        from attnbench.suites.needle.tokenizer import default_tokenizer
        from attnbench.toolkit.lm import training_step_flops

        config = model_config(spec, len(default_tokenizer()))
        per_step = training_step_flops(
            config,
            MHA,
            MHA.hparams(profile, self.mechanism_overrides(profile)),
            spec.batch_size,
            seq_len=spec.train_length - 1,
        )
        return Budget("flops", float(per_step * spec.train_steps_for_default_budget))

    def budget_for(self, profile: str, task: Task, override: Budget | None) -> Budget:
        """`--budget` limits training; pretrained cells train nothing and always count the tokens
        they read."""
        if task.config["mode"] == "pretrained":
            return self.default_budget(profile, task)
        return super().budget_for(profile, task, override)

    def run_cell(self, cell: CellSpec, mechanism: Any, ctx: CellContext) -> CellOutcome:
        task = NeedleTask.from_config(cell.task_config)
        if task.mode == "pretrained":
            from attnbench.suites.needle.pretrained import evaluate_pretrained

            return evaluate_pretrained(
                task, mechanism, dict(cell.hparams), cell.budget, cell.seed, ctx
            )
        from attnbench.suites.needle.scratch import train_and_evaluate

        return train_and_evaluate(task, mechanism, dict(cell.hparams), cell.budget, cell.seed, ctx)
