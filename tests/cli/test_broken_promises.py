"""The promises an attacker and a careless user broke, each kept now: conformance under the cells'
isolation, a plug-in's SystemExit as its cell's failure, a damaged SQLite file never written to,
values PostgreSQL would refuse caught at planning or made storable, data printed verbatim, SIGTERM
ending a run cleanly, one page per suite however its name is spelled, and a database the user may
only read still read."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from attnbench.cli import main
from attnbench.views.site import page_name
from tests.conftest import run_cli
from tests.support.faulty_plugins import distribution
from tests.views.site_data import populate

FAULTY = ["run", "--suite", "faulty", "--seeds", "1", "--jobs", "1"]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return distribution(tmp_path / "site")


@pytest.fixture
def registered():
    """The faulty suite and `ident` in this process, for `main()` called here (no subprocess to
    start)."""
    from attnbench.registry import MECHANISMS, SUITES
    from tests.support.faulty_plugins import IDENT, SUITE

    SUITES.register(SUITE)
    MECHANISMS.register(IDENT)
    yield MECHANISMS
    SUITES.unregister(SUITE.name)
    MECHANISMS.unregister(IDENT.name)


@pytest.mark.parametrize(
    "mechanism,why",
    [("broken_segv", "killed by signal 11 (SIGSEGV)"), ("broken_exit", "SystemExit")],
)
def test_isolation_covers_conformance_a_crashing_check_is_a_refusal(env, tmp_path, mechanism, why):
    db = tmp_path / "r.db"
    result = run_cli(*FAULTY, "-m", "ident", "-m", mechanism, "--isolate", "--db", str(db), env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"mechanism '{mechanism}' fails conformance" in result.stderr and why in result.stderr


def test_a_hanging_check_is_refused_at_the_cell_timeout(env, tmp_path):
    started = time.monotonic()
    result = run_cli(
        *FAULTY, "-m", "broken_hang", "--cell-timeout", "2", "--db", str(tmp_path / "r.db"), env=env
    )
    assert result.returncode == 2 and "did not finish within the 2 s limit" in result.stderr
    assert time.monotonic() - started < 60


def test_a_check_that_exits_is_a_refusal_without_isolation_too(env, tmp_path):
    result = run_cli("check", "broken_exit", env=env)
    assert (
        result.returncode == 1
        and "SystemExit" in result.stdout
        and "Traceback" not in result.stderr
    )


def test_a_plug_in_raising_systemexit_is_its_cells_failure(registered, tmp_path, capsys):
    db = tmp_path / "r.db"
    code = main(
        [*FAULTY, "-m", "ident", "--seeds", "2", "--set", "faults=systemexit,ok", "--db", str(db)]
    )
    assert code == 1, capsys.readouterr().err
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT seed, status FROM cells WHERE task LIKE 't1%'").fetchall())
        error = conn.execute(
            "SELECT error FROM cells WHERE seed = 0 AND task LIKE 't1%'"
        ).fetchone()[0]
    assert rows == {0: "failed", 1: "done"} and error.startswith("SystemExit: 3")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_damaged_sqlite_file_is_never_written_and_read_with_a_warning(env, tmp_path, seed):
    db = tmp_path / "r.db"
    populate(db, "m").dispose()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE padding (x TEXT)")
        conn.executemany("INSERT INTO padding VALUES (?)", [("x" * 500,)] * 400)
    conn.close()  # the last connection checkpoints the WAL into the file
    assert not Path(f"{db}-wal").exists()
    size = db.stat().st_size
    with open(db, "r+b") as file:
        file.seek(size // 2)
        file.write(random.Random(seed).randbytes(4096))
    before = db.read_bytes()
    result = run_cli(*FAULTY, "-m", "ident", "--db", str(db), env=env)
    assert (
        result.returncode == 2
        and "is damaged" in result.stderr
        and "refusing to write" in result.stderr
    )
    assert db.read_bytes() == before
    read = run_cli("leaderboard", "--db", str(db))
    assert (
        "warning: database" in read.stderr
        and "damaged" in read.stderr
        and "Traceback" not in read.stderr
    )


def test_long_names_and_nul_are_refused_at_planning(registered, tmp_path, capsys):
    from dataclasses import replace

    from tests.support.faulty_plugins import IDENT

    long_name = "m" * 70
    registered.register(replace(IDENT, name=long_name))
    try:
        assert main([*FAULTY, "-m", long_name, "--db", str(tmp_path / "r.db")]) == 2
    finally:
        registered.unregister(long_name)
    assert "is 70 characters; the results database holds at most 64" in capsys.readouterr().err
    config = tmp_path / "nul.toml"
    config.write_text(
        'suite = "faulty"\nmechanisms = ["ident"]\n[settings]\nfaults = "a\\u0000b"\n'
    )
    assert main(["run", "--config", str(config), "--db", str(tmp_path / "r.db")]) == 2
    assert "holds a NUL character" in capsys.readouterr().err
    assert (
        main(
            [*FAULTY, "-m", "ident", "--set", f"faults={'x' * 200}", "--db", str(tmp_path / "r.db")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "task label" in err and "at most 128" in err
    assert not (tmp_path / "r.db").exists()


def test_what_a_cell_reports_after_its_work_is_stored_on_postgresql(
    registered, postgres_url, capsys
):
    """NUL in an error, NaN in details: PostgreSQL refused both after the work was done, losing
    the cell."""
    code = main(
        [
            *FAULTY,
            "-m",
            "ident",
            "--seeds",
            "2",
            "--set",
            "faults=unstorable,ok",
            "--db",
            postgres_url,
        ]
    )
    assert code == 1, capsys.readouterr().err
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT seed, status, error FROM cells WHERE task LIKE 't1%' ORDER BY seed")
        ).all()
        details = (
            conn.execute(text("SELECT details FROM cells WHERE status = 'done'")).scalars().all()
        )
    engine.dispose()
    assert [(seed, status) for seed, status, _ in rows] == [(0, "failed"), (1, "done")]
    assert "bad byte \\x00 in a message" in rows[0][2] and all(d["nan"] is None for d in details)


def test_a_metric_name_too_long_to_store_fails_its_cell_with_the_reason(registered, tmp_path):
    db = tmp_path / "r.db"
    assert main([*FAULTY, "-m", "ident", "--set", "faults=longmetric", "--db", str(db)]) == 1
    with sqlite3.connect(db) as conn:
        (error,) = conn.execute("SELECT error FROM cells WHERE task LIKE 't1%'").fetchone()
    assert "metric name" in error and "1-128 characters" in error


@pytest.mark.parametrize("where", ["mechanism", "db", "hparam"])
def test_square_brackets_in_data_print_verbatim(registered, tmp_path, capsys, where):
    evil = "x[/]y[bold]z"
    if where == "mechanism":
        db = tmp_path / "r.db"
        populate(db, evil).dispose()
        assert main(["leaderboard", "--db", str(db)]) == 0
    elif where == "db":
        folder = tmp_path / evil
        folder.mkdir(parents=True)
        assert main([*FAULTY, "-m", "ident", "--db", str(folder / "r.db")]) == 0
    else:
        assert main(["check", "sliding_window", "--hparam", f"window='{evil}'"]) == 2
    out, err = capsys.readouterr()
    assert "MarkupError" not in err and "Traceback" not in err
    assert evil in (out if where != "hparam" else err)


def test_sigterm_ends_the_run_at_once_and_marks_it(env, tmp_path):
    db = tmp_path / "r.db"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "attnbench",
            *FAULTY,
            "-m",
            "ident",
            "--seeds",
            "1",
            "--set",
            "faults=hang",
            "--db",
            str(db),
        ],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if db.exists() and _query(db, "SELECT status FROM runs") == [("running",)]:
            break
        time.sleep(0.1)
    time.sleep(1.0)  # inside the hanging cell
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and "interrupted" in err and "Traceback" not in err
    assert _query(db, "SELECT status FROM runs") == [("interrupted",)]
    assert _query(db, "SELECT COUNT(*) FROM claims") == [(0,)]


def _query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []


def test_suites_whose_names_slug_alike_get_pages_of_their_own():
    names = ["mqar.x", "mqar/x", "mqar-x", "mqar x", "mqär"]
    pages = [page_name(name) for name in names]
    assert len(set(pages)) == len(names) and page_name("mqar") == "suite-mqar.html"
    assert all("/" not in page and page.endswith(".html") for page in pages)


def test_a_database_opened_read_only_is_read(tmp_path):
    db = tmp_path / "r.db"
    populate(db, "m").dispose()
    result = run_cli("leaderboard", "--db", f"sqlite:///file:{db}?mode=ro&uri=true")
    assert result.returncode == 0 and "mha" in result.stdout, result.stderr


def test_a_database_file_the_user_may_only_read_is_read_read_only(tmp_path, monkeypatch):
    """Root may write anything, so the file's permissions are what `writable` reports here."""
    import attnbench.store.database
    from attnbench import results
    from attnbench.store.database import Store

    db = tmp_path / "r.db"
    populate(db, "m").dispose()
    monkeypatch.setattr(attnbench.store.database, "writable", lambda path: False)
    monkeypatch.setattr(
        os, "access", lambda path, mode: False
    )  # and the folder cannot take the WAL index
    store = Store.open(db, create=False)
    assert "mode=ro" in str(store.engine.url) and "immutable=1" in str(store.engine.url)
    assert sorted(set(results.load(store)["mechanism"])) == ["linear", "m", "mha"]
    with pytest.raises(Exception, match="readonly"), store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM metrics")
