"""Running a plan: each cell in turn, each written to the store the moment it ends.

A failing cell (anything a plug-in raises, `SystemExit` included; a non-finite loss, out of memory,
a crashed or hung worker process) is recorded with its reason and the run goes on; the summary tells
the CLI whether anything failed. A run killed at any moment loses only the cells in flight: they
were never written, so `--resume` redoes them. The run itself stays `running` in the store until a
later run sees that its process is gone and marks it `crashed`.

Before a cell starts, the run claims it in the store (one transaction): with `--resume` a cell
another run has finished or holds is left to it, so any number of concurrent runs of one plan do
each cell once.

Ctrl-C stops the run after the cells in flight (marked `interrupted`); a second Ctrl-C aborts them.
SIGTERM (a scheduler, `kill`) aborts the cells in flight at once and marks the run `interrupted` the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from attnbench.cell import CellRecord, CellSpec
from attnbench.run import provenance
from attnbench.run.execute import execute_cell
from attnbench.run.isolation import (
    CellJob,
    CellLimits,
    WorkerPool,
    check_limits,
    process_alive,
    this_process,
)
from attnbench.run.planning import Plan
from attnbench.run.ray_executor import run_with_ray
from attnbench.run.reporting import Reporter, SilentReporter
from attnbench.run.stopping import StopRequest, Terminated
from attnbench.store.database import Store


@dataclass
class RunSummary:
    run_id: int
    records: list[CellRecord] = field(default_factory=list)
    resumed: int = 0
    taken: int = 0  # cells another run had finished or was running when this one came to them
    interrupted: bool = False  # stopped by Ctrl-C or SIGTERM with cells left to run
    terminated: bool = False  # stopped by SIGTERM
    crashed_runs: list[int] = field(
        default_factory=list
    )  # earlier runs found dead and marked `crashed`

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def ok(self) -> bool:
        return all(r.status in ("done", "skipped") for r in self.records)


def mark_crashed_runs(store: Store) -> list[int]:
    """Runs still marked `running` whose process is gone (killed, machine rebooted) become
    `crashed`.

    Only runs started on this machine can be judged; one from another host stays as it is.
    """
    crashed = []
    for run_id, plan in store.running_runs():
        if process_alive(plan.get("process") or {}) is False and store.mark_crashed(run_id):
            crashed.append(run_id)
    return crashed


def run_plan(
    plan: Plan,
    store: Store,
    resume: bool = False,
    reporter: Reporter | None = None,
    argv: list[str] | None = None,
    jobs: int = 1,
    isolate: bool = False,
    limits: CellLimits = CellLimits(),
    executor: str = "local",
    address: str | None = None,
) -> RunSummary:
    """Run the plan's cells (skipping done ones on resume), writing each as it finishes.

    With `jobs > 1` cells run in that many reused worker processes, each with its share of the
    CPU threads; with `isolate` (implied by a time or memory limit) every cell gets a fresh
    process of its own. `executor="ray"` fans cells out over a Ray cluster (`address`, or a local
    instance) instead. Either way this process stays the only writer.
    """
    reporter = reporter or SilentReporter()
    isolate = isolate or bool(limits)  # a limit needs a process of the cell's own to enforce it
    check_limits(limits, plan.device)
    crashed = mark_crashed_runs(store)
    done = store.done_keys() if resume else set()
    todo = [cell for cell in plan.cells if cell.resume_key not in done]
    described = {
        **plan.describe(),
        "resume_skipped": len(plan.cells) - len(todo),
        "jobs": jobs,
        "isolate": isolate,
        "cell_timeout": limits.timeout,
        "memory_limit": limits.memory,
        "executor": executor,
        "ray_address": address,
        "process": this_process(),
    }
    run_id = store.start_run(provenance.collect(plan.device, argv), plan.profile, described)
    summary = RunSummary(run_id, resumed=len(plan.cells) - len(todo), crashed_runs=crashed)
    measurements: dict[tuple, int] = {}
    status = "interrupted"

    def admit(cell: CellSpec) -> bool:
        """Claim the cell for this run; False when another run has it (done, or in flight)."""
        claimed = store.claim(run_id, cell.resume_key, resume)
        if claimed.holder is not None and _ended_without_trace(store, claimed.holder):
            claimed = store.claim(run_id, cell.resume_key, resume)
        if claimed.measurement is None:
            summary.taken += 1
            return False
        measurements[cell.resume_key] = claimed.measurement
        return True

    def started(cell: CellSpec, index: int) -> None:
        reporter.cell_started(cell, index, len(todo))

    def finished(record: CellRecord) -> None:
        store.write_cell(run_id, record, measurements.pop(record.spec.resume_key, None))
        summary.records.append(record)
        reporter.cell_finished(record)

    try:
        with StopRequest() as stop:
            if executor == "ray":
                run_with_ray(
                    todo,
                    plan.device,
                    reporter,
                    finished,
                    address=address,
                    stopping=lambda: stop.requested,
                    admit=admit,
                )
            elif isolate or (jobs > 1 and len(todo) > 1):
                workers = max(1, min(jobs, len(todo)))
                WorkerPool(plan.device, workers, fresh=isolate, limits=limits).run(
                    [CellJob(cell) for cell in todo],
                    started,
                    finished,
                    lambda: stop.requested,
                    reporter.step if workers == 1 else None,
                    admit=admit,
                )
            else:
                for index, cell in enumerate(todo):
                    if stop.requested:
                        break
                    if not admit(cell):
                        continue
                    started(cell, index)
                    finished(execute_cell(cell, plan.device, reporter.step))
        summary.interrupted = stop.requested and len(summary.records) + summary.taken < len(todo)
        if not summary.interrupted:
            status = "done" if summary.ok else "failed"
    except Terminated:
        summary.interrupted = summary.terminated = True
    finally:
        store.finish_run(run_id, status)  # gives back the claims of cells never finished
    return summary


def _ended_without_trace(store: Store, run_id: int) -> bool:
    """Whether run `run_id`, holding a claim, died on this machine without ending: then it is marked
    `crashed` (its claims given back) and True."""
    plan = store.stored_plan(run_id)
    return (
        plan is not None
        and process_alive(plan.get("process") or {}) is False
        and store.mark_crashed(run_id)
    )
