"""Cells in worker processes: a pool of reused workers, or a fresh process per cell (`--isolate`).

The parent hands one job at a time to each worker over a pipe and gets its result back: a cell's
`CellRecord` (`CellJob`), or a mechanism's conformance report (`attnbench.run.screening.CheckJob`,
so that `--isolate` and the limits cover plug-ins' checks too); it stays the only process that
writes the store. Whatever kills a worker (a segfault, the kernel's out-of-memory killer, `kill -9`)
or keeps it from finishing (the time limit) is turned into that job's result with the reason, and a
new worker takes the next job.

Workers are forked from a forkserver that has imported torch once, so a fresh process costs tens of
milliseconds, not seconds of imports (spawn where forkserver does not exist); with `--isolate` a
spare is forked ahead, while the other cells run, and imports the next cell's plug-ins. A worker
ignores Ctrl-C (the runner decides what it means) and exits as soon as the runner dies, even
mid-cell.

This module imports no torch at import time: the CLI imports it to parse `--memory-limit`.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import re
import signal
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Callable, Protocol

from attnbench.errors import ConfigError

STEP_REPORT_INTERVAL = 0.25  # seconds between progress messages from a worker
EXIT_GRACE = 5.0  # seconds a worker gets to exit after it is told to
FAULT_LOG_LIMIT = (
    4000  # characters of a crashed worker's faulthandler output kept in the cell's error
)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
# imported once by the forkserver instead of by every cell: torch and the harness, and
# torch._dynamo, which an optimizer's first step imports (seconds). Importing runs no parallel code,
# so forking stays safe.
PRELOAD = ("attnbench.run.execute", "torch._dynamo")


@dataclass(frozen=True)
class CellLimits:
    """Per-cell limits: wall-clock seconds and memory bytes; None is no limit."""

    timeout: float | None = None
    memory: int | None = None

    def __bool__(self) -> bool:
        return self.timeout is not None or self.memory is not None


def parse_bytes(text: str) -> int:
    """`4G`, `512M`, `1.5GiB`, `2000000000`: binary multiples (4G is 4 * 2**30 bytes)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), flags=re.I)
    if not found or float(found.group(1)) <= 0:
        raise ValueError(
            f"{text!r} is not a memory size; expected bytes or a number with K, M, G or T, e.g. 4G"
        )
    return int(float(found.group(1)) * _UNITS[found.group(2).upper()])


def check_limits(limits: CellLimits, device: str) -> None:
    """Refuse, before any work, limits this platform cannot enforce."""
    if limits.memory is not None and not device.startswith("cuda"):
        try:
            import resource
        except ImportError:
            resource = None
        if not hasattr(resource, "RLIMIT_AS"):
            raise ConfigError(
                "--memory-limit needs RLIMIT_AS (Linux, macOS) for CPU cells; this platform has"
                " none"
            )


class Job(Protocol):
    """Work a worker process does: `run` there, or `lost` here when the worker died or ran out of
    time."""

    subject: Any  # what the caller's callbacks are told about (a cell)

    def run(self, device: str, on_step: Callable[[int, int | None], None]) -> Any: ...
    def failed(self, exc: BaseException, prefix: str) -> Any: ...
    def lost(self, status: str, error: str, wall_seconds: float, started_at: Any) -> Any: ...
    def plugins(self) -> tuple[str | None, str | None]: ...


@dataclass(frozen=True)
class CellJob:
    """A cell: `execute_cell` in the worker; a lost worker gives the cell a failed or timed-out
    record."""

    subject: Any

    def run(self, device: str, on_step: Callable[[int, int | None], None]) -> Any:
        from attnbench.run.execute import execute_cell

        return execute_cell(self.subject, device, on_step)

    def failed(self, exc: BaseException, prefix: str) -> Any:
        from attnbench.run.execute import failed_record

        return failed_record(self.subject, exc, prefix)

    def lost(self, status: str, error: str, wall_seconds: float, started_at: Any) -> Any:
        from attnbench.cell import CellRecord
        from attnbench.store.database import utcnow

        return CellRecord(
            self.subject,
            status=status,
            error=error,
            wall_seconds=wall_seconds,
            started_at=started_at,
            finished_at=utcnow(),
        )

    def plugins(self) -> tuple[str | None, str | None]:
        return self.subject.suite, self.subject.mechanism


