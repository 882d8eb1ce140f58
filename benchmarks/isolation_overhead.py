"""Per-cell cost of `--isolate`: the same trivial cells run the default way and each in a fresh
process.

    python benchmarks/isolation_overhead.py [--cells 30] [--rounds 3] [--jobs 1]

Two kinds of cell: `noop` returns at once (the pure cost of a process per cell: fork, pipe, exit),
and MQAR smoke with `mha` trained for one step on a tiny data set (adds what a fresh process pays
for a real suite: importing it and its first training step). Each round runs every plan both
ways, alternating, so that machine drift hits both; the forkserver's one-time start is measured
apart. With `--jobs 1` the default way is this process; with more, a pool of reused workers.
Prints ms/cell, medians over rounds, and the difference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from noop_plugin import NAME, install_noop_suite


def register_noop(site: Path) -> None:
    """The no-op plug-in on this process's path, so that its worker processes find it too."""
    install_noop_suite(site)
    sys.path.insert(0, str(site))


def timed(plan, store, jobs: int, isolate: bool) -> float:
    from attnbench.run.runner import run_plan

    started = time.perf_counter()
    summary = run_plan(plan, store, jobs=jobs, isolate=isolate)
    elapsed = time.perf_counter() - started
    if summary.count("done") != len(plan.cells):
        raise SystemExit(
            f"cells failed: {[r.error for r in summary.records if r.status != 'done'][:1]}"
        )
    return elapsed / len(plan.cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        register_noop(Path(scratch) / "site")
        from attnbench.run.planning import RunRequest, plan_run
        from attnbench.store.database import Store

        store = Store.open(Path(scratch) / "bench.db")
        plans = {
            "noop": plan_run(RunRequest(NAME, ("mha",), seeds=args.cells), device="cpu"),
            "mqar 1 step": plan_run(
                RunRequest(
                    "mqar",
                    ("mha",),
                    seeds=args.cells,
                    budget_value=1,
                    budget_kind="steps",
                    task_settings={"num_train": 64, "num_test": 16},
                ),
                device="cpu",
            ),
        }
        started = time.perf_counter()
        warm = plan_run(RunRequest(NAME, ("mha",), seeds=1), device="cpu")
        timed(warm, store, 1, isolate=True)
        print(
            "forkserver start (once per run, torch imported there):"
            f" {time.perf_counter() - started:.2f} s"
        )
        for name, plan in plans.items():
            timed(plan, store, args.jobs, isolate=False)  # warm-up: imports, first training step
            default, isolated = [], []
            for _ in range(args.rounds):
                default.append(timed(plan, store, args.jobs, isolate=False))
                isolated.append(timed(plan, store, args.jobs, isolate=True))
            d, i = statistics.median(default), statistics.median(isolated)
            print(
                f"{name:12s} {len(plan.cells)} cells, jobs {args.jobs}: default {d * 1000:7.1f}"
                f" ms/cell   --isolate {i * 1000:7.1f} ms/cell   overhead {(i - d) * 1000:+7.1f}"
                " ms/cell"
            )


if __name__ == "__main__":
    main()
