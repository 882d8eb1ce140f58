"""One finished result per (config, budget, seed) and measurement, held by the database: a run
claims a cell in one transaction before its work starts, so concurrent `run --resume` of one plan do
each cell once, on SQLite and PostgreSQL; a plain run measures again as the next measurement; claims
of ended or dead runs go.
"""

from __future__ import annotations

import sys
from collections import Counter

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellRecord, CellSpec
from attnbench.registry import SUITES
from attnbench.run.planning import RunRequest, plan_run
from attnbench.run.runner import run_plan
from attnbench.store.database import Store
from attnbench.store.schema import Cell, Claim
from tests.store.test_concurrency import start_all, wait_all
from tests.support.fake_suite import EchoSuite
from tests.support.faulty_plugins import distribution

PROVENANCE = dict(
    command="attnbench run",
    git_sha="abc",
    git_dirty=False,
    host="h",
    device="cpu",
    python_version="3",
    torch_version="2",
    attnbench_version="0",
    versions={},
)
SEEDS = 12  # x 2 tasks = 24 cells that return at once: the runs collide on nearly every claim


def spec(seed: int = 0) -> CellSpec:
    return CellSpec(
        "mqar", "mha", "smoke", "t", {"a": 1}, {}, Budget("steps", 10), seed, primary_metric="score"
    )


def done(seed: int = 0) -> CellRecord:
    return CellRecord(
        spec(seed), "done", CellOutcome({"score": 1.0}, 10, 1.0, 10, 1), wall_seconds=0.1
    )


def measurements(store: Store) -> list[tuple[int, str, int]]:
    with store.engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                select(Cell.seed, Cell.status, Cell.measurement).order_by(Cell.id)
            )
        ]


def claims(store: Store) -> list[tuple[int, int]]:
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(Claim.run_id, Claim.measurement))]


def test_resume_leaves_a_done_or_claimed_cell_and_a_plain_run_measures_again(store_url):
    store = Store.open(store_url)
    first, second = (store.start_run(PROVENANCE, "smoke", {}) for _ in range(2))
    assert store.claim(first, spec().resume_key, resume=True).measurement == 1
    held = store.claim(second, spec().resume_key, resume=True)
    assert held.measurement is None and held.holder == first  # in flight in the first run
    store.write_cell(first, done(), 1)
    assert claims(store) == []  # the write gave the claim back
    assert store.claim(second, spec().resume_key, resume=True).measurement is None  # done
    assert (
        store.claim(second, spec().resume_key, resume=False).measurement == 2
    )  # measured again on purpose
    store.write_cell(second, done(), 2)
    assert measurements(store) == [(0, "done", 1), (0, "done", 2)]


def test_a_failed_cell_gives_its_measurement_back(store_url):
    store = Store.open(store_url)
    run = store.start_run(PROVENANCE, "smoke", {})
    number = store.claim(run, spec().resume_key, resume=True).measurement
    store.write_cell(run, CellRecord(spec(), "failed", error="boom"), number)
    assert store.claim(run, spec().resume_key, resume=True).measurement == 1


def test_claims_of_ended_or_crashed_runs_are_given_back(store_url):
    store = Store.open(store_url)
    ended, crashed, later = (store.start_run(PROVENANCE, "smoke", {}) for _ in range(3))
    store.claim(ended, spec(0).resume_key, resume=True)
    store.claim(crashed, spec(1).resume_key, resume=True)
    store.finish_run(ended, "interrupted")
    assert store.mark_crashed(crashed)
    assert claims(store) == []
    assert store.claim(later, spec(0).resume_key, resume=True).measurement == 1


def test_the_database_refuses_a_second_finished_result_of_one_measurement(store_url):
    store = Store.open(store_url)
    run = store.start_run(PROVENANCE, "smoke", {})
    store.write_cell(run, done(), 1)
    engine = create_engine(store_url)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cells (run_id, suite, mechanism, profile, task, config_hash, config,"
                " budget_kind, budget_value, seed, measurement, primary_metric, higher_is_better,"
                " conformance, status, wall_seconds, details, started_at, finished_at) SELECT"
                " run_id, suite, mechanism, profile, task, config_hash, config, budget_kind,"
                " budget_value, seed, measurement, primary_metric, higher_is_better, conformance,"
                " status, wall_seconds, details, started_at, finished_at FROM cells"
            )
        )
    engine.dispose()
    store.write_cell(
        run, done(), 1
    )  # a writer that lost its claim still keeps its result: the next measurement
    assert measurements(store) == [(0, "done", 1), (0, "done", 2)]


def test_the_same_mechanism_twice_is_one_mechanism():
    SUITES.register(EchoSuite())
    try:
        plan = plan_run(RunRequest("echo", ("mha", "mha", "linear", "mha"), seeds=2), device="cpu")
    finally:
        SUITES.unregister("echo")
    assert len(plan.cells) == 8 and len({c.resume_key for c in plan.cells}) == 8
    assert plan.mechanisms == ["linear", "mha"]


def test_a_run_in_process_claims_and_resume_skips_what_another_run_holds(tmp_path):
    SUITES.register(EchoSuite())
    try:
        store = Store.open(tmp_path / "r.db")
        plan = plan_run(RunRequest("echo", ("mha",), seeds=2), device="cpu")
        holder = store.start_run(
            {**PROVENANCE, "host": "another-host"},
            "smoke",
            {"process": {"host": "elsewhere", "pid": 1}},
        )
        store.claim(holder, plan.cells[0].resume_key, resume=True)  # in flight on another machine
        summary = run_plan(plan, store, resume=True)
    finally:
        SUITES.unregister("echo")
    assert summary.taken == 1 and len(summary.records) == 3 and summary.ok


def run_resumes(db: str, env: dict[str, str], runs: int) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "attnbench",
        "run",
        "--suite",
        "faulty",
        "-m",
        "ident",
        "--seeds",
        str(SEEDS),
        "--set",
        "sleep=[0.0, 0.0]",
        "--jobs",
        "1",
        "--resume",
        "--db",
        db,
    ]
    return wait_all(start_all([command] * runs, env))


def test_four_concurrent_resumes_of_one_plan_do_each_cell_once(store_url, tmp_path):
    """The issue's case: every run started at once, each with --resume: one done row per cell,
    not four."""
    env = distribution(tmp_path / "site")
    run_resumes(store_url, env, runs=4)
    engine = create_engine(store_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT task, seed, run_id FROM cells WHERE status = 'done'")
        ).all()
        statuses = {status for (status,) in conn.execute(text("SELECT status FROM runs"))}
        left = conn.execute(text("SELECT COUNT(*) FROM claims")).scalar()
    engine.dispose()
    per_cell = Counter((task, seed) for task, seed, _ in rows)
    assert len(per_cell) == 2 * SEEDS and set(per_cell.values()) == {1}
    assert statuses == {"done"} and left == 0
    per_run = Counter(run_id for *_, run_id in rows)
    print(
        f"\n{store_url.split(':')[0]}: 4 concurrent `run --resume` of {2 * SEEDS} cells: "
        f"{len(rows)} done rows, cells per run {sorted(per_run.values())}"
    )
