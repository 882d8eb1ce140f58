"""Conformance catches each kind of broken mechanism, and `run` refuses them."""

from __future__ import annotations

import json
import sqlite3

import pytest

from attnbench.conformance import check_mechanism
from attnbench.registry import MECHANISMS
from attnbench.run.planning import RunRequest, plan_run
from attnbench.run.screening import NonconformingError, screen_plan
from attnbench.testing import assert_conforms
from tests.conformance import bad_mechanisms as bad
from tests.conftest import make_distribution, run_cli


def failed_checks(spec) -> set[str]:
    return {r.name for r in check_mechanism(spec).results if not r.passed}


@pytest.mark.parametrize(
    "spec,check",
    [
        (bad.LEAKY, "causal_leak"),
        (bad.UNUSED, "gradients"),
        (bad.NOISY, "determinism"),
        (bad.WRONG_FLOPS, "flops"),
    ],
)
def test_each_defect_is_caught_by_its_check(spec, check):
    assert check in failed_checks(spec)


def test_leak_report_names_the_position():
    report = check_mechanism(bad.LEAKY)
    assert not report.passed and "causal_leak: output at position 0 changed" in report.reason()


def test_pytest_helper_for_plugin_authors():
    assert assert_conforms("mha").passed
    with pytest.raises(AssertionError, match="'leaky' does not conform: causal_leak"):
        assert_conforms(bad.LEAKY)


@pytest.mark.parametrize("name", ["mha", "sliding_window", "linear"])
def test_builtins_conform_with_mqar_hparams(name):
    spec = MECHANISMS.get(name)
    assert_conforms(spec, hparams=spec.hparams("smoke", {"num_heads": 1}))


@pytest.fixture
def leaky_registered():
    MECHANISMS.register(bad.LEAKY)
    yield
    MECHANISMS.unregister("leaky")


def test_screen_refuses_a_requested_leaky_mechanism(leaky_registered):
    plan = plan_run(RunRequest("mqar", ("mha", "leaky"), seeds=1), device="cpu")
    with pytest.raises(NonconformingError, match="'leaky' fails conformance: causal_leak"):
        screen_plan(plan, requested={"mha", "leaky"})


def test_screen_drops_a_default_leaky_mechanism_with_a_note(leaky_registered):
    plan = plan_run(RunRequest("mqar", (), seeds=1), device="cpu")
    screened = screen_plan(plan, requested=set())
    assert "leaky" not in {c.mechanism for c in screened.cells}
    assert any("leaky" in note for note in screened.notes)
    assert all(c.conformance == "passed" for c in screened.cells)


def test_screen_can_be_overridden_and_records_it(leaky_registered):
    plan = screen_plan(
        plan_run(RunRequest("mqar", ("leaky",), seeds=1), device="cpu"),
        requested={"leaky"},
        allow_nonconforming=True,
    )
    assert plan.cells[0].conformance.startswith("failed: causal_leak")


LEAKY_PLUGIN = """
from tests.conformance.bad_mechanisms import LEAKY as SPEC
"""


def test_run_refuses_a_leaky_plugin_and_allows_it_on_request(tmp_path):
    from tests.conftest import REPO

    site = make_distribution(
        tmp_path / "site",
        "leakyplugin",
        modules={"leaky_plugin": LEAKY_PLUGIN},
        mechanisms={"leaky": "leaky_plugin:SPEC"},
    )
    env = {"PYTHONPATH": f"{site}:{REPO}"}
    db = tmp_path / "r.db"
    fast = [
        "--seeds",
        "1",
        "--db",
        str(db),
        "--budget",
        "5",
        "--budget-kind",
        "steps",
        "--set",
        "num_train=64",
        "--set",
        "num_test=16",
    ]
    refused = run_cli("run", "--suite", "mqar", "-m", "leaky", *fast, env=env)
    assert refused.returncode == 2 and "'leaky' fails conformance: causal_leak" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    check = run_cli("check", "leaky", "--json", env=env)
    assert check.returncode == 1 and not json.loads(check.stdout)[0]["passed"]
    allowed = run_cli(
        "run", "--suite", "mqar", "-m", "leaky", "--allow-nonconforming", *fast, env=env
    )
    assert allowed.returncode == 0, allowed.stderr
    with sqlite3.connect(db) as conn:
        (conformance,) = conn.execute("SELECT conformance FROM cells").fetchone()
    assert conformance.startswith("failed: causal_leak")


def test_check_command_passes_builtins():
    result = run_cli("check", "mha", "linear", "sliding_window")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passes") == 3
