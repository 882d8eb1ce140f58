"""One cell, executed: its suite's `run_cell` under the cell's own seed, with every failure a
plug-in can cause (anything it raises, SystemExit included; a non-finite primary metric; metrics the
store cannot hold) turned into the cell's record instead of an exception. The same function runs in
this process, in a worker process and in a Ray task."""

from __future__ import annotations

import time
import traceback

import torch

from attnbench.cell import CellRecord, CellSpec
from attnbench.errors import SkipCell
from attnbench.kernels import dispatch
from attnbench.registry import MECHANISMS, SUITES
from attnbench.run.memory import PeakMemory
from attnbench.store.database import utcnow
from attnbench.store.storable import unstorable_outcome
from attnbench.suite import CellContext


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
    except (
        SkipCell
    ) as exc:  # the suite cannot run this cell here (no model, no data): not a failure
        record.status, record.error = "skipped", str(exc)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the user's, not the cell's
        raise
    except (
        BaseException
    ) as exc:  # one cell's failure, SystemExit included, must not stop the others
        record.status = "oom" if is_out_of_memory(exc) else "failed"
        record.error = _describe(exc)
    record.wall_seconds = time.perf_counter() - started
    record.finished_at = utcnow()
    record.peak_memory_bytes, record.memory_kind = memory.read(), memory.kind
    return record


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError (Python, or any allocation under --memory-limit), torch's OutOfMemoryError
    (CUDA), or the CPU allocator's failure, which torch raises as a plain RuntimeError."""
    torch_oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    return isinstance(exc, (MemoryError, torch_oom)) or (
        isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(exc)
    )


def failed_record(cell: CellSpec, exc: BaseException, prefix: str = "") -> CellRecord:
    """The record of a cell that raised outside `execute_cell`'s own handling."""
    now = utcnow()
    return CellRecord(
        cell,
        status="oom" if is_out_of_memory(exc) else "failed",
        error=prefix + _describe(exc),
        started_at=now,
        finished_at=now,
    )


def _describe(exc: BaseException) -> str:
    """The one-line reason first, then the traceback for whoever digs in."""
    headline = f"{type(exc).__name__}: {exc}".strip() if str(exc).strip() else type(exc).__name__
    return headline + "\n\n" + "".join(traceback.format_exception(exc)).rstrip()