# ---------------------------------------------------------------- worker side


def _exit_with_parent(lifeline: Any) -> None:
    """The parent holds the only write end of `lifeline`: end of file means it died, so this
    worker goes too."""

    def watch() -> None:
        try:
            lifeline.recv_bytes()
        except (EOFError, OSError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="attnbench-lifeline", daemon=True).start()


def _limit_memory(limit: int, device: str) -> None:
    import torch

    if device.startswith("cuda"):
        # CUDA reserves far more address space than it uses, so RLIMIT_AS would break it: cap the
        # allocator instead
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), torch.device(device))
        return
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(
        resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard)
    )


def _worker_main(
    conn: Any,
    lifeline: Any,
    device: str,
    threads: int,
    memory: int | None,
    fault_log: _InheritedFile,
    once: bool,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(lifeline)
    faulthandler.enable(
        fault_log.fd, all_threads=False
    )  # a segfault's traceback goes into the cell's error
    import torch

    setup_error = None
    try:
        torch.set_num_threads(threads)
        if memory is not None:
            _limit_memory(memory, device)
    except (
        Exception
    ) as exc:  # e.g. a memory limit below what the process already holds: every cell says so
        setup_error = exc
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        if (
            message[0] == "warm"
        ):  # a spare waiting for its cell imports the plug-ins it will likely need
            _warm(*message[1:])
            continue
        job = message[1]
        last_report = 0.0

        def on_step(step: int, planned: int | None) -> None:
            nonlocal last_report
            now = time.monotonic()
            if now - last_report >= STEP_REPORT_INTERVAL:
                last_report = now
                conn.send(("step", step, planned))

        try:
            if setup_error is not None:
                raise setup_error
            result = job.run(device, on_step)
        except (
            BaseException
        ) as exc:  # nothing a job raises may take the worker down without a result
            result = job.failed(
                exc, "" if exc is not setup_error else "the worker process could not be set up: "
            )
        try:
            conn.send(("done", result))
        except Exception as exc:  # e.g. a suite put something unpicklable into its outcome
            conn.send(("done", job.failed(exc, "the result could not be sent back: ")))
        if once:
            return


def _warm(suite: str | None, mechanism: str | None) -> None:
    from attnbench.errors import AttnbenchError
    from attnbench.registry import MECHANISMS, SUITES

    try:
        if suite:
            SUITES.get(suite)
        if mechanism:
            MECHANISMS.get(mechanism)
    except AttnbenchError:
        pass  # the job that needs it records the error


class _InheritedFile:
    """A file descriptor handed to a worker as it starts (as multiprocessing hands over a
    pipe's)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple:
        from multiprocessing.reduction import DupFd

        return _InheritedFile._rebuild, (DupFd(self.fd),)

    @staticmethod
    def _rebuild(duplicate: Any) -> _InheritedFile:
        return _InheritedFile(duplicate.detach())


# ---------------------------------------------------------------- parent side


def start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _context() -> Any:
    context = multiprocessing.get_context(start_method())
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(list(PRELOAD))
    return context


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        reason = f"was killed by signal {-exitcode} ({name})"
        if -exitcode == signal.SIGKILL:
            reason += " (from outside, or by the kernel's out-of-memory killer)"
        return reason
    return f"exited with status {exitcode}"


class _Worker:
    def __init__(
        self, context: Any, device: str, threads: int, limits: CellLimits, once: bool
    ) -> None:
        self.conn, child_conn = context.Pipe()
        child_lifeline, self.lifeline = context.Pipe(duplex=False)
        self.fault_log = tempfile.TemporaryFile()  # nameless: nothing is left behind, whoever dies
        # not a daemon: a cell may start processes of its own (data loader workers)
        self.process = context.Process(
            target=_worker_main,
            name="attnbench-cell",
            args=(
                child_conn,
                child_lifeline,
                device,
                threads,
                limits.memory,
                _InheritedFile(self.fault_log.fileno()),
                once,
            ),
        )
        self.process.start()
        child_conn.close()
        child_lifeline.close()
        self.job: Job | None = None
        self.started_at = None
        self.started = 0.0
        self.deadline = float("inf")

    def assign(self, job: Job, timeout: float | None) -> None:
        from attnbench.store.database import utcnow

        self.job = job
        self.started_at, self.started = utcnow(), time.monotonic()
        self.deadline = self.started + timeout if timeout is not None else float("inf")
        try:
            self.conn.send(("job", job))
        except (OSError, ValueError):
            # the process has died: its sentinel says so, and the job is recorded with the reason
            pass

    def warm(self, job: Job) -> None:
        try:
            self.conn.send(("warm", *job.plugins()))
        except (OSError, ValueError):
            pass  # found dead when it is next given a job

    def release(self) -> None:
        self.job, self.deadline = None, float("inf")

    def crash_report(self) -> str:
        try:
            self.fault_log.seek(0)
            text = self.fault_log.read().decode(errors="replace").strip()
        except OSError:
            return ""
        return text.split("\n\nExtension modules:")[0][-FAULT_LOG_LIMIT:]

    def stop(self, kill: bool) -> None:
        """Tell the worker to exit, or kill it; `finish` waits for it."""
        if self.process.is_alive():
            if kill:
                self.process.kill()
            else:
                try:
                    self.conn.send(None)
                except (OSError, ValueError):
                    self.process.kill()

    def finish(self) -> None:
        self.process.join(EXIT_GRACE)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        for end in (self.conn, self.lifeline):
            end.close()
        self.fault_log.close()


class WorkerPool:
    """`jobs` jobs at once in worker processes; `fresh=True` gives every job a new process."""

    def __init__(
        self,
        device: str,
        jobs: int,
        fresh: bool = False,
        limits: CellLimits = CellLimits(),
        threads: int | None = None,
    ) -> None:
        self.device, self.jobs, self.fresh, self.limits = device, jobs, fresh, limits
        self.threads = threads or max(1, (os.cpu_count() or 1) // jobs)

    def run(
        self,
        jobs: list[Job],
        started: Callable[[Any, int], None],
        finished: Callable[[Any], None],
        stopping: Callable[[], bool],
        on_step: Callable[[int, int | None], None] | None = None,
        admit: Callable[[Any], bool] = lambda subject: True,
    ) -> None:
        """Run `jobs`, calling `admit(subject)` just before each would start (False leaves it out),
        `started(subject, index)` and `finished(result)` in this process, in this thread.

        Once `stopping()` is true no new job starts; the ones in flight finish. An exception
        (a second Ctrl-C, SIGTERM) kills the workers, and the jobs they had are not recorded.
        """
        context = _context()
        queue = deque(enumerate(jobs))
        workers: list[_Worker] = []
        exiting: list[
            _Worker
        ] = []  # fresh workers done with their job, left to exit while the next runs
        aborted = True

        def new_worker() -> _Worker:
            worker = _Worker(context, self.device, self.threads, self.limits, self.fresh)
            workers.append(worker)
            return worker

        def retire(worker: _Worker, kill: bool, wait: bool = True) -> None:
            workers.remove(worker)
            worker.stop(kill)
            if wait:
                worker.finish()
            else:
                exiting.append(worker)

        def next_admitted() -> tuple[int, Job] | None:
            while queue:
                index, job = queue.popleft()
                if admit(job.subject):
                    return index, job
            return None

        try:
            while True:
                for gone in [w for w in exiting if not w.process.is_alive()]:
                    exiting.remove(gone)
                    gone.finish()
                busy = sum(w.job is not None for w in workers)
                if not stopping():
                    idle = [w for w in workers if w.job is None]
                    for worker in [w for w in idle if not w.process.is_alive()]:
                        retire(worker, kill=True)  # died while idle: no job of ours was in it
                    while queue and busy < self.jobs:
                        item = next_admitted()
                        if item is None:
                            break
                        ready = [w for w in workers if w.job is None and w.process.is_alive()]
                        self._dispatch(ready[0] if ready else new_worker(), item, started)
                        busy += 1
                    if self.fresh and queue and len(workers) == busy:
                        # a spare, forked and warmed up while the others run, takes the next job at
                        # once
                        new_worker().warm(queue[0][1])
                if not busy:
                    break
                if not queue or stopping():
                    for idle in [w for w in workers if w.job is None]:
                        retire(idle, kill=False)
                in_flight = [w for w in workers if w.job is not None]
                timeout = max(0.0, min(w.deadline for w in in_flight) - time.monotonic())
                ready = wait(
                    [w.conn for w in in_flight] + [w.process.sentinel for w in in_flight],
                    None if timeout == float("inf") else timeout,
                )
                for worker in in_flight:
                    self._collect(worker, ready, finished, on_step, retire)
            aborted = False
        finally:
            for worker in list(workers):
                retire(worker, kill=aborted)
            for worker in exiting:
                worker.finish()

    def _dispatch(
        self, worker: _Worker, item: tuple[int, Job], started: Callable[[Any, int], None]
    ) -> None:
        index, job = item
        started(job.subject, index)
        worker.assign(job, self.limits.timeout)

    def _collect(self, worker: _Worker, ready: list, finished, on_step, retire) -> None:
        died = worker.process.sentinel in ready
        if worker.conn in ready or died:
            try:
                while worker.conn.poll():
                    message = worker.conn.recv()
                    if message[0] == "step":
                        if on_step is not None:
                            on_step(message[1], message[2])
                        continue
                    worker.release()
                    if self.fresh:
                        retire(worker, kill=False, wait=False)
                    finished(message[1])
                    return
            except (EOFError, OSError):
                died = True
        if died:
            worker.process.join(EXIT_GRACE)
            crash = worker.crash_report()
            status = "failed"
            error = (
                f"the worker process {worker.process.pid} {describe_exit(worker.process.exitcode)}"
            )
            if self.limits.memory is not None and (worker.process.exitcode or 0) > 0:
                error += (
                    f" under --memory-limit {self.limits.memory / 2**30:.3g}G: a native library"
                    " that cannot allocate exits like this (its message went to stderr)"
                )
            error += f"\n\n{crash}" if crash else ""
        elif time.monotonic() >= worker.deadline:
            status = "timeout"
            error = (
                f"did not finish within the {self.limits.timeout:g} s limit (--cell-timeout); "
                "its process was killed"
            )
        else:
            return
        job, started_at, wall = worker.job, worker.started_at, time.monotonic() - worker.started
        worker.release()
        retire(worker, kill=True)
        finished(job.lost(status, error, wall, started_at))


# ---------------------------------------------------------------- is a run's process still alive?


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from /proc; None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


def this_process() -> dict[str, Any]:
    """What identifies this process on this machine, beyond a pid that the system may give to
    another later."""
    import socket

    stat = _proc_stat(os.getpid())
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "boot_id": _boot_id(),
        "start_ticks": stat[1] if stat else None,
    }


def process_alive(identity: dict[str, Any]) -> bool | None:
    """Whether the process `identity` names still runs; None when this machine cannot tell
    (another host)."""
    import socket

    if not identity or identity.get("host") != socket.gethostname() or not identity.get("pid"):
        return None
    if identity.get("boot_id") and _boot_id() and identity["boot_id"] != _boot_id():
        return False  # rebooted since
    pid = int(identity["pid"])
    if os.path.isdir("/proc/self"):
        stat = _proc_stat(pid)
        if stat is None:
            return False
        state, start_ticks = stat
        return state not in ("Z", "X") and (identity.get("start_ticks") in (None, start_ticks))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
