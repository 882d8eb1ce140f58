"""Regression tracking: only a significant change beyond the tolerance, in the bad direction,
fails."""

from __future__ import annotations

import math

import numpy as np

from attnbench import results
from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellRecord, CellSpec
from attnbench.store.database import Store
from attnbench.views.compare import compare, difference_interval
from tests.conftest import run_cli
from tests.store.test_database import PROVENANCE


def store_with(path, scores: dict[str, list[float]], higher_is_better: bool = True) -> Store:
    store = Store.open(path)
    run = store.start_run(PROVENANCE, "smoke", {})
    for mechanism, values in scores.items():
        for seed, value in enumerate(values):
            spec = CellSpec(
                "mqar",
                mechanism,
                "smoke",
                "t",
                {"a": 1},
                {},
                Budget("flops", 1e9),
                seed,
                primary_metric="accuracy" if higher_is_better else "loss",
                higher_is_better=higher_is_better,
            )
            metric = "accuracy" if higher_is_better else "loss"
            store.write_cell(
                run, CellRecord(spec, "done", CellOutcome({metric: value}, 1e9, 1e9, 10, 5))
            )
    store.finish_run(run, "done")
    return store


BASE = {
    "mha": [0.90, 0.91, 0.92, 0.90],
    "linear": [0.50, 0.52, 0.51, 0.50],
    "moba": [0.70, 0.71, 0.69, 0.70],
}


def verdicts(tmp_path, current, tolerance=0.02, higher=True, base=BASE):
    then = results.load(store_with(tmp_path / "base.db", base, higher))
    now = results.load(store_with(tmp_path / "now.db", current, higher))
    return {c.mechanism: c for c in compare(then, now, tolerance)}


def test_significant_drop_beyond_tolerance_is_a_regression(tmp_path):
    found = verdicts(
        tmp_path,
        {
            "mha": [0.80, 0.81, 0.79, 0.80],
            "linear": [0.50, 0.52, 0.51, 0.50],
            "moba": [0.75, 0.76, 0.74, 0.75],
        },
    )
    assert found["mha"].regression and found["mha"].significant and found["mha"].ci_high < 0
    assert not found["linear"].regression and not found["linear"].significant
    assert found["moba"].improvement and not found["moba"].regression


def test_significant_but_within_tolerance_passes(tmp_path):
    found = verdicts(tmp_path, {"mha": [0.89] * 4}, tolerance=0.02, base={"mha": [0.90] * 4})
    assert found["mha"].significant and not found["mha"].regression  # 1.1% worse, tolerance 2%
    assert verdicts(
        tmp_path / "strict", {"mha": [0.89] * 4}, tolerance=0.005, base={"mha": [0.90] * 4}
    )["mha"].regression


def test_noise_is_not_significant(tmp_path):
    found = verdicts(tmp_path, {"mha": [0.70, 0.99, 0.80, 0.95]}, tolerance=0.0)
    assert not found["mha"].significant and not found["mha"].regression


def test_lower_is_better_metrics_regress_upwards(tmp_path):
    found = verdicts(
        tmp_path,
        {"mha": [1.5, 1.52, 1.49, 1.5]},
        higher=False,
        base={"mha": [1.0, 1.01, 0.99, 1.0]},
    )
    assert found["mha"].regression


def test_one_seed_is_never_significant():
    low, high = difference_interval(np.array([0.9]), np.array([0.1, 0.1]))
    assert math.isinf(low) and math.isinf(high)


def test_cli_exit_codes_and_markdown(tmp_path):
    store_with(tmp_path / "base.db", BASE)
    store_with(tmp_path / "bad.db", {"mha": [0.5, 0.52, 0.51, 0.5]})
    store_with(tmp_path / "same.db", BASE)
    exported = tmp_path / "base.parquet"
    assert run_cli("export", str(exported), "--db", str(tmp_path / "base.db")).returncode == 0
    summary = tmp_path / "summary.md"
    failed = run_cli(
        "compare",
        "--baseline",
        str(exported),
        "--db",
        str(tmp_path / "bad.db"),
        "--markdown",
        str(summary),
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "1 regression(s)" in summary.read_text() and "| mha |" in summary.read_text()
    same = run_cli(
        "compare", "--baseline", str(tmp_path / "base.db"), "--db", str(tmp_path / "same.db")
    )
    assert same.returncode == 0, same.stdout + same.stderr
    for bad in (
        ["--baseline", str(tmp_path / "missing.parquet")],
        ["--baseline", str(exported), "--tolerance", "-1"],
    ):
        result = run_cli("compare", *bad, "--db", str(tmp_path / "same.db"))
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, (
            result.stderr
        )


def store_with_config(path, hparams: dict, scores=(0.9, 0.91, 0.92)) -> Store:
    store = Store.open(path)
    run = store.start_run(PROVENANCE, "smoke", {})
    for seed, value in enumerate(scores):
        spec = CellSpec(
            "mqar",
            "mha",
            "smoke",
            "t",
            {"a": 1},
            hparams,
            Budget("flops", 1e9),
            seed,
            primary_metric="accuracy",
        )
        store.write_cell(
            run, CellRecord(spec, "done", CellOutcome({"accuracy": value}, 1e9, 1e9, 10, 5))
        )
    store.finish_run(run, "done")
    return store


def test_a_changed_default_matches_nothing_and_fails_the_gate_naming_the_field(tmp_path):
    """The issue's case: a new default changes every config hash; "0 matched cells, No
    regression" passed."""
    store_with_config(tmp_path / "base.db", {"num_heads": 1, "window": 8})
    store_with_config(tmp_path / "now.db", {"num_heads": 1, "window": 16}, scores=(0.1, 0.1, 0.1))
    summary = tmp_path / "summary.md"
    result = run_cli(
        "compare",
        "--baseline",
        str(tmp_path / "base.db"),
        "--db",
        str(tmp_path / "now.db"),
        "--markdown",
        str(summary),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "hparams.window: 8 → 16" in result.stdout and "without a match" in result.stdout
    text = summary.read_text()
    assert "Not compared" in text and "hparams.window: 8 → 16" in text
    allowed = run_cli(
        "compare",
        "--baseline",
        str(tmp_path / "base.db"),
        "--db",
        str(tmp_path / "now.db"),
        "--allow-missing",
        "--json",
    )
    assert allowed.returncode == 0, allowed.stderr
    assert '"reason": "configuration differs: hparams.window: 8 \\u2192 16"' in allowed.stdout


def test_baseline_cells_not_run_at_all_are_listed(tmp_path):
    store_with(tmp_path / "base.db", BASE)
    store_with(tmp_path / "now.db", {"mha": BASE["mha"]})
    result = run_cli(
        "compare", "--baseline", str(tmp_path / "base.db"), "--db", str(tmp_path / "now.db")
    )
    assert result.returncode == 1
    assert (
        "no finished mqar/linear cell" in result.stdout
        and "no finished mqar/moba cell" in result.stdout
    )
