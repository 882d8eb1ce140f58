"""The Ray executor: cells fan out as Ray tasks across a cluster's GPUs (or CPU cores), and each
finished cell streams back to this process, the run's only writer.

Same behaviour as the local worker pool: `reporter.cell_started` for every cell as it is submitted,
`finished(record)` here as each one ends, in the order they end; once `stopping()` is true no new
cell starts and the ones in flight finish (a first Ctrl-C), while an exception here (a second one)
cancels them unrecorded. A cell's own failure is already a failed record (`execute_cell` catches
it); what this module adds is the failure of the machinery around it: a worker that dies (killed,
out of memory, its node lost) gets its cell run again up to `retries` times, then the cell is
recorded as failed with Ray's reason. Each cell seeds itself, so where it runs does not change its
result.

Workers import attnbench and resolve suites and mechanisms by name through the registry, so every
node needs attnbench and the plug-ins installed; on a local instance the workers share this
interpreter's environment.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from attnbench.cell import CellRecord, CellSpec
from attnbench.errors import ConfigError
from attnbench.run.ray_local import instance_pids, loopback_only, start_reaper, stop_reaper
from attnbench.store.database import utcnow

if TYPE_CHECKING:
    from attnbench.run.reporting import Reporter

POLL_SECONDS = 0.25  # how often a waiting run looks at `stopping()`
PROBE_SECONDS = (
    5.0  # ray.init waits on an address where nothing answers for minutes; a TCP probe does not
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_with_ray(
    cells: list[CellSpec],
    device: str,
    reporter: Reporter,
    finished: Callable[[CellRecord], None],
    address: str | None = None,
    retries: int = 1,
    stopping: Callable[[], bool] = lambda: False,
    admit: Callable[[CellSpec], bool] = lambda cell: True,
) -> None:
    """Run `cells` as Ray tasks, calling `finished(record)` in this process as each one ends.

    An address (`host:port`, `auto`, `ray://...`; without one, `RAY_ADDRESS` if set, as in a Ray
    job) joins that cluster and leaves it running. Without either, this process's own Ray connection
    is used if it has one, or else a local instance is started with one slot per CPU core, listening
    on the loopback address only, and shut down afterwards, even when this process is killed
    (`attnbench.run.ray_local`).

    On cuda each cell reserves one GPU, which Ray picks (the worker sees it as `cuda`); on the CPU
    each reserves one core and runs one torch thread, as the local worker pool does. `retries` is
    how many times a cell whose worker died is run again; `stopping`, polled while waiting, stops
    the run.
    """
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    on_gpu = device.startswith("cuda")
    with _connected(ray, address, on_gpu):
        # Every cell is submitted at once (the scheduler, and an autoscaler, see the whole demand);
        # the gate is how a stopping run keeps the queued ones from starting while the running ones
        # finish.
        gate = ray.remote(num_cpus=0)(_Gate).remote()
        task = ray.remote(_run_cell).options(
            max_retries=0, **({"num_gpus": 1} if on_gpu else {"num_cpus": 1})
        )
        worker_device = "cuda" if on_gpu else device

        def submit(attempt: _Attempt) -> None:
            pending[task.remote(attempt.cell, worker_device, gate)] = attempt

        pending: dict[Any, _Attempt] = {}
        for index, cell in enumerate(cells):
            if admit(cell):  # claimed for this run; another run's cells are left to it
                reporter.cell_started(cell, index, len(cells))
                submit(_Attempt(cell))
        closed = False
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                if not closed and stopping():
                    gate.close.remote()
                    closed = True
                for ref in ready:
                    attempt = pending.pop(ref)
                    try:
                        record = ray.get(ref)
                    except (
                        ray.exceptions.RayError
                    ) as exc:  # the worker, not the cell, failed: try it elsewhere
                        attempt.errors.append(exc)
                        if len(attempt.errors) <= retries and not closed:
                            submit(attempt)
                            continue
                        record = attempt.lost(oom=isinstance(exc, ray.exceptions.OutOfMemoryError))
                    if record is not None:
                        finished(record)
        except BaseException:
            for ref in pending:  # on a shared cluster nothing else would stop them
                ray.cancel(ref, force=True)
            raise


class _Gate:
    """A Ray actor that every task asks before it starts its cell: open until the run is
    stopping."""

    def __init__(self) -> None:
        self.open = True

    def admit(self) -> bool:
        return self.open

    def close(self) -> None:
        self.open = False


def _run_cell(cell: CellSpec, device: str, gate: Any) -> CellRecord | None:
    """A Ray task: one cell on one reserved core or GPU (one torch thread, as in the local worker
    pool), or None for a cell that the stopping run never started."""
    import ray
    import torch

    from attnbench.run.execute import execute_cell

    if not ray.get(gate.admit.remote()):
        return None
    torch.set_num_threads(1)
    return execute_cell(cell, device)


@dataclass
class _Attempt:
    cell: CellSpec
    started_at: Any = field(default_factory=utcnow)
    started: float = field(default_factory=time.perf_counter)
    errors: list[BaseException] = field(default_factory=list)

    def lost(self, oom: bool) -> CellRecord:
        """The failed record of a cell whose every attempt was lost to a dead worker or node."""
        headline = (
            f"Ray lost this cell's worker {len(self.errors)} times; last:"
            f" {_headline(self.errors[-1])}"
        )
        details = "\n\n".join(
            f"attempt {n}: {type(e).__name__}: {_ANSI.sub('', str(e)).strip()}"
            for n, e in enumerate(self.errors, 1)
        )
        return CellRecord(
            self.cell,
            status="oom" if oom else "failed",
            error=f"{headline}\n\n{details}",
            wall_seconds=time.perf_counter() - self.started,
            started_at=self.started_at,
            finished_at=utcnow(),
        )


def _headline(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc  # a RayTaskError carries the worker's own exception
    lines = _ANSI.sub("", str(cause)).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray: pip install 'attnbench[ray]'") from None
    return ray


@contextmanager
def _connected(ray, address: str | None, on_gpu: bool) -> Iterator[None]:
    """Ray connected for the run: the caller's own connection, a cluster joined, or a local
    instance started."""
    if address is None and ray.is_initialized():
        yield  # the caller's session: theirs to shut down
        return
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    reaper = None
    if address is None:
        with loopback_only(ray):  # reachable from this machine only
            ray.init(
                address="local", num_cpus=os.cpu_count(), **options
            )  # even where `ray start` runs one
        reaper = start_reaper(instance_pids(ray))
    else:
        _probe(address)
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"cannot connect to the Ray cluster at {address!r}: {_headline(exc)}"
            ) from None
    try:
        if address is None and on_gpu and not ray.cluster_resources().get("GPU"):
            raise ConfigError(
                "the local Ray instance found no GPU, so cuda cells could never be scheduled"
            )
        yield
    finally:
        ray.shutdown()  # stops the instance started here; from a cluster it only disconnects
        if reaper is not None:
            stop_reaper(reaper)


def _probe(address: str) -> None:
    """Refuse in seconds an address where nothing listens (ray.init would wait there for
    minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # `auto`, `local` and the like: ray.init resolves and checks them itself, quickly
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address!r}: {exc.strerror or exc}"
        ) from None
