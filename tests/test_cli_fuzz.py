"""Fuzzing the CLI: whatever options and files arrive, attnbench answers with a result or one clear
line and exit status 2, never a traceback, and never loses what the database held before."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnbench.cli import main
from tests.harness.site_data import populate

WORDS = st.sampled_from(["mqar", "needle", "mha", "linear", "long-context", "", "-", "--", "nan", "inf", "-1", "0",
                         "1e400", "../..", "/dev/null", "sqlite://", "postgresql://x@127.0.0.1:1/x", "a=b", "é",
                         "<script>", "x.parquet", "x.csv", "x.json", "x.txt", "[1, 2]", "{}"])
TEXT = WORDS | st.text(max_size=12)


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "results.db"
    populate(path, "<b>evil</b>").dispose()
    return path


def cells_in(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]


def invocations(db: Path, scratch: Path):
    """argv lists for every read-only or file command, with fuzzed option values."""
    fmt = st.sampled_from(["table", "json", "markdown", "parquet", "csv", "yaml", ""]) | TEXT
    path_in_scratch = TEXT.map(lambda name: str(scratch / name.replace("/", "_").replace("\x00", "")))
    database = st.sampled_from([str(db), str(scratch / "absent.db"), str(scratch), "sqlite:///" + str(db)]) | TEXT
    return st.one_of(
        st.tuples(st.just("leaderboard"), st.just("--db"), database, st.just("--format"), fmt),
        st.tuples(st.just("leaderboard"), st.just("--db"), st.just(str(db)), st.just("--suite"), TEXT),
        st.tuples(st.just("leaderboard"), st.just("--db"), st.just(str(db)), st.just("--html"), path_in_scratch),
        st.tuples(st.just("compare"), st.just("--baseline"), database | path_in_scratch, st.just("--db"), database,
                  st.just("--tolerance"), TEXT),
        st.tuples(st.just("export"), path_in_scratch, st.just("--db"), database),
        st.tuples(st.just("export"), path_in_scratch, st.just("--format"), fmt, st.just("--db"), st.just(str(db))),
        st.tuples(st.just("import"), path_in_scratch, st.just("--db"), st.just(str(scratch / "imported.db"))),
        st.tuples(st.just("history"), st.just("--suite"), TEXT, st.just("-m"), TEXT, st.just("--db"), database,
                  st.just("--budget"), TEXT),
        st.tuples(st.just("list"), TEXT),
        st.tuples(st.just("run"), st.just("--suite"), TEXT, st.just("--budget"), TEXT, st.just("--seeds"), TEXT,
                  st.just("--db"), st.just(str(scratch / "run.db"))),
        st.tuples(st.just("run"), st.just("--suite"), st.just("mqar"), st.just("--set"), TEXT, st.just("--hparam"),
                  TEXT, st.just("--budget-kind"), TEXT, st.just("--db"), st.just(str(scratch / "run.db"))),
    ).map(list)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(data=st.data())
def test_no_argument_list_gets_a_traceback(db, tmp_path_factory, capsys, data):
    scratch = tmp_path_factory.mktemp("scratch")
    # Garbage files where commands expect exported results.
    for name, content in (("x.parquet", b"PAR1 not really"), ("x.csv", b"a,b\n1"), ("x.json", b"{"),
                          ("x.txt", b"\xff\xfe")):
        (scratch / name).write_bytes(content)
    argv = data.draw(invocations(db, scratch))
    if argv[0] == "run" and "--suite" in argv and argv[argv.index("--suite") + 1] in ("mqar", "needle", "long-context"):
        # A valid run would train for minutes; keep the fuzzing about the options, not the training.
        argv += ["--budget-kind", "steps", "--seeds", "1", "-m", "mha"] if "--budget-kind" not in argv else []
    before = cells_in(db)
    try:
        code = main(argv)
    except SystemExit as exc:  # click's --help / --version paths
        code = exc.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert code in (0, 1, 2), (argv, code, captured.err)
    if code == 2:
        assert len(captured.err.strip().splitlines()) == 1, (argv, captured.err)
    assert cells_in(db) == before
