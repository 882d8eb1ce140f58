"""A separate package registering its own mechanism: pip-installed, it is listed and runs,
untouched attnbench."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_cli

EXAMPLE = REPO / "examples" / "attnbench-alibi"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return {"PYTHONPATH": str(target)}


def test_installed_plugin_is_listed(installed):
    result = run_cli("list", "mechanisms", "--load", "--json", env=installed)
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["alibi"]["status"] == "ok" and rows["alibi"]["distribution"] == "attnbench-alibi"
    assert rows["alibi"]["kind"] == "sequence" and "mha" in rows


def test_installed_plugin_runs(installed, tmp_path):
    db = tmp_path / "plugin.db"
    result = run_cli(
        "run",
        "--suite",
        "mqar",
        "-m",
        "alibi",
        "-m",
        "mha",
        "--seeds",
        "1",
        "--db",
        str(db),
        "--budget",
        "20",
        "--budget-kind",
        "steps",
        "--set",
        "num_train=128",
        "--set",
        "num_test=32",
        env=installed,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT mechanism, status FROM cells").fetchall())
    assert rows == {"alibi": "done", "mha": "done"}


def test_plugin_absent_without_the_package():
    result = run_cli("run", "--suite", "mqar", "-m", "alibi", "--db", "sqlite://")
    assert result.returncode == 2 and "unknown mechanism 'alibi'" in result.stderr
