"""`--isolate`: a segfault, a hang, running out of memory or a NaN loss is that cell's result;
the others finish."""

from __future__ import annotations

import os
import sys

import pytest
from sqlalchemy import select

from attnbench import results
from attnbench.run.isolation import CellLimits, describe_exit, parse_bytes
from attnbench.run.planning import RunRequest, plan_run
from attnbench.run.runner import run_plan
from attnbench.store.database import Store
from attnbench.store.schema import Cell
from tests.conftest import run_cli
from tests.support.faulty_plugins import distribution

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux"
)


@pytest.fixture
def faulty(tmp_path, monkeypatch):
    """`faulty` and `ident` registered through entry points, which is how worker processes find
    them."""
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return distribution(tmp_path / "site")


def pids(store: Store) -> dict[int, int]:
    """Seed -> the process that ran it, for the cells that finished."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(Cell.seed, Cell.details).where(Cell.status == "done")).all()
    return {seed: details["pid"] for seed, details in rows}


def faulty_plan(faults: str, seeds: int):
    plan = plan_run(
        RunRequest(
            "faulty",
            ("ident",),
            seeds=seeds,
            task_settings={"faults": faults, "sleep": [0.0, 0.05]},
        ),
        device="cpu",
    )
    plan.cells = [c for c in plan.cells if c.task.startswith("t1")]
    return plan


@linux_only
def test_each_fault_is_recorded_with_its_status_and_the_others_finish(faulty, tmp_path):
    store = Store.open(tmp_path / "r.db")
    plan = faulty_plan("segv,hang,memoryerror,torch_oom,nan_loss", seeds=7)
    summary = run_plan(
        plan, store, jobs=2, isolate=True, limits=CellLimits(timeout=3.0, memory=3 * 2**30)
    )
    frame = results.load(store).set_index("seed")
    assert dict(frame["status"]) == {
        0: "failed",
        1: "timeout",
        2: "oom",
        3: "oom",
        4: "failed",
        5: "done",
        6: "done",
    }
    errors = frame["error"]
    assert (
        "killed by signal 11 (SIGSEGV)" in errors[0] and "faulty_plugins.py" in errors[0]
    )  # faulthandler's trace
    assert "3 s limit (--cell-timeout)" in errors[1]
    assert errors[2].startswith("MemoryError") and "can't allocate memory" in errors[3]
    assert errors[4].startswith("NonFiniteLossError: training loss became non-finite")
    assert frame.loc[[5, 6], "score"].notna().all() and len(summary.records) == 7 and not summary.ok
    ran_in = pids(store)
    assert (
        len(set(ran_in.values())) == 2 and os.getpid() not in ran_in.values()
    )  # a fresh process per cell
    run = results.load_runs(store).iloc[0]
    assert run["status"] == "failed"


def test_reused_workers_without_isolate(faulty, tmp_path):
    store = Store.open(tmp_path / "r.db")
    summary = run_plan(faulty_plan("", seeds=6), store, jobs=2)
    ran_in = set(pids(store).values())
    assert summary.count("done") == 6 and len(ran_in) <= 2 and os.getpid() not in ran_in


def test_limits_imply_isolation_and_are_stored_with_the_run(faulty, tmp_path):
    store = Store.open(tmp_path / "r.db")
    run_plan(faulty_plan("", seeds=1), store, limits=CellLimits(timeout=60.0))
    with store.engine.connect() as conn:
        plan = conn.exec_driver_sql("SELECT plan FROM runs").scalar()
    assert '"isolate": true' in plan and '"cell_timeout": 60.0' in plan
    assert pids(store)[0] != os.getpid()


@pytest.mark.parametrize(
    "text,expected",
    [
        ("4G", 4 * 2**30),
        ("512m", 512 * 2**20),
        ("1.5GiB", int(1.5 * 2**30)),
        ("2000000", 2_000_000),
        ("1T", 2**40),
        (" 8 GB ", 8 * 2**30),
    ],
)
def test_memory_sizes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "4X", "G"])
def test_bad_memory_sizes(text):
    with pytest.raises(ValueError, match="not a memory size"):
        parse_bytes(text)


def test_bad_memory_limit_is_one_line_and_exit_2():
    result = run_cli("run", "--suite", "mqar", "--memory-limit", "lots", "--db", "sqlite://")
    assert (
        result.returncode == 2
        and result.stderr.count("\n") == 1
        and "not a memory size" in result.stderr
    )


def test_exit_descriptions():
    assert describe_exit(-11) == "was killed by signal 11 (SIGSEGV)"
    assert (
        "out-of-memory killer" in describe_exit(-9) and describe_exit(3) == "exited with status 3"
    )
