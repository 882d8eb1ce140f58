"""A run killed at any moment loses no finished cell; `--resume` runs exactly what is missing; a
dead run is marked `crashed`; a killed worker is a failed cell; Ctrl-C stops after the cells in
flight."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from attnbench.run.isolation import process_alive, this_process
from attnbench.run.planning import RunRequest, plan_run
from attnbench.run.runner import mark_crashed_runs, run_plan
from attnbench.store.database import Store
from tests.support.faulty_plugins import distribution

CELLS = 30  # 2 tasks x 15 seeds, 0.1-0.3 s each
RUN = ["run", "--suite", "faulty", "-m", "ident", "--seeds", "15"]
DONE_LINE = re.compile(r"^done\s+faulty/(t\d) ident seed=(\d+)", re.MULTILINE)


def start_cli(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "attnbench", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=log.parent,
        )


def query(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # tables not created yet
            return []


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def done_cells(db: Path) -> list[tuple[str, int]]:
    return query(db, "SELECT task, seed FROM cells WHERE status = 'done'")


def assert_consistent(db: Path) -> None:
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert query(db, "PRAGMA foreign_key_check") == []
    incomplete = query(
        db,
        "SELECT c.id FROM cells c WHERE (c.status = 'done' AND "
        "(SELECT COUNT(*) FROM metrics m WHERE m.cell_id = c.id) != 2) OR c.finished_at IS NULL",
    )
    assert incomplete == []


def gone(pid: int) -> bool:
    return process_alive({"host": socket.gethostname(), "pid": pid}) is False


@pytest.mark.skipif(
    not os.path.isdir("/proc/self"), reason="judging whether a process lives needs /proc"
)
def test_sigkill_at_random_moments_loses_no_finished_cell(tmp_path):
    env = distribution(tmp_path / "site")
    db = tmp_path / "k.db"
    args = [*RUN, "--db", str(db)]
    rng = random.Random(6)
    printed: set[tuple[str, int]] = set()
    killed_runs = []
    for trial in range(5):
        stored_before = set(done_cells(db))
        jobs = [
            "--jobs",
            "2" if trial % 2 == 0 else "1",
        ]  # worker processes, or cells in the CLI's own process
        proc = start_cli(
            args + jobs + (["--resume"] if trial else []), env, tmp_path / f"trial{trial}.log"
        )
        wait_for(
            lambda proc=proc, before=len(stored_before): (  # noqa: B008 (bound now, read later)
                len(done_cells(db)) > before or proc.poll() is not None
            )
        )
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_runs.append(max(r for (r,) in query(db, "SELECT id FROM runs")))
        proc.wait()
        assert_consistent(db)
        stored = set(done_cells(db))
        assert stored_before <= stored
        printed |= {
            (task, int(seed))
            for task, seed in DONE_LINE.findall((tmp_path / f"trial{trial}.log").read_text())
        }
        assert printed <= stored, f"cells reported done but not stored: {printed - stored}"
    workers = [
        pid
        for (pid,) in query(
            db, "SELECT json_extract(details, '$.pid') FROM cells WHERE status = 'done'"
        )
    ]
    wait_for(
        lambda: all(gone(pid) for pid in workers), timeout=10
    )  # no worker outlives its killed run
    missing = CELLS - len(done_cells(db))
    final = start_cli(args + ["--jobs", "2", "--resume"], env, tmp_path / "final.log")
    assert final.wait(timeout=300) == 0, (tmp_path / "final.log").read_text()
    assert_consistent(db)
    assert len(done_cells(db)) == len(set(done_cells(db))) == CELLS
    last_run = max(r for (r,) in query(db, "SELECT id FROM runs"))
    assert query(db, f"SELECT COUNT(*) FROM cells WHERE run_id = {last_run}") == [(missing,)]
    statuses = dict(query(db, "SELECT id, status FROM runs"))
    assert killed_runs and all(statuses[run] == "crashed" for run in killed_runs)
    assert statuses[last_run] == "done" and "running" not in statuses.values()


@pytest.mark.parametrize("how", ["from outside", "by itself"])
def test_a_killed_worker_is_a_failed_cell_and_the_run_goes_on(tmp_path, monkeypatch, how):
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    distribution(tmp_path / "site")
    store = Store.open(tmp_path / "r.db")
    settings = {
        "faults": "ok,sigkill" if how == "by itself" else "",
        "sleep": [0.3, 0.3],
        "pid_dir": str(tmp_path),
    }
    plan = plan_run(RunRequest("faulty", ("ident",), seeds=4, task_settings=settings), device="cpu")
    plan.cells = [c for c in plan.cells if c.task.startswith("t1")]

    def kill_seed_1() -> None:
        pid_file = tmp_path / "1.pid"
        wait_for(pid_file.exists)
        time.sleep(0.05)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_seed_1, daemon=True)
    if how == "from outside":
        killer.start()
    summary = run_plan(plan, store, jobs=2)
    assert {r.spec.seed: r.status for r in summary.records} == {
        0: "done",
        1: "failed",
        2: "done",
        3: "done",
    }
    failed = next(r for r in summary.records if r.status == "failed")
    assert "worker process" in failed.error and "killed by signal 9 (SIGKILL)" in failed.error
    assert not summary.ok and results_statuses(store) == ["failed"]


def results_statuses(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return [status for (status,) in conn.exec_driver_sql("SELECT status FROM runs")]


def test_dead_runs_are_marked_crashed_and_live_ones_left(tmp_path):
    store = Store.open(tmp_path / "r.db")
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = {**this_process(), "pid": int(finished.stdout), "start_ticks": None}
    provenance = dict(
        command="attnbench run",
        git_sha=None,
        git_dirty=None,
        host="h",
        device="cpu",
        python_version="3",
        torch_version="2",
        attnbench_version="0",
        versions={},
    )
    runs = {
        name: store.start_run(provenance, "smoke", {"process": identity})
        for name, identity in [
            ("dead", dead),
            ("alive", this_process()),
            ("elsewhere", {**dead, "host": "another-machine"}),
            ("reused_pid", {**this_process(), "start_ticks": "1"}),
            ("unknown", {}),
        ]
    }
    assert process_alive(this_process()) is True and process_alive(dead) is False
    assert sorted(mark_crashed_runs(store)) == sorted([runs["dead"], runs["reused_pid"]])
    assert dict(store.running_runs()).keys() == {runs["alive"], runs["elsewhere"], runs["unknown"]}
    assert mark_crashed_runs(store) == []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a process")
def test_ctrl_c_finishes_the_cells_in_flight_then_stops(tmp_path):
    env = distribution(tmp_path / "site")
    db = tmp_path / "i.db"
    args = [*RUN, "--jobs", "2", "--db", str(db), "--set", "sleep=[0.3,0.5]"]
    proc = start_cli(args, env, tmp_path / "int.log")
    wait_for(lambda: len(done_cells(db)) > 0)
    before = len(done_cells(db))
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    output = (tmp_path / "int.log").read_text()
    last = output.strip().splitlines()[-1]
    assert (
        last.startswith("interrupted:")
        and last.endswith("--resume")
        and "attnbench run --suite faulty" in last
    )
    assert "stopping after the cells in flight" in output
    statuses = [s for (s,) in query(db, "SELECT status FROM cells")]
    assert before < len(statuses) < CELLS and set(statuses) == {
        "done"
    }  # the cells in flight finished
    assert query(db, "SELECT status FROM runs") == [("interrupted",)]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a process")
def test_a_second_ctrl_c_aborts_the_cell_in_flight(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    distribution(tmp_path / "site")
    store = Store.open(tmp_path / "r.db")
    plan = plan_run(
        RunRequest(
            "faulty",
            ("ident",),
            seeds=2,
            task_settings={"sleep": [60, 60], "pid_dir": str(tmp_path)},
        ),
        device="cpu",
    )

    def press_ctrl_c_twice() -> None:
        wait_for((tmp_path / "0.pid").exists)  # the first cell is running, here in this process
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c_twice, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_plan(plan, store, jobs=1)
    assert time.monotonic() - started < 30
    assert results_statuses(store) == ["interrupted"]
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM cells").scalar() == 0
