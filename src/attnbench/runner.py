"""Running a plan: each cell in turn, each written to the store the moment it ends.

A failing cell (anything a plug-in raises, `SystemExit` included; a non-finite loss, out of memory, a crashed
or hung worker process) is recorded with its reason and the run goes on; the summary tells the CLI whether
anything failed. A run killed at any moment loses only the cells in flight: they were never written, so
`--resume` redoes them. The run itself stays `running` in the store until a later run sees that
its process is gone and marks it `crashed`.

Before a cell starts, the run claims it in the store (one transaction): with `--resume` a cell another run
has finished or holds is left to it, so any number of concurrent runs of one plan do each cell once.

Ctrl-C stops the run after the cells in flight (marked `interrupted`); a second Ctrl-C aborts them. SIGTERM
(a scheduler, `kill`) aborts the cells in flight at once and marks the run `interrupted` the same way.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from attnbench import provenance
from attnbench.cell import CellRecord, CellSpec
from attnbench.errors import SkipCell
from attnbench.isolation import CellLimits, CellJob, WorkerPool, check_limits, process_alive, this_process
from attnbench.kernels import dispatch
from attnbench.memory import PeakMemory
from attnbench.planning import Plan
from attnbench.registry import MECHANISMS, SUITES
from attnbench.storable import unstorable_outcome
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
    taken: int = 0  # cells another run had finished or was running when this one came to them
    interrupted: bool = False  # stopped by Ctrl-C or SIGTERM with cells left to run
    terminated: bool = False  # stopped by SIGTERM
    crashed_runs: list[int] = field(default_factory=list)  # earlier runs found dead and marked `crashed`

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def ok(self) -> bool:
        return all(r.status in ("done", "skipped") for r in self.records)


def execute_cell(cell: CellSpec, device: str, on_step=lambda step, planned: None) -> CellRecord:
    """Run one cell with its own seeded RNG (global RNG state is restored afterwards)."""
    memory = PeakMemory(device)
    memory.reset()
    started_at, started = utcnow(), time.perf_counter()
    record = CellRecord(cell, status="failed", started_at=started_at)
    devices = [torch.device(device)] if device.startswith("cuda") else []
    try:
        suite, mechanism = SUITES.get(cell.suite), MECHANISMS.get(cell.mechanism)
        with torch.random.fork_rng(devices=devices), dispatch.recording() as implementations:
            torch.manual_seed(cell.seed)
            outcome = suite.run_cell(cell, mechanism, CellContext(device=device, on_step=on_step))
        if implementations:  # which mechanisms ran a Triton kernel and which their reference
            outcome.details.setdefault("implementation", dict(implementations))
        record.outcome = outcome
        primary = outcome.metrics.get(cell.primary_metric)
        unstorable = unstorable_outcome(outcome)
        if unstorable:
            record.error = unstorable
        elif primary is None or primary != primary:
            record.error = f"suite reported no finite primary metric {cell.primary_metric!r}"
        else:
            record.status = "done"
    except SkipCell as exc:  # the suite cannot run this cell here (no model, no data): not a failure
        record.status, record.error = "skipped", str(exc)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the user's, not the cell's
        raise
    except BaseException as exc:  # one cell's failure, SystemExit included, must not stop the others
        record.status = "oom" if is_out_of_memory(exc) else "failed"
        record.error = _describe(exc)
    record.wall_seconds = time.perf_counter() - started
    record.finished_at = utcnow()
    record.peak_memory_bytes, record.memory_kind = memory.read(), memory.kind
    return record


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError (Python, or any allocation under --memory-limit), torch's OutOfMemoryError (CUDA), or the
    CPU allocator's failure, which torch raises as a plain RuntimeError."""
    torch_oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    return isinstance(exc, (MemoryError, torch_oom)) or (
        isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(exc))


def failed_record(cell: CellSpec, exc: BaseException, prefix: str = "") -> CellRecord:
    """The record of a cell that raised outside `execute_cell`'s own handling."""
    now = utcnow()
    return CellRecord(cell, status="oom" if is_out_of_memory(exc) else "failed", error=prefix + _describe(exc),
                      started_at=now, finished_at=now)


def _describe(exc: BaseException) -> str:
    """The one-line reason first, then the traceback for whoever digs in."""
    headline = f"{type(exc).__name__}: {exc}".strip() if str(exc).strip() else type(exc).__name__
    return headline + "\n\n" + "".join(traceback.format_exception(exc)).rstrip()


class Terminated(KeyboardInterrupt):
    """SIGTERM during a run: abort the cells in flight now (a scheduler sends SIGKILL soon after)."""


class StopRequest:
    """Ctrl-C during a run: the first one stops it after the cells in flight, the second aborts them;
    SIGTERM aborts them at once.

    Installed only in the main thread (the only one Python delivers signals to); elsewhere Ctrl-C
    keeps its usual meaning.
    """

    def __init__(self) -> None:
        self.requested = False
        self._installed = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number, handler in ((signal.SIGINT, self._handle), (signal.SIGTERM, self._terminate)):
                self._previous[number] = signal.signal(number, handler)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            for number, previous in self._previous.items():
                fallback = signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL
                signal.signal(number, previous if previous is not None else fallback)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("attnbench: stopping after the cells in flight; Ctrl-C again to abort them", file=sys.stderr,
              flush=True)

    def _terminate(self, signum: int, frame: Any) -> None:
        self.requested = True
        raise Terminated


def mark_crashed_runs(store: Store) -> list[int]:
    """Runs still marked `running` whose process is gone (killed, machine rebooted) become `crashed`.

    Only runs started on this machine can be judged; one from another host stays as it is.
    """
    crashed = []
    for run_id, plan in store.running_runs():
        if process_alive(plan.get("process") or {}) is False and store.mark_crashed(run_id):
            crashed.append(run_id)
    return crashed


def run_plan(plan: Plan, store: Store, resume: bool = False, reporter: Reporter | None = None,
             argv: list[str] | None = None, jobs: int = 1, isolate: bool = False,
             limits: CellLimits = CellLimits(), executor: str = "local", address: str | None = None) -> RunSummary:
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
    described = {**plan.describe(), "resume_skipped": len(plan.cells) - len(todo), "jobs": jobs,
                 "isolate": isolate, "cell_timeout": limits.timeout, "memory_limit": limits.memory,
                 "executor": executor, "ray_address": address,
                 "process": this_process()}
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
                from attnbench.ray_executor import run_with_ray

                run_with_ray(todo, plan.device, reporter, finished, address=address, stopping=lambda: stop.requested,
                             admit=admit)
            elif isolate or (jobs > 1 and len(todo) > 1):
                workers = max(1, min(jobs, len(todo)))
                WorkerPool(plan.device, workers, fresh=isolate, limits=limits).run(
                    [CellJob(cell) for cell in todo], started, finished, lambda: stop.requested,
                    reporter.step if workers == 1 else None, admit=admit)
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
    """Whether run `run_id`, holding a claim, died on this machine without ending: then it is marked `crashed`
    (its claims given back) and True."""
    plan = store.run_plan(run_id)
    return plan is not None and process_alive(plan.get("process") or {}) is False and store.mark_crashed(run_id)


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
