"""Per-cell overhead of the Ray executor against the local worker pool, on cells that do no work.

    python benchmarks/ray_overhead.py [--cells 1000] [--rounds 3]

Both executors run one worker per CPU core, each run in a fresh process as one `attnbench run` is,
and every record is timed as it reaches this process (the writer). Printed per executor: the start
(until the first record: the local pool's interpreters importing torch, or Ray's local instance and
workers), the cost per cell once running (first to last record, over the cells between: what a cell
costs at full parallelism), and the end (the pool's or Ray's shutdown). Rounds alternate the
executors so that machine drift hits both; medians are printed. The no-op suite is a plug-in written
to a temporary folder that every worker imports.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from attnbench.budget import Budget
from attnbench.cell import CellSpec
from attnbench.run.isolation import WorkerPool
from attnbench.run.ray_executor import run_with_ray
from attnbench.run.reporting import SilentReporter
from noop_plugin import NAME, install_noop_suite


def cells(n: int) -> list[CellSpec]:
    return [
        CellSpec(NAME, "mha", "smoke", "t", {}, {}, Budget("steps", 1), seed) for seed in range(n)
    ]


def measure(executor: str, n: int) -> tuple[float, float, float]:
    """(start s, per cell s, end s) of one executor running `n` cells in this process."""
    arrivals: list[float] = []
    records = []

    def finished(record) -> None:
        arrivals.append(time.perf_counter())
        records.append(record)

    started = time.perf_counter()
    if executor == "ray":
        run_with_ray(cells(n), "cpu", SilentReporter(), finished)
    else:
        WorkerPool("cpu", os.cpu_count() or 1).run(
            cells(n), lambda cell, index: None, finished, lambda: False
        )
    ended = time.perf_counter()
    failed = [r for r in records if r.status != "done"]
    if len(records) != n or failed:
        raise SystemExit(
            f"{executor}: {len(records)} of {n} cells came back, {len(failed)} failed: "
            f"{failed[0].error if failed else ''}"
        )
    return arrivals[0] - started, (arrivals[-1] - arrivals[0]) / (n - 1), ended - arrivals[-1]


def in_fresh_process(executor: str, n: int, env: dict[str, str]) -> tuple[float, ...]:
    done = subprocess.run(
        [sys.executable, __file__, "--measure", executor, str(n)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return tuple(float(x) for x in done.stdout.split()[-3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", nargs=2, metavar=("EXECUTOR", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(*measure(args.measure[0], int(args.measure[1])))
        return
    runs: dict[str, list[tuple[float, ...]]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as site:
        install_noop_suite(Path(site))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")])),
        }
        for _ in range(args.rounds):
            for executor, timings in runs.items():
                timings.append(in_fresh_process(executor, args.cells, env))
    print(
        f"{args.cells} no-op cells, {os.cpu_count()} workers (one per core), {args.rounds} rounds,"
        " medians"
    )
    for executor, timings in runs.items():
        start, per_cell, end = (statistics.median(t[i] for t in timings) for i in range(3))
        print(
            f"{executor:6} start {start:6.2f} s   per cell {per_cell * 1000:6.2f} ms   end"
            f" {end:5.2f} s   (per cell by round:"
            f" {', '.join(f'{t[1] * 1000:.2f}' for t in timings)} ms)"
        )


if __name__ == "__main__":
    main()
