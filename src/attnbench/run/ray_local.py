"""The local Ray instance a run starts when it joins no cluster: reachable from this machine only,
and gone when the run is, however the run ends.

Ray binds its servers to the node's IP, which for a single machine it takes from the first network
interface, so a plain `ray.init()` listens on the network and runs whatever arrives there. Marked as
a single-machine instance (Ray's own switch for machines that cannot form a cluster,
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`), its node IP is the loopback address and every server (GCS,
raylet, agents, workers) listens there only.

`ray.shutdown()` stops the instance on every exit Python sees; when this process is killed outright
(SIGKILL, the out-of-memory killer) the GCS and raylet stop by themselves but Ray's dashboard and
runtime-env agents live on. A reaper process, started with the instance, watches this one through a
pipe and, when it ends, ends every process of the instance that is left:

    python -m attnbench.run.ray_local PID...   (stdin: the pipe; PIDs: the instance's own processes)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
POLL_SECONDS = 0.5  # how often the reaper learns the instance's processes
GRACE_SECONDS = 3.0  # SIGTERM first, SIGKILL after this


@contextmanager
def loopback_only(ray: Any) -> Iterator[None]:
    """While starting a local instance: this process and the ones Ray starts take the loopback
    address."""
    from ray._private import ray_constants

    previous_env = os.environ.get(SINGLE_MACHINE)
    previous = getattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    os.environ[SINGLE_MACHINE] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous
        if previous_env is None:
            os.environ.pop(SINGLE_MACHINE, None)
        else:
            os.environ[SINGLE_MACHINE] = previous_env


def instance_pids(ray: Any) -> list[int]:
    """The processes Ray started for the local instance (GCS, raylet, monitors); their children
    are found later."""
    node = getattr(getattr(ray, "_private", None), "worker", None)
    node = getattr(node, "_global_node", None)
    processes = getattr(node, "all_processes", None) or {}
    return sorted(
        {
            info.process.pid
            for infos in processes.values()
            for info in infos
            if getattr(getattr(info, "process", None), "pid", None)
        }
    )


def start_reaper(roots: list[int]) -> subprocess.Popen:
    """The reaper of `roots` and their descendants; closing its stdin (or dying) sets it off."""
    return subprocess.Popen(
        [sys.executable, "-m", "attnbench.run.ray_local", *map(str, roots)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # a Ctrl-C to the run's group does not stop the reaper early


def stop_reaper(reaper: subprocess.Popen) -> None:
    """After a clean `ray.shutdown()`: the reaper ends any straggler, then itself."""
    try:
        reaper.stdin.close()
        reaper.wait(timeout=GRACE_SECONDS + 5)
    except (OSError, subprocess.TimeoutExpired):
        reaper.kill()


def _known(roots: list[int], known: dict[int, float]) -> None:
    import psutil

    for pid in roots:
        try:
            root = psutil.Process(pid)
            family = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for process in family:
            try:
                known.setdefault(process.pid, process.create_time())
            except psutil.Error:
                continue


def _reap(known: dict[int, float]) -> None:
    """SIGTERM every process still alive that is the one we saw (same pid, same start), then
    SIGKILL."""
    import psutil

    alive = []
    for pid, created in known.items():
        try:
            process = psutil.Process(pid)
            if process.create_time() == created and pid != os.getpid():
                process.send_signal(signal.SIGTERM)
                alive.append(process)
        except psutil.Error:
            continue
    _, left = psutil.wait_procs(alive, timeout=GRACE_SECONDS)
    for process in left:
        try:
            process.kill()
        except psutil.Error:
            continue


def main(argv: list[str]) -> None:
    import select

    roots = [int(pid) for pid in argv]
    known: dict[int, float] = {}
    while True:
        _known(roots, known)
        ready, _, _ = select.select([sys.stdin], [], [], POLL_SECONDS)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break  # end of file: the run closed the pipe or died
    time.sleep(0.2)  # a clean shutdown's processes are already exiting; let them
    _reap(known)


if __name__ == "__main__":
    main(sys.argv[1:])
