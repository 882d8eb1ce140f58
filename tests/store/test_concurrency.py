"""Several processes writing one database at once lose no row and duplicate none, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter

from sqlalchemy import create_engine, select

from attnbench.store.schema import Cell, Metric, Run
from tests.conftest import REPO, make_distribution
from tests.store.concurrent_writer import METRICS

WRITERS, CELLS = 4, 200


def start_all(commands: list[list[str]], env: dict[str, str]) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]


def wait_all(processes: list[subprocess.Popen]) -> list[str]:
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        outputs.append(out)
    return outputs


def rows(url: str):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return (
                conn.execute(select(Run.id, Run.status)).all(),
                conn.execute(select(Cell.id, Cell.run_id, Cell.mechanism, Cell.seed)).all(),
                conn.execute(select(Metric.cell_id, Metric.name)).all(),
            )
    finally:
        engine.dispose()


def test_four_writers_of_200_cells_lose_and_duplicate_nothing(store_url, tmp_path):
    processes = start_all(
        [
            [
                sys.executable,
                "-m",
                "tests.store.concurrent_writer",
                store_url,
                str(writer),
                str(CELLS),
                str(tmp_path),
            ]
            for writer in range(WRITERS)
        ],
        {"PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < WRITERS and time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            break
        time.sleep(0.01)
    (tmp_path / "go").touch()  # all at once: the schema set-up on the empty database races too
    reports = [json.loads(out.strip().splitlines()[-1]) for out in wait_all(processes)]

    runs, cells, metrics = rows(store_url)
    assert sorted(run_id for run_id, _ in runs) == sorted(report["run_id"] for report in reports)
    assert {status for _, status in runs} == {"done"}
    run_of_writer = {f"writer{report['writer']}": report["run_id"] for report in reports}
    expected = Counter(
        (run_of_writer[f"writer{w}"], f"writer{w}", i) for w in range(WRITERS) for i in range(CELLS)
    )
    assert Counter((run_id, mechanism, seed) for _, run_id, mechanism, seed in cells) == expected
    per_cell = Counter(cell_id for cell_id, _ in metrics)
    assert len(set(metrics)) == len(metrics) == WRITERS * CELLS * len(METRICS)
    assert set(per_cell) == {cell_id for cell_id, *_ in cells} and set(per_cell.values()) == {
        len(METRICS)
    }

    seconds = max(report["seconds"] for report in reports)
    transactions = WRITERS * (CELLS + 2)
    print(
        f"\n{store_url.split(':')[0]}: {WRITERS} writers x {CELLS} cells, {transactions}"
        f" transactions in {seconds:.2f} s = {transactions / seconds:.0f} transactions/s"
        f" ({WRITERS * CELLS * (1 + len(METRICS)) / seconds:.0f} rows/s),"
        f" {sum(report['retries'] for report in reports)} retries, 0 rows lost, 0 duplicated"
    )


ECHO_PLUGIN = """
from attnbench.mechanism import FlopBreakdown, MechanismSpec
from tests.support.fake_suite import EchoSuite

SUITE = EchoSuite()
# builds nothing, so its conformance check fails at once (--allow-nonconforming); the echo suite
# never calls it
STUB = MechanismSpec(
    name="stub",
    kind="sequence",
    description="d",
    paper="p",
    build=lambda dim, causal=True: None,
    flops=lambda *a, **k: FlopBreakdown(),
)
"""


def test_three_attnbench_runs_share_one_sqlite_file(tmp_path):
    site = make_distribution(
        tmp_path / "site",
        "echosuite",
        modules={"echo_plugin": ECHO_PLUGIN},
        mechanisms={"stub": "echo_plugin:STUB"},
        suites={"echo": "echo_plugin:SUITE"},
    )
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    command = [
        sys.executable,
        "-m",
        "attnbench",
        "run",
        "--suite",
        "echo",
        "-m",
        "stub",
        "--allow-nonconforming",
        "--seeds",
        "5",
        "--jobs",
        "1",
        "--db",
        db,
    ]
    wait_all(start_all([command] * 3, {"PYTHONPATH": f"{site}:{REPO}"}))

    runs, cells, metrics = rows(db)
    assert len(runs) == 3 and {status for _, status in runs} == {"done"}
    per_run = Counter(run_id for _, run_id, _, _ in cells)
    assert sorted(per_run.values()) == [10, 10, 10]  # 2 tasks x 5 seeds each
    assert len(set(metrics)) == len(metrics) == 30 * 2  # score and extra
