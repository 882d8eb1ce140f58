"""A fast in-process suite for runner and store tests: no training, scores from the
hyper-parameters."""

from __future__ import annotations

import math

from attnbench.budget import Budget
from attnbench.cell import CellOutcome
from attnbench.suite import Suite, Task


class EchoSuite(Suite):
    name = "echo"
    description = "Scores a cell by a formula; raises or returns NaN on request."
    accepts = ("sequence",)
    groups = ("testgroup",)
    primary_metric = "score"
    profiles = ("smoke", "paper")

    def tasks(self, profile):
        return [
            Task("t1", {"offset": 0.0, "behaviour": "ok"}),
            Task("t2", {"offset": 0.5, "behaviour": "ok"}),
        ]

    def default_budget(self, profile, task):
        return Budget("steps", 10)

    def run_cell(self, cell, mechanism, ctx):
        behaviour = cell.task_config.get("behaviour", "ok")
        if behaviour == "raise" and cell.seed == 1:
            raise RuntimeError("deliberate failure in seed 1")
        score = math.nan if behaviour == "nan" else cell.task_config["offset"] + 0.1 * cell.seed
        for step in range(3):
            ctx.on_step(step + 1, 3)
        return CellOutcome(
            metrics={"score": score, "extra": 1.0},
            budget_used=cell.budget.value,
            flops=1e6,
            steps=3,
            params=123,
        )
