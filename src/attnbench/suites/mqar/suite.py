"""MQAR as an attnbench suite: generate Zoology's data, train the two-layer LM under the budget,
report Zoology's accuracy (the best over the learning-rate sweep, as Zoology's Figure 2 does).

Profiles: `smoke` is one small task that a CPU trains in seconds; `paper` is Zoology's Figure 2
(vocab 8,192; (64, 4), (128, 8), (256, 16); d_model 64-512; learning rates logspace(-4, -2, 4);
100,000 training and 3,000 test examples; the default budget is what attention spends in
Zoology's 64 epochs). Torch is imported only when a cell runs, so listing suites stays cheap.
"""

from __future__ import annotations

from typing import Any

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellSpec
from attnbench.suite import CellContext, Suite, Task
from attnbench.suites.mqar.task import TASKS, MQARTask


class MQARSuite(Suite):
    name = "mqar"
    description = (
        "Multi-query associative recall (Zoology): recall the values of keys seen earlier."
    )
    accepts = ("sequence",)
    groups = ("long-context", "smoke")
    primary_metric = "accuracy"
    higher_is_better = True
    version = "1"
    settings_class = MQARTask
    profile_tasks = TASKS

    def mechanism_overrides(self, profile: str) -> dict[str, Any]:
        return {"num_heads": 1}  # Zoology's attention baseline is single-head

    def default_seeds(self, profile: str) -> int:
        return 2 if profile == "smoke" else 3  # smoke: every built-in in minutes on two CPU cores

    def default_budget(self, profile: str, task: Task) -> Budget:
        """What dense attention spends training `epochs_for_default_budget` epochs of this task."""
        from attnbench.mechanisms.mha import SPEC as MHA
        from attnbench.toolkit.lm import LMConfig, training_step_flops

        spec = self.task_settings(task.config)
        config = LMConfig(spec.vocab_size, spec.seq_len, spec.d_model, spec.n_layers, spec.mlp)
        per_example = training_step_flops(
            config, MHA, MHA.hparams(profile, {"num_heads": 1}), batch=1
        )
        return Budget("flops", float(per_example * spec.num_train * spec.epochs_for_default_budget))

    def run_cell(self, cell: CellSpec, mechanism: Any, ctx: CellContext) -> CellOutcome:
        from attnbench.suites.mqar.train import train_and_evaluate

        task = self.task_settings(cell.task_config)
        return train_and_evaluate(task, mechanism, dict(cell.hparams), cell.budget, cell.seed, ctx)
