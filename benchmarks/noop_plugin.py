"""A suite that does no work, installed as a plug-in in a folder: what remains of a run is the
executor's cost.

Shared by `isolation_overhead.py` and `ray_overhead.py`. It is written as an installed-looking
distribution (dist-info with an entry point), so worker processes that have the folder on their path
(sys.path, or PYTHONPATH for spawned and Ray workers) find it exactly as they find any plug-in.
"""

from __future__ import annotations

from pathlib import Path

NAME = "noop"

SOURCE = """
from attnbench.budget import Budget
from attnbench.cell import CellOutcome
from attnbench.suite import Suite, Task


class NoopSuite(Suite):
    name = "noop"
    description = "Does nothing: what remains is the executor's cost."
    accepts = ("sequence",)
    primary_metric = "score"

    def tasks(self, profile):
        return [Task("t", {})]

    def default_budget(self, profile, task):
        return Budget("steps", 1)

    def run_cell(self, cell, mechanism, ctx):
        return CellOutcome(
            metrics={"score": float(cell.seed)}, budget_used=1, flops=0, steps=0, params=0
        )


SUITE = NoopSuite()
"""


def install_noop_suite(site: Path) -> None:
    """Write the plug-in into `site`; the caller puts `site` on the path its workers read."""
    info = site / "noopbench-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: noopbench\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[attnbench.suites]\n{NAME} = noop_suite:SUITE\n")
    (site / "noop_suite.py").write_text(SOURCE)
