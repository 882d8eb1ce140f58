"""The CLI end to end on the MQAR smoke path, and its one-line errors for bad input."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.conftest import run_cli

FAST = [
    "--budget",
    "40",
    "--budget-kind",
    "steps",
    "--set",
    "num_train=256",
    "--set",
    "num_test=64",
]
FAST_NEEDLE = ["--set", "lengths=[128]", "--set", "depths=[0,100]", "--set", "samples_per_point=2"]


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    db = tmp_path_factory.mktemp("cli") / "results.db"
    result = run_cli(
        "run",
        "--suite",
        "long-context",
        "-m",
        "mha",
        "-m",
        "sliding_window",
        "-m",
        "linear",
        "--seeds",
        "2",
        "--jobs",
        "2",
        "--db",
        str(db),
        *FAST,
        *FAST_NEEDLE,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return db, result


def test_run_prints_the_plan_and_stores_every_cell(populated):
    db, result = populated
    assert "profile smoke" in result.stdout and "cells 12" in result.stdout
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT mechanism, status, steps, budget_used, suite FROM cells"
        ).fetchall()
        run = conn.execute("SELECT profile, command, plan, git_sha, device FROM runs").fetchone()
    assert sorted({r[0] for r in rows}) == ["linear", "mha", "sliding_window"]
    assert all(r[1] == "done" and r[2] == 40 and r[3] == 40 for r in rows)
    plan = json.loads(run[2])
    assert sorted({r[4] for r in rows}) == ["mqar", "needle"]
    assert (
        run[0] == "smoke"
        and "long-context" in run[1]
        and plan["n_cells"] == 12
        and plan["jobs"] == 2
    )
    assert run[4].startswith("cpu")


def test_leaderboard_json_lists_every_mechanism(populated):
    db, _ = populated
    result = run_cli("leaderboard", "--format", "json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {r["mechanism"] for r in rows} == {"mha", "sliding_window", "linear"}
    mqar = [r for r in rows if r["suite"] == "mqar"]
    needle = [r for r in rows if r["suite"] == "needle"]
    assert len(mqar) == len(needle) == 3
    assert all(
        r["metric"] == "accuracy" and r["n_seeds"] == 2 and 0 <= r["mean"] <= 1 for r in mqar
    )
    assert all(
        r["metric"] == "score" and r["n_seeds"] == 2 and 0 <= r["mean"] <= 100 for r in needle
    )
    assert all(r["flops"] > 0 and r["params"] > 0 for r in rows)
    assert all(r["grid"]["lengths"] == [128] and r["grid"]["depths"] == [0, 100] for r in needle)
    table = run_cli("leaderboard", "--db", str(db))
    assert table.returncode == 0 and "mqar" in table.stdout and "sliding_window" in table.stdout


def test_resume_skips_what_is_done(populated):
    db, _ = populated
    result = run_cli(
        "run",
        "--suite",
        "mqar",
        "-m",
        "mha",
        "-m",
        "sliding_window",
        "-m",
        "linear",
        "--seeds",
        "2",
        "--db",
        str(db),
        "--resume",
        *FAST,
    )
    assert result.returncode == 0, result.stderr
    assert "0 done, 0 not done, 6 already done" in result.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "--suite", "nope"], "unknown suite or group 'nope'"),
        (["run", "--suite", "mqr"], "did you mean mqar"),
        (["run", "--suite", "mqar", "-m", "mhaa"], "did you mean mha"),
        (["run", "--suite", "mqar", "--budget", "-1"], "positive"),
        (["run", "--suite", "mqar", "--budget", "0"], "positive"),
        (["run", "--suite", "mqar", "--budget", "ten"], "not a number"),
        (["run", "--suite", "mqar", "--budget-kind", "joules"], "joules"),
        (["run", "--suite", "mqar", "--set", "seq_len=63"], "input_seq_len"),
        (["run", "--suite", "mqar", "--set", "num_kv_pairs=20"], "num_kv_pairs"),
        (["run", "--suite", "mqar", "--set", "vocab_size=16"], "vocab_size"),
        (["run", "--suite", "mqar", "--set", "colour=blue"], "no task setting 'colour'"),
        (["run", "--suite", "mqar", "--hparam", "nonsense=1"], "nonsense"),
        (["run", "--suite", "mqar", "--jobs", "0"], "--jobs"),
        (["run", "--suite", "mqar", "--db", "sqlite:////proc/no/such/dir/x.db"], "database"),
        (["run", "--suite", "mqar", "--db", "postgresql+nodriver://u@127.0.0.1:1/x"], "database"),
        (["leaderboard", "--format", "yaml"], "yaml"),
        (["leaderboard", "--suite", "mqqr"], "did you mean mqar"),
        (["run", "--suite", "mqar", "--device", "tpu9"], "device"),
        (["list", "widgets"], "widgets"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(populated, args, needle):
    db, _ = populated
    if "--db" not in args and args[0] in ("run", "leaderboard"):
        args = [*args, "--db", str(db)]
    before = sqlite3.connect(db).execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    result = run_cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert needle in lines[0]
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM cells").fetchone()[0] == before


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_bad_input():
    result = run_cli("run", "--suite", "mqar", "--device", "cuda", "--db", "sqlite://")
    assert result.returncode == 2 and "no usable CUDA" in result.stderr


def test_leaderboard_on_a_missing_database_is_bad_input(tmp_path):
    result = run_cli("leaderboard", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 2 and "no database" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_a_failed_cell_makes_the_exit_status_1(tmp_path):
    # learning rate 1e6 drives the loss to inf/NaN: the cell is stored as failed and the run says so
    result = run_cli(
        "run",
        "--suite",
        "mqar",
        "-m",
        "mha",
        "--seeds",
        "1",
        "--db",
        str(tmp_path / "f.db"),
        "--set",
        "learning_rates=[1e6]",
        *FAST,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    with sqlite3.connect(tmp_path / "f.db") as conn:
        status, error = conn.execute("SELECT status, error FROM cells").fetchone()
    assert status == "failed" and "non-finite" in error


def test_version():
    from attnbench import __version__

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"attnbench {__version__}"
