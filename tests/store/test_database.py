"""The store: a round trip through SQLite and PostgreSQL, resume keys, retrying a busy database, and
refusing what it must not touch."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

import attnbench.store.database
from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellRecord, CellSpec
from attnbench.errors import StoreError
from attnbench.results import load, load_metrics, load_runs
from attnbench.store.database import Store, resolve_url
from attnbench.store.schema import SCHEMA_VERSION, Cell, Metric, Run

PROVENANCE = dict(
    command="attnbench run",
    git_sha="abc",
    git_dirty=False,
    host="h",
    device="cpu",
    python_version="3",
    torch_version="2",
    attnbench_version="0",
    versions={"torch": "2"},
)


def spec(seed=0, mechanism="mha", budget=100.0) -> CellSpec:
    return CellSpec(
        "mqar",
        mechanism,
        "smoke",
        "t",
        {"a": 1},
        {"num_heads": 1},
        Budget("flops", budget),
        seed,
        primary_metric="accuracy",
    )


def execute(url: str, statement: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(statement))
    engine.dispose()


def count_rows(store: Store) -> tuple[int, int, int]:
    with store.engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(table)).scalar()
            for table in (Run, Cell, Metric)
        )


def test_round_trip(store_url):
    store = Store.open(store_url)
    run = store.start_run(PROVENANCE, "smoke", {"n_cells": 2})
    outcome = CellOutcome(
        {"accuracy": 0.75, "loss": float("nan")},
        budget_used=101.0,
        flops=101.0,
        steps=5,
        params=1000,
        details={"lr": 1e-3},
    )
    store.write_cell(
        run,
        CellRecord(
            spec(0),
            "done",
            outcome,
            wall_seconds=1.5,
            peak_memory_bytes=2**33,
            memory_kind="rss_peak",
        ),
    )
    store.write_cell(run, CellRecord(spec(1), "failed", error="RuntimeError: boom"))
    store.finish_run(run, "failed")
    frame = load(store_url)
    assert list(frame["status"]) == ["done", "failed"]
    done = frame.iloc[0]
    assert done["accuracy"] == 0.75 and done["budget_used"] == 101.0 and done["params"] == 1000
    assert done["peak_memory_bytes"] == 2**33 and done["primary_metric"] == "accuracy"
    assert frame.iloc[1]["error"] == "RuntimeError: boom"
    assert done["config_hash"] == spec(0).config_hash
    long = load_metrics(store_url)
    assert (
        set(long["metric"]) == {"accuracy", "loss"} and long["value"].isna().sum() == 1
    )  # NaN stored as NULL
    runs = load_runs(store_url)
    assert runs.iloc[0]["status"] == "failed" and runs.iloc[0]["git_sha"] == "abc"
    assert store.done_keys() == {spec(0).resume_key}


def test_config_hash_ignores_seed_and_budget_but_not_hparams():
    assert spec(0).config_hash == spec(3, budget=5.0).config_hash
    assert spec(0).config_hash != spec(0, mechanism="linear").config_hash


def test_sqlite_is_in_wal_mode(tmp_path):
    Store.open(tmp_path / "w.db")
    assert sqlite3.connect(tmp_path / "w.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_read_only_open_does_not_create(tmp_path):
    with pytest.raises(StoreError, match="no database"):
        Store.open(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_read_only_open_of_an_empty_database_is_refused(store_url):
    if store_url.startswith("sqlite"):
        sqlite3.connect(store_url.removeprefix("sqlite:///")).close()
    with pytest.raises(StoreError, match="holds no attnbench results"):
        Store.open(store_url, create=False)


def test_newer_schema_is_refused(store_url):
    Store.open(store_url).dispose()
    execute(
        store_url,
        f"UPDATE attnbench_meta SET value='{SCHEMA_VERSION + 1}' WHERE key='schema_version'",
    )
    for create in (True, False):
        with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
            Store.open(store_url, create=create)


def test_a_file_that_is_not_a_database_is_left_alone(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("precious notes, not a database\n")
    with pytest.raises(StoreError, match="cannot open"):
        Store.open(path)
    assert path.read_text() == "precious notes, not a database\n"


def test_foreign_tables_are_refused(store_url):
    execute(store_url, "CREATE TABLE runs (x INTEGER)")
    with pytest.raises(StoreError, match="refusing"):
        Store.open(store_url)


def busy_error(url: str) -> OperationalError:
    """What the driver raises when the database is busy: a locked SQLite file, a PostgreSQL
    deadlock."""
    if url.startswith("sqlite"):
        return OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
    import psycopg.errors

    return OperationalError("INSERT", {}, psycopg.errors.DeadlockDetected("deadlock detected"))


def fail_metric_inserts(store: Store, times: int) -> list[int]:
    """Make the first `times` metric INSERTs fail as busy, after the cell's row went in; counts
    them."""
    failures = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO metrics") and len(failures) < times:
            failures.append(1)
            raise busy_error(store.url)

    event.listen(store.engine, "before_cursor_execute", before)
    return failures


def test_a_busy_transaction_is_retried_whole_and_commits_once(store_url, monkeypatch):
    monkeypatch.setattr(attnbench.store.database, "RETRY_BASE_S", 0.001)
    store = Store.open(store_url)
    run = store.start_run(PROVENANCE, "smoke", {})
    failures = fail_metric_inserts(store, times=2)
    outcome = CellOutcome(
        {"accuracy": 0.5, "loss": 1.0}, budget_used=1.0, flops=1.0, steps=1, params=1
    )
    cell_id = store.write_cell(run, CellRecord(spec(0), "done", outcome))
    assert len(failures) == 2 and store.retries == 2
    assert count_rows(store) == (
        1,
        1,
        2,
    )  # the cell rows of the two failed attempts were rolled back
    assert set(load_metrics(store)["cell_id"]) == {cell_id}


def test_a_database_busy_past_every_attempt_is_a_store_error(store_url, monkeypatch):
    monkeypatch.setattr(attnbench.store.database, "RETRY_BASE_S", 0.0)
    store = Store.open(store_url)
    run = store.start_run(PROVENANCE, "smoke", {})
    fail_metric_inserts(store, times=10**6)
    outcome = CellOutcome({"accuracy": 0.5}, budget_used=1.0, flops=1.0, steps=1, params=1)
    with pytest.raises(
        StoreError, match=f"stayed busy through {attnbench.store.database.RETRY_ATTEMPTS} attempts"
    ):
        store.write_cell(run, CellRecord(spec(0), "done", outcome))
    assert count_rows(store) == (1, 0, 0)


def test_other_errors_are_not_retried_and_are_one_line(store_url):
    store = Store.open(store_url)
    with pytest.raises(StoreError, match="cannot write to database") as raised:
        store.write_cell(12345, CellRecord(spec(0), "failed", error="no such run"))  # foreign key
    assert "\n" not in str(raised.value) and isinstance(raised.value.__cause__, IntegrityError)
    assert store.retries == 0 and count_rows(store) == (0, 0, 0)


def test_a_writer_waits_for_another_connections_sqlite_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(
        attnbench.store.database, "SQLITE_BUSY_TIMEOUT_S", 0.05
    )  # so that the wait also needs retries
    monkeypatch.setattr(attnbench.store.database, "RETRY_BASE_S", 0.01)
    store = Store.open(tmp_path / "l.db")
    run = store.start_run(PROVENANCE, "smoke", {})
    other = sqlite3.connect(tmp_path / "l.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock for 0.3 s
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    store.write_cell(run, CellRecord(spec(0), "failed", error="e"))
    release.join()
    other.close()
    assert time.monotonic() - started >= 0.25 and store.retries >= 1
    assert count_rows(store) == (1, 1, 0)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////proc/definitely/not/here.db",
        "notadialect://x/y",
        "postgresql+nodriver://u@127.0.0.1:1/db",
        "postgresql+psycopg://u@127.0.0.1:1/db",
    ],
)
def test_unopenable_urls_raise_store_error(url):
    with pytest.raises(StoreError):
        Store.open(url)


def test_url_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("ATTNBENCH_DB", raising=False)
    assert resolve_url(None) == "sqlite:///results/attnbench.db"
    monkeypatch.setenv("ATTNBENCH_DB", "sqlite:///x.db")
    assert resolve_url(None) == "sqlite:///x.db"
    assert resolve_url(tmp_path / "y.db") == f"sqlite:///{tmp_path / 'y.db'}"


def test_a_read_only_database_is_one_clear_error_and_keeps_its_rows(tmp_path):
    path = tmp_path / "r.db"
    store = Store.open(path)
    run_id = store.start_run(PROVENANCE, "smoke", {})
    store.write_cell(run_id, CellRecord(spec(0), "failed", error="kept"))
    store.dispose()
    read_only = Store.open(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(StoreError, match="cannot write to database .*readonly"):
        read_only.start_run({}, "smoke", {})
    assert len(load(path)) == 1
