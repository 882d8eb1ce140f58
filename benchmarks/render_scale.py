"""Rendering the leaderboards from a large store: the terminal table and the static site.

    python benchmarks/render_scale.py [--cells 100000] [--db /tmp/attnbench-render.db]

Fills a SQLite store with `--cells` finished cells the way a team's store grows: 4 suites x 25
mechanisms x 2 budgets x 5 seeds, run again at every commit (100 runs for 100,000 cells), three
metrics per cell plus a 3x5 needle grid on the needle suite's cells (written in bulk, which is not
what is measured); the leaderboard shows the latest of each cell. It then times what `attnbench
leaderboard` and `attnbench leaderboard --html` do: loading the results, building and printing the
rich tables and grids, and rendering every page of the site. Targets: terminal under 1 s, site under
5 s.
"""

from __future__ import annotations

import argparse
import io
import itertools
import random
import tempfile
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert

from attnbench import results
from attnbench.metric_names import grid_metric
from attnbench.store.database import Store
from attnbench.store.schema import Cell, Metric
from attnbench.views import grid, leaderboard

SUITES = ("mqar", "needle", "eurosat", "longbench")
MECHANISMS = tuple(f"mech_{i:02d}" for i in range(25))
SEEDS = 5
BUDGETS = 2
GRID = [(length, depth) for length in (128, 256, 512) for depth in (0, 25, 50, 75, 100)]


def fill(store: Store, n_cells: int) -> None:
    rng = random.Random(0)
    now = datetime(2026, 11, 29)
    per_run = len(SUITES) * len(MECHANISMS) * BUDGETS * SEEDS
    cells, metrics, cell_id = [], [], 0
    for commit in range(-(-n_cells // per_run)):
        run_id = store.start_run(
            dict(
                command="attnbench run --suite all",
                git_sha=f"{commit:040x}",
                git_dirty=False,
                host="bench",
                device="cpu",
                python_version="3.11",
                torch_version="2.13",
                attnbench_version="0.1.0",
                versions={},
            ),
            "smoke",
            {},
        )
        for suite, mechanism, budget, seed in itertools.product(
            SUITES, MECHANISMS, range(BUDGETS), range(SEEDS)
        ):
            cell_id += 1
            if cell_id > n_cells:
                break
            primary = "score" if suite in ("needle", "longbench") else "accuracy"
            scale = 100.0 if primary == "score" else 1.0
            cells.append(
                dict(
                    id=cell_id,
                    run_id=run_id,
                    suite=suite,
                    mechanism=mechanism,
                    profile="smoke",
                    task=f"{suite}-task",
                    config_hash=f"{hash((suite, mechanism, budget)) & 0xFFFFFFFFFFFF:016x}",
                    config={"budget": budget},
                    budget_kind="flops",
                    budget_value=1e12 * (budget + 1),
                    budget_used=1e12 * (budget + 1),
                    flops_used=1e12 * (budget + 1),
                    steps=1000,
                    seed=seed,
                    primary_metric=primary,
                    higher_is_better=True,
                    conformance="passed",
                    flops_attention=1e6,
                    flops_selection=0.0,
                    flops_projections=2e6,
                    kv_cache_bytes=65536.0,
                    kv_read_bytes_per_token=65536.0,
                    state_bytes=0.0,
                    status="done",
                    error=None,
                    wall_seconds=rng.uniform(10, 100),
                    peak_memory_bytes=2**28,
                    memory_kind="rss_peak",
                    params=60_000,
                    details={},
                    started_at=now,
                    finished_at=now,
                )
            )
            metrics += [
                dict(cell_id=cell_id, name=primary, value=rng.random() * scale),
                dict(cell_id=cell_id, name="final_train_loss", value=rng.random()),
                dict(cell_id=cell_id, name="secondary", value=rng.random()),
            ]
            if suite == "needle":
                metrics += [
                    dict(cell_id=cell_id, name=grid_metric(length, depth), value=rng.random() * 100)
                    for length, depth in GRID
                ]
    with store.engine.begin() as conn:
        for start in range(0, len(cells), 20_000):
            conn.execute(insert(Cell), cells[start : start + 20_000])
        for start in range(0, len(metrics), 50_000):
            conn.execute(insert(Metric), metrics[start : start + 50_000])


def timed(label: str, fn):
    started = time.perf_counter()
    value = fn()
    print(f"{label:44s} {time.perf_counter() - started:7.2f} s", flush=True)
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="attnbench-render-"))
    db = Path(args.db) if args.db else folder / "results.db"
    store = Store.open(db)
    timed(f"fill {args.cells:,} cells (bulk, not measured)", lambda: fill(store, args.cells))

    from rich.console import Console

    from attnbench.views import console as views

    def terminal() -> None:
        cells = results.load(store, columns=results.RANKING_COLUMNS, latest_only=True)
        rows = leaderboard.build(cells)
        views.console = Console(file=io.StringIO(), width=140)
        views.print_leaderboard(rows, grid.grids(cells, rows=rows))

    def site() -> None:
        from attnbench.views.site import render_site

        render_site(results.load(store, decode=False), results.load_runs(store), folder / "site")

    _, terminal_s = timed("terminal leaderboard (load + build + print)", terminal)
    _, site_s = timed("HTML site (load + render every page)", site)
    print(
        f"\n{args.cells:,} cells: terminal {terminal_s:.2f} s (target < 1 s), site {site_s:.2f} s"
        " (target < 5 s)"
    )


if __name__ == "__main__":
    main()
