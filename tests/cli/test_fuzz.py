"""Fuzzing the CLI: whatever options and files arrive, attnbench answers with a result or one clear
line and exit status 2, never a traceback, and never loses what the database held before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnbench.cli import main
from tests.views.site_data import populate

WORDS = st.sampled_from(
    [
        "mqar",
        "needle",
        "mha",
        "linear",
        "long-context",
        "",
        "-",
        "--",
        "nan",
        "inf",
        "-1",
        "0",
        "1e400",
        "../..",
        "/dev/null",
        "sqlite://",
        "postgresql://x@127.0.0.1:1/x",
        "a=b",
        "é",
        "<script>",
        "x.parquet",
        "x.csv",
        "x.json",
        "x.txt",
        "[1, 2]",
        "{}",
    ]
)
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
    path_in_scratch = TEXT.map(
        lambda name: str(scratch / name.replace("/", "_").replace("\x00", ""))
    )
    database = (
        st.sampled_from([str(db), str(scratch / "absent.db"), str(scratch), "sqlite:///" + str(db)])
        | TEXT
    )
    return st.one_of(
        st.tuples(st.just("leaderboard"), st.just("--db"), database, st.just("--format"), fmt),
        st.tuples(
            st.just("leaderboard"), st.just("--db"), st.just(str(db)), st.just("--suite"), TEXT
        ),
        st.tuples(
            st.just("leaderboard"),
            st.just("--db"),
            st.just(str(db)),
            st.just("--html"),
            path_in_scratch,
        ),
        st.tuples(
            st.just("compare"),
            st.just("--baseline"),
            database | path_in_scratch,
            st.just("--db"),
            database,
            st.just("--tolerance"),
            TEXT,
        ),
        st.tuples(st.just("export"), path_in_scratch, st.just("--db"), database),
        st.tuples(
            st.just("export"),
            path_in_scratch,
            st.just("--format"),
            fmt,
            st.just("--db"),
            st.just(str(db)),
        ),
        st.tuples(
            st.just("import"),
            path_in_scratch,
            st.just("--db"),
            st.just(str(scratch / "imported.db")),
        ),
        st.tuples(
            st.just("history"),
            st.just("--suite"),
            TEXT,
            st.just("-m"),
            TEXT,
            st.just("--db"),
            database,
            st.just("--budget"),
            TEXT,
        ),
        st.tuples(st.just("list"), TEXT),
        st.tuples(
            st.just("run"),
            st.just("--suite"),
            TEXT,
            st.just("--budget"),
            TEXT,
            st.just("--seeds"),
            TEXT,
            st.just("--db"),
            st.just(str(scratch / "run.db")),
        ),
        st.tuples(
            st.just("run"),
            st.just("--suite"),
            st.just("mqar"),
            st.just("--set"),
            TEXT,
            st.just("--hparam"),
            TEXT,
            st.just("--budget-kind"),
            TEXT,
            st.just("--db"),
            st.just(str(scratch / "run.db")),
        ),
    ).map(list)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_argument_list_gets_a_traceback(db, tmp_path_factory, capsys, data):
    scratch = tmp_path_factory.mktemp("scratch")
    # Garbage files where commands expect exported results.
    for name, content in (
        ("x.parquet", b"PAR1 not really"),
        ("x.csv", b"a,b\n1"),
        ("x.json", b"{"),
        ("x.txt", b"\xff\xfe"),
    ):
        (scratch / name).write_bytes(content)
    argv = data.draw(invocations(db, scratch))
    if (
        argv[0] == "run"
        and "--suite" in argv
        and argv[argv.index("--suite") + 1] in ("mqar", "needle", "long-context")
    ):
        # A valid run would train for minutes; keep the fuzzing about the options, not the training.
        argv += (
            ["--budget-kind", "steps", "--seeds", "1", "-m", "mha"]
            if "--budget-kind" not in argv
            else []
        )
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


VALUES = st.sampled_from(
    [
        "abc",
        "nan",
        "-nan",
        "inf",
        "1e400",
        "-1e400",
        "[1]",
        "[[]]",
        "{}",
        "{'a': 1}",
        "None",
        "True",
        "true",
        "0",
        "-1",
        "2",
        "4.0",
        "0.5",
        "1_000",
        "0x10",
        "'8'",
        "()",
        "b'x'",
        "1j",
        "[" * 50 + "]" * 50,
        "",
        "=",
        "[/]",
        "\\x00",
    ]
) | st.text(max_size=8)


@pytest.fixture
def no_conformance(monkeypatch):
    """Hyper-parameters that planning accepts go on to conformance checks (seconds each): not
    what is fuzzed."""
    import attnbench.run.screening

    monkeypatch.setattr(attnbench.run.screening, "screen_plan", lambda plan, *args, **kwargs: plan)


def answered(capsys, argv: list[str]) -> int:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out, (argv, captured.err)
    assert code in (0, 1, 2), (argv, code, captured.err)
    if code == 2:
        assert len(captured.err.strip().splitlines()) == 1, (argv, captured.err)
    return code


@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    key=st.sampled_from(
        ["num_heads", "window", "block_size", "feature", "decay", "kv_lora_rank", "nope", ""]
    ),
    value=VALUES,
    command=st.sampled_from(["run", "check"]),
)
def test_no_hyper_parameter_value_gets_a_traceback(
    capsys, tmp_path_factory, no_conformance, key, value, command
):
    if (
        command == "check"
        and key in ("num_heads", "window", "block_size")
        and value.strip() in ("2", "0", "-1")
    ):
        # a legal value: `check` would run real conformance checks for seconds; `run` covers it
        return
    if command == "run":
        argv = [
            "run",
            "--suite",
            "mqar",
            "-m",
            "sliding_window",
            "-m",
            "linear",
            "--dry-run",
            "--seeds",
            "1",
            "--hparam",
            f"{key}={value}",
        ]
    else:
        argv = ["check", "sliding_window", "--hparam", f"{key}={value}"]
    answered(capsys, argv)


def nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "array" else "{x = " * depth + "1" + "}" * depth


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    depth=st.integers(1, 3000),
    kind=st.sampled_from(["array", "table"]),
    table=st.sampled_from(["hparams", "settings"]),
    key=st.sampled_from(["window", "seq_len", "x"]),
)
def test_no_toml_nesting_gets_a_traceback(
    capsys, tmp_path_factory, no_conformance, depth, kind, table, key
):
    config = tmp_path_factory.mktemp("toml") / "run.toml"
    config.write_text(
        f'suite = "mqar"\nmechanisms = ["sliding_window"]\nseeds = 1\n[{table}]\n'
        f"{key} = {nested(depth, kind)}\n"
    )
    answered(capsys, ["run", "--config", str(config), "--dry-run"])


WEIRD = st.sampled_from(
    [
        None,
        "",
        "abc",
        -1,
        0,
        1.5,
        float("nan"),
        float("inf"),
        True,
        "{",
        "[]",
        "{}",
        "2026-13-45",
        "x" * 300,
        "\x00",
        "[/]",
        10**30,
        "1e400",
    ]
)


@pytest.fixture(scope="module")
def export_csv(tmp_path_factory, db) -> Path:
    out = tmp_path_factory.mktemp("export") / "export.csv"
    assert main(["export", str(out), "--db", str(db)]) == 0
    return out


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_import_file_gets_a_traceback_or_poisons_the_store(
    capsys, tmp_path_factory, export_csv, data
):
    import pandas as pd

    frame = pd.read_csv(export_csv, dtype=str)
    for _ in range(data.draw(st.integers(1, 3))):
        column = data.draw(st.sampled_from(list(frame.columns)))
        row = data.draw(st.integers(0, len(frame) - 1))
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = data.draw(WEIRD)
    if data.draw(st.booleans()):
        frame = frame.drop(columns=[data.draw(st.sampled_from(list(frame.columns)))])
    scratch = tmp_path_factory.mktemp("import")
    fmt = data.draw(st.sampled_from(["csv", "json", "parquet"]))
    source = scratch / f"mutated.{fmt}"
    try:
        if fmt == "csv":
            frame.to_csv(source, index=False)
        elif fmt == "json":
            frame.to_json(source, orient="records")
        else:
            frame.astype(str).to_parquet(source, index=False)
    except (ValueError, TypeError, OverflowError):
        return  # pandas cannot write this mutation in this format: nothing to import
    target = scratch / "target.db"
    code = answered(capsys, ["import", str(source), "--db", str(target)])
    if code == 2:
        assert not target.exists()
    else:
        assert answered(capsys, ["leaderboard", "--db", str(target)]) == 0
        assert (
            answered(capsys, ["export", str(scratch / "again.parquet"), "--db", str(target)]) == 0
        )
