"""Planning and running: cells, failures that do not stop a run, resume, and the leaderboard."""

from __future__ import annotations

import json

import pytest

from attnbench import results
from attnbench.errors import ConfigError, UnknownNameError
from attnbench.registry import SUITES
from attnbench.run.planning import RunRequest, default_jobs, default_profile, groups, plan_run
from attnbench.run.runner import run_plan
from attnbench.store.database import Store
from attnbench.views import leaderboard
from tests.support.fake_suite import EchoSuite


@pytest.fixture
def echo():
    SUITES.register(EchoSuite())
    yield
    SUITES.unregister("echo")


def test_plan_expands_mechanisms_tasks_and_seeds(echo):
    plan = plan_run(RunRequest("echo", mechanisms=("mha", "linear"), seeds=2), device="cpu")
    assert plan.profile == "smoke"
    assert len(plan.cells) == 2 * 2 * 2
    assert {c.mechanism for c in plan.cells} == {"mha", "linear"}
    assert all(c.budget.kind == "steps" and c.budget.value == 10 for c in plan.cells)
    assert plan.describe()["n_cells"] == 8


def test_default_mechanisms_are_every_accepted_one(echo):
    plan = plan_run(RunRequest("echo", seeds=1), device="cpu")
    assert {"mha", "linear", "sliding_window"} <= {c.mechanism for c in plan.cells}


def test_groups_include_declared_and_all(echo):
    found = groups()
    assert (
        "echo" in found["testgroup"]
        and "echo" in found["all"]
        and found["long-context"] == ["longbench", "mqar", "needle"]
    )
    assert {
        c.suite for c in plan_run(RunRequest("testgroup", ("mha",), seeds=1), device="cpu").cells
    } == {"echo"}


def test_default_jobs_use_every_core_on_cpu_and_one_gpu():
    import os

    assert default_jobs("cpu") == (os.cpu_count() or 1) and default_jobs("cuda:0") == 1


def test_profile_defaults_to_paper_on_gpu():
    assert (
        default_profile("cuda", "echo") == "paper" and default_profile("cuda:1", "mqar") == "paper"
    )
    assert default_profile("cpu", "echo") == "smoke" and default_profile("cuda", "smoke") == "smoke"


@pytest.mark.parametrize(
    "request_kwargs,error,match",
    [
        (dict(suite="ech"), UnknownNameError, "did you mean echo"),
        (dict(suite="echo", mechanisms=("mhaa",)), UnknownNameError, "did you mean mha"),
        (dict(suite="echo", budget_value="-5"), ConfigError, "positive"),
        (dict(suite="echo", budget_value="lots"), ConfigError, "not a number"),
        (dict(suite="echo", seeds=0), ConfigError, "seeds"),
        (dict(suite="echo", profile="huge"), ConfigError, "no profile 'huge'"),
        (dict(suite="echo", hparams={"nonsense": 1}), ConfigError, "nonsense"),
        (
            dict(suite="echo", task_settings={"nonsense": 1}),
            ConfigError,
            "no task setting 'nonsense'",
        ),
    ],
)
def test_bad_requests_are_refused_before_work(echo, request_kwargs, error, match):
    with pytest.raises(error, match=match):
        plan_run(RunRequest(**request_kwargs), device="cpu")


def test_hparams_reach_only_mechanisms_that_have_them(echo):
    plan = plan_run(
        RunRequest("echo", ("mha", "sliding_window"), seeds=1, hparams={"window": 4}), device="cpu"
    )
    by_mechanism = {c.mechanism: c.hparams for c in plan.cells}
    assert by_mechanism["sliding_window"]["window"] == 4 and "window" not in by_mechanism["mha"]


def test_a_failing_cell_is_recorded_and_the_run_goes_on(echo, tmp_path):
    store = Store.open(tmp_path / "r.db")
    plan = plan_run(
        RunRequest("echo", ("mha",), seeds=3, task_settings={"behaviour": "raise"}), device="cpu"
    )
    summary = run_plan(plan, store)
    assert not summary.ok
    assert summary.count("done") == 4 and summary.count("failed") == 2
    frame = results.load(store)
    failed = frame[frame["status"] == "failed"]
    assert (
        set(failed["seed"]) == {1}
        and failed["error"].str.startswith("RuntimeError: deliberate").all()
    )
    runs = results.load_runs(store)
    assert runs.iloc[0]["status"] == "failed"


def test_nan_primary_metric_fails_the_cell(echo, tmp_path):
    store = Store.open(tmp_path / "r.db")
    plan = plan_run(
        RunRequest("echo", ("mha",), seeds=1, task_settings={"behaviour": "nan"}), device="cpu"
    )
    summary = run_plan(plan, store)
    assert summary.count("failed") == 2
    assert "no finite primary metric" in summary.records[0].error


def test_resume_runs_exactly_the_missing_cells(echo, tmp_path):
    store = Store.open(tmp_path / "r.db")
    first = run_plan(plan_run(RunRequest("echo", ("mha",), seeds=2), device="cpu"), store)
    assert first.count("done") == 4
    wider = plan_run(RunRequest("echo", ("mha", "linear"), seeds=3), device="cpu")
    second = run_plan(wider, store, resume=True)
    assert second.resumed == 4 and len(second.records) == 12 - 4
    frame = results.load(store)
    keys = frame[["config_hash", "budget_value", "seed"]].apply(tuple, axis=1)
    assert len(frame) == 12 and keys.is_unique
    third = run_plan(wider, store, resume=True)
    assert third.records == [] and third.resumed == 12


def test_leaderboard_ranks_with_intervals(echo, tmp_path):
    store = Store.open(tmp_path / "r.db")
    run_plan(plan_run(RunRequest("echo", ("mha", "linear"), seeds=3), device="cpu"), store)
    rows = leaderboard.build(results.load(store))
    assert {r.mechanism for r in rows} == {"mha", "linear"}
    row = rows[0]
    # per seed: mean over tasks t1 (0 + 0.1 s) and t2 (0.5 + 0.1 s) -> 0.25 + 0.1 s for s = 0, 1, 2
    assert row.mean == pytest.approx(0.35) and row.n_seeds == 3 and row.n_tasks == 2
    assert row.ci_low < row.mean < row.ci_high
    assert row.params == 123 and row.flops == 1e6 and row.rank == 1 and rows[1].rank == 1  # a tie
    payload = json.loads(leaderboard.to_json(rows))
    assert {
        "suite",
        "mechanism",
        "metric",
        "mean",
        "ci_low",
        "ci_high",
        "n_seeds",
        "flops",
        "params",
    } <= set(payload[0])
    assert "| rank |" in leaderboard.to_markdown(rows)


def test_rerun_cell_replaces_the_earlier_one_in_the_leaderboard(echo, tmp_path):
    store = Store.open(tmp_path / "r.db")
    run_plan(
        plan_run(
            RunRequest("echo", ("mha",), seeds=2, task_settings={"behaviour": "raise"}),
            device="cpu",
        ),
        store,
    )
    assert leaderboard.build(results.load(store))[0].failed == 2
    run_plan(
        plan_run(
            RunRequest("echo", ("mha",), seeds=2, task_settings={"behaviour": "raise"}),
            device="cpu",
        ),
        store,
    )
    row = leaderboard.build(results.load(store))[0]
    assert row.failed == 2 and row.n_seeds == 1
