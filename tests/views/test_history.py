"""History: one point per commit, in the order commits were first run."""

from __future__ import annotations

import pytest

from attnbench import results
from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellRecord, CellSpec
from attnbench.errors import UnknownNameError
from attnbench.store.database import Store
from attnbench.views.history import history, sparkline
from tests.conftest import run_cli
from tests.store.test_database import PROVENANCE


def populate(path) -> Store:
    store = Store.open(path)
    for sha, values in (("a" * 40, [0.5, 0.6]), ("b" * 40, [0.7, 0.8]), ("c" * 40, [0.3, 0.3])):
        run = store.start_run({**PROVENANCE, "git_sha": sha}, "smoke", {})
        for seed, value in enumerate(values):
            spec = CellSpec(
                "mqar",
                "mha",
                "smoke",
                "t",
                {},
                {},
                Budget("flops", 1e9),
                seed,
                primary_metric="accuracy",
            )
            store.write_cell(
                run, CellRecord(spec, "done", CellOutcome({"accuracy": value}, 1e9, 1e9, 1, 1))
            )
        store.finish_run(run, "done")
    return store


def test_points_follow_commits(tmp_path):
    store = populate(tmp_path / "h.db")
    metric, points, chosen = history(results.load(store), results.load_runs(store), "mqar", "mha")
    assert metric == "accuracy" and chosen["profile"] == "smoke"
    assert [p.git_sha[0] for p in points] == ["a", "b", "c"]
    assert [round(p.mean, 6) for p in points] == [0.55, 0.75, 0.3]
    assert sparkline([p.mean for p in points]) == "▅█▁"
    with pytest.raises(UnknownNameError, match="mqar/mha"):
        history(results.load(store), results.load_runs(store), "mqar", "linear")


def test_history_command(tmp_path):
    populate(tmp_path / "h.db")
    result = run_cli(
        "history", "--suite", "mqar", "--mechanism", "mha", "--db", str(tmp_path / "h.db")
    )
    assert result.returncode == 0 and "▅█▁" in result.stdout and "bbbbbbbbbb" in result.stdout


def test_site_draws_the_history_line(tmp_path):
    from attnbench.views.site import render_site

    store = populate(tmp_path / "h.db")
    suite_page = render_site(results.load(store), results.load_runs(store), tmp_path / "site")[
        1
    ].read_text()
    assert "<h2>History</h2>" in suite_page and suite_page.count("<title>aaaaaaaaaa") == 1
