"""The store: a round trip through SQLite, resume keys, and refusing what it must not touch."""
from __future__ import annotations

import sqlite3

import pytest

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellRecord, CellSpec
from attnbench.errors import StoreError
from attnbench.results import load, load_metrics, load_runs
from attnbench.schema import SCHEMA_VERSION
from attnbench.store import Store, resolve_url

PROVENANCE = dict(command="attnbench run", git_sha="abc", git_dirty=False, host="h", device="cpu",
                  python_version="3", torch_version="2", attnbench_version="0", versions={"torch": "2"})


def spec(seed=0, mechanism="mha", budget=100.0) -> CellSpec:
    return CellSpec("mqar", mechanism, "smoke", "t", {"a": 1}, {"num_heads": 1}, Budget("flops", budget), seed,
                    primary_metric="accuracy")


def test_round_trip(tmp_path):
    store = Store.open(tmp_path / "r.db")
    run = store.start_run(PROVENANCE, "smoke", {"n_cells": 2})
    outcome = CellOutcome({"accuracy": 0.75, "loss": float("nan")}, budget_used=101.0, flops=101.0, steps=5,
                          params=1000, details={"lr": 1e-3})
    store.write_cell(run, CellRecord(spec(0), "done", outcome, wall_seconds=1.5, peak_memory_bytes=2**33,
                                     memory_kind="rss_peak"))
    store.write_cell(run, CellRecord(spec(1), "failed", error="RuntimeError: boom"))
    store.finish_run(run, "failed")
    frame = load(tmp_path / "r.db")
    assert list(frame["status"]) == ["done", "failed"]
    done = frame.iloc[0]
    assert done["accuracy"] == 0.75 and done["budget_used"] == 101.0 and done["params"] == 1000
    assert done["peak_memory_bytes"] == 2**33 and done["primary_metric"] == "accuracy"
    assert frame.iloc[1]["error"] == "RuntimeError: boom"
    assert done["config_hash"] == spec(0).config_hash
    long = load_metrics(tmp_path / "r.db")
    assert set(long["metric"]) == {"accuracy", "loss"} and long["value"].isna().sum() == 1  # NaN stored as NULL
    runs = load_runs(tmp_path / "r.db")
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


def test_newer_schema_is_refused(tmp_path):
    Store.open(tmp_path / "n.db").dispose()
    with sqlite3.connect(tmp_path / "n.db") as conn:
        conn.execute("UPDATE attnbench_meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer"):
        Store.open(tmp_path / "n.db")


def test_a_file_that_is_not_a_database_is_left_alone(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("precious notes, not a database\n")
    with pytest.raises(StoreError, match="cannot open"):
        Store.open(path)
    assert path.read_text() == "precious notes, not a database\n"


def test_foreign_tables_are_refused(tmp_path):
    with sqlite3.connect(tmp_path / "f.db") as conn:
        conn.execute("CREATE TABLE runs (x INTEGER)")
    with pytest.raises(StoreError, match="refusing"):
        Store.open(tmp_path / "f.db")


@pytest.mark.parametrize("url", ["sqlite:////proc/definitely/not/here.db", "notadialect://x/y",
                                 "postgresql+nodriver://u@127.0.0.1:1/db"])
def test_unopenable_urls_raise_store_error(url):
    with pytest.raises(StoreError):
        Store.open(url)


def test_url_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("ATTNBENCH_DB", raising=False)
    assert resolve_url(None) == "sqlite:///results/attnbench.db"
    monkeypatch.setenv("ATTNBENCH_DB", "sqlite:///x.db")
    assert resolve_url(None) == "sqlite:///x.db"
    assert resolve_url(tmp_path / "y.db") == f"sqlite:///{tmp_path / 'y.db'}"
