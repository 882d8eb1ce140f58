"""A database written by the previous schema opens, upgraded in place, on SQLite and PostgreSQL: its
results kept, a cell run again before becoming the next measurement of its key, and the same tables,
columns and indexes as a database created new."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from attnbench import results
from attnbench.errors import StoreError
from attnbench.store.database import Store
from attnbench.store.schema import SCHEMA_VERSION, Cell, Meta
from tests.store import schema_v1 as v1

NOW = datetime(2026, 11, 29, 12, 0)


def cell(run_id: int, seed: int, status: str) -> dict:
    return dict(
        run_id=run_id,
        suite="mqar",
        mechanism="mha",
        profile="smoke",
        task="t",
        config_hash="c" * 16,
        config={"suite": "mqar"},
        budget_kind="flops",
        budget_value=1e9,
        seed=seed,
        primary_metric="score",
        higher_is_better=True,
        conformance="passed",
        status=status,
        wall_seconds=1.0,
        details={},
        started_at=NOW,
        finished_at=NOW,
    )


def write_v1(url: str) -> None:
    """What attnbench wrote before measurements: seed 0 finished twice (run again), then failed
    once."""
    engine = create_engine(url)
    v1.METADATA.create_all(engine)
    with engine.begin() as conn:
        conn.execute(v1.META.insert().values(key="schema_version", value="1"))
        runs = [
            conn.execute(
                v1.RUNS.insert().values(
                    uid=f"run-{n}",
                    started_at=NOW,
                    finished_at=NOW,
                    status="done",
                    command="attnbench run",
                    profile="smoke",
                    plan={},
                    git_sha="a" * 40,
                    git_dirty=False,
                    host="h",
                    device="cpu",
                    python_version="3.11",
                    torch_version="2.13",
                    attnbench_version="0.1.0",
                    versions={},
                )
            ).inserted_primary_key[0]
            for n in (1, 2)
        ]
        for n, (run, seed, status) in enumerate(
            [(0, 0, "done"), (0, 1, "done"), (1, 0, "done"), (1, 0, "failed")], start=1
        ):
            cell_id = conn.execute(
                v1.CELLS.insert().values(**cell(runs[run], seed, status))
            ).inserted_primary_key[0]
            conn.execute(v1.METRICS.insert().values(cell_id=cell_id, name="score", value=n / 10))
    engine.dispose()


def structure(url: str) -> dict:
    engine = create_engine(url)
    found = inspect(engine)
    shape = {
        table: (
            sorted(c["name"] for c in found.get_columns(table)),
            sorted((i["name"], bool(i["unique"])) for i in found.get_indexes(table)),
        )
        for table in sorted(found.get_table_names())
    }
    engine.dispose()
    return shape


def test_a_version_1_database_is_upgraded_keeping_every_result(store_url):
    write_v1(store_url)
    store = Store.open(store_url, create=False)  # a read command upgrades it too
    with store.engine.connect() as conn:
        assert conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar() == str(
            SCHEMA_VERSION
        )
        rows = conn.execute(
            select(Cell.id, Cell.seed, Cell.status, Cell.measurement).order_by(Cell.id)
        ).all()
    assert [tuple(r)[1:] for r in rows] == [
        (0, "done", 1),
        (1, "done", 1),
        (0, "done", 2),
        (0, "failed", 3),
    ]
    frame = results.load(store)
    assert sorted(frame["score"]) == [0.1, 0.2, 0.3, 0.4]
    run = store.start_run(
        {
            "command": "x",
            "git_sha": None,
            "git_dirty": None,
            "host": "h",
            "device": "cpu",
            "python_version": "3",
            "torch_version": "2",
            "attnbench_version": "0",
            "versions": {},
        },
        "smoke",
        {},
    )
    assert store.claim(run, ("c" * 16, "flops", 1e9, 0), resume=False).measurement == 3
    with (
        pytest.raises(IntegrityError),
        store.engine.begin() as conn,
    ):  # one finished result per measurement
        conn.execute(text(f"UPDATE cells SET measurement = 1 WHERE id = {rows[2][0]}"))


def test_the_upgraded_database_has_what_a_new_one_has(store_url, tmp_path):
    write_v1(store_url)
    Store.open(store_url).dispose()
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    Store.open(fresh).dispose()
    if store_url.startswith("sqlite"):
        assert structure(store_url) == structure(fresh)
    else:  # the same tables and columns; index listings differ between dialects
        assert {t: c for t, (c, _) in structure(store_url).items()} == {
            t: c for t, (c, _) in structure(fresh).items()
        }


def test_upgrading_twice_changes_nothing(store_url):
    write_v1(store_url)
    Store.open(store_url).dispose()
    before = results.load(Store.open(store_url))
    after = results.load(Store.open(store_url))
    assert before.equals(after)


def test_a_schema_version_that_is_not_a_number_is_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    write_v1(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE attnbench_meta SET value = 'two' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(StoreError, match="schema version 'two', not a whole number"):
        Store.open(url)
