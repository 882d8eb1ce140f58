"""Running a plan: each cell in turn, each written to the store the moment it ends.

A failing cell (an exception, a non-finite loss, out of memory) is recorded with its reason and
the run goes on; the summary tells the CLI whether anything failed.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from attnbench import provenance
from attnbench.cell import CellRecord, CellSpec
from attnbench.memory import PeakMemory
from attnbench.planning import Plan
from attnbench.registry import MECHANISMS, SUITES
from attnbench.store import Store, utcnow
from attnbench.suite import CellContext


class Reporter(Protocol):
    def cell_started(self, cell: CellSpec, index: int, total: int) -> None: ...
    def step(self, step: int, planned: int | None) -> None: ...
    def cell_finished(self, record: CellRecord) -> None: ...


class SilentReporter:
    def cell_started(self, cell: CellSpec, index: int, total: int) -> None:
        pass

    def step(self, step: int, planned: int | None) -> None:
        pass

    def cell_finished(self, record: CellRecord) -> None:
        pass


@dataclass
class RunSummary:
    run_id: int
    records: list[CellRecord] = field(default_factory=list)
    resumed: int = 0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def ok(self) -> bool:
        return all(r.status in ("done", "skipped") for r in self.records)


def execute_cell(cell: CellSpec, device: str, on_step=lambda step, planned: None) -> CellRecord:
    """Run one cell with its own seeded RNG (global RNG state is restored afterwards)."""
    suite, mechanism = SUITES.get(cell.suite), MECHANISMS.get(cell.mechanism)
    memory = PeakMemory(device)
    memory.reset()
    started_at, started = utcnow(), time.perf_counter()
    record = CellRecord(cell, status="failed", started_at=started_at)
    devices = [torch.device(device)] if device.startswith("cuda") else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(cell.seed)
            outcome = suite.run_cell(cell, mechanism, CellContext(device=device, on_step=on_step))
        record.outcome = outcome
        primary = outcome.metrics.get(cell.primary_metric)
        if primary is None or primary != primary:
            record.error = f"suite reported no finite primary metric {cell.primary_metric!r}"
        else:
            record.status = "done"
    except torch.cuda.OutOfMemoryError as exc:
        record.status, record.error = "oom", _describe(exc)
    except Exception as exc:  # one cell's failure must not stop the others
        record.error = _describe(exc)
    record.wall_seconds = time.perf_counter() - started
    record.finished_at = utcnow()
    record.peak_memory_bytes, record.memory_kind = memory.read(), memory.kind
    return record


def _describe(exc: BaseException) -> str:
    """The one-line reason first, then the traceback for whoever digs in."""
    headline = f"{type(exc).__name__}: {exc}".strip()
    return headline + "\n\n" + "".join(traceback.format_exception(exc)).rstrip()


def run_plan(plan: Plan, store: Store, resume: bool = False, reporter: Reporter | None = None,
             argv: list[str] | None = None, jobs: int = 1) -> RunSummary:
    """Run the plan's cells (skipping done ones on resume), writing each as it finishes.

    With `jobs > 1` cells run in that many worker processes, each with its share of the CPU
    threads; this process stays the only writer.
    """
    reporter = reporter or SilentReporter()
    done = store.done_keys() if resume else set()
    todo = [cell for cell in plan.cells if cell.resume_key not in done]
    run_id = store.start_run(provenance.collect(plan.device, argv), plan.profile,
                             {**plan.describe(), "resume_skipped": len(plan.cells) - len(todo), "jobs": jobs})
    summary = RunSummary(run_id, resumed=len(plan.cells) - len(todo))
    status = "interrupted"

    def finished(record: CellRecord) -> None:
        store.write_cell(run_id, record)
        summary.records.append(record)
        reporter.cell_finished(record)

    try:
        if jobs > 1 and len(todo) > 1:
            _run_in_workers(todo, plan.device, jobs, reporter, finished)
        else:
            for index, cell in enumerate(todo):
                reporter.cell_started(cell, index, len(todo))
                finished(execute_cell(cell, plan.device, reporter.step))
        status = "done" if summary.ok else "failed"
    finally:
        store.finish_run(run_id, status)
    return summary


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_in_workers(cells: list[CellSpec], device: str, jobs: int, reporter: Reporter, finished) -> None:
    import multiprocessing
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited torch thread pools
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init,
                             initargs=(threads,)) as pool:
        pending = set()
        for index, cell in enumerate(cells):
            reporter.cell_started(cell, index, len(cells))
            pending.add(pool.submit(execute_cell, cell, device))
        try:
            while pending:
                complete, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in complete:
                    finished(future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def cell_error_line(record: CellRecord) -> str:
    return (record.error or "").splitlines()[0] if record.error else ""


def plan_table_rows(plan: Plan) -> list[dict[str, Any]]:
    """One row per (suite, task, mechanism) for the plan printed before work starts."""
    rows: dict[tuple, dict[str, Any]] = {}
    for cell in plan.cells:
        key = (cell.suite, cell.task, cell.mechanism)
        row = rows.setdefault(key, {"suite": cell.suite, "task": cell.task, "mechanism": cell.mechanism,
                                    "budget": cell.budget.label(), "seeds": 0})
        row["seeds"] += 1
    return list(rows.values())
