"""The needle suite's pretrained mode, offline: a tiny random Llama and a locally built
tokenizer."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from attnbench.metric_names import parse_grid_metric as parse  # noqa: E402
from attnbench.registry import MECHANISMS  # noqa: E402
from attnbench.run.planning import RunRequest, plan_run  # noqa: E402
from attnbench.suite import CellContext  # noqa: E402
from attnbench.suites.needle import SUITE  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.support.tiny import save_checkpoint  # noqa: E402

SMALL = {"lengths": [400, 448], "depths": [0, 100], "samples_per_point": 1, "tokens_to_generate": 4}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("tiny-llama"))


def test_pretrained_cells_read_the_grid_with_the_models_own_tokenizer(checkpoint):
    plan = plan_run(
        RunRequest(
            suite="needle",
            mechanisms=("dense", "streaming"),
            profile="smoke",
            model=str(checkpoint),
            task_settings=SMALL,
            seeds=1,
        ),
        device="cpu",
    )
    assert {c.mechanism for c in plan.cells} == {"dense", "streaming"}
    assert all(
        c.task_config["mode"] == "pretrained" and c.budget.kind == "tokens" for c in plan.cells
    )
    cell = next(c for c in plan.cells if c.mechanism == "streaming")
    outcome = SUITE.run_cell(cell, MECHANISMS.get("streaming"), CellContext())
    assert {parse(n) for n in outcome.metrics if parse(n)} == {
        (400, 0.0),
        (400, 100.0),
        (448, 0.0),
        (448, 100.0),
    }
    assert 0 <= outcome.metrics["score"] <= 100
    # Each prompt fits its length with room for the answer, counted with the model's tokenizer.
    assert 0 < outcome.budget_used <= (400 - 4) * 2 + (448 - 4) * 2
    assert (
        outcome.costs["kv_cache_bytes"] > 0 and outcome.details["model_shape"]["num_kv_heads"] == 2
    )


def test_cli_runs_a_pretrained_model_and_the_leaderboard_keeps_it_apart(checkpoint, tmp_path):
    db = tmp_path / "r.db"
    settings = [
        arg for key, value in SMALL.items() for arg in ("--set", f"{key}={json.dumps(value)}")
    ]
    result = run_cli(
        "run",
        "--suite",
        "needle",
        "-m",
        "dense",
        "-m",
        "mha",
        "--model",
        str(checkpoint),
        "--seeds",
        "1",
        "--budget",
        "2",
        "--budget-kind",
        "steps",
        "--db",
        str(db),
        *settings,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(run_cli("leaderboard", "--format", "json", "--db", str(db)).stdout)
    kinds = {r["mechanism"]: r["budget_kind"] for r in rows}
    assert kinds == {
        "dense": "tokens",
        "mha": "steps",
    }  # --budget limits training; dense trains nothing


@pytest.mark.parametrize(
    "model,message",
    [
        ("./no/such/folder", "does not exist"),
        ("nobody-owns/this-model-xyz", "nor in the local Hugging Face cache"),
    ],
)
def test_a_model_that_cannot_be_found_is_one_line_and_exit_2(model, message, tmp_path):
    result = run_cli(
        "run",
        "--suite",
        "needle",
        "-m",
        "dense",
        "--model",
        model,
        "--db",
        str(tmp_path / "r.db"),
        env={
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
        },
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.db").exists() or "cells" not in result.stdout


def test_a_length_the_prompt_alone_overflows_fails_at_planning(checkpoint):
    from attnbench.errors import ConfigError

    with pytest.raises(ConfigError, match="below what niah_single_1 needs"):
        plan_run(
            RunRequest(
                suite="needle",
                mechanisms=("dense",),
                profile="smoke",
                model=str(checkpoint),
                task_settings={"lengths": [64]},
            ),
            device="cpu",
        )
