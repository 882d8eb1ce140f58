"""The Med-VQA suite: model FLOPs, planning, settings, a cell, and runs through the CLI into the
store."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

pytest.importorskip("PIL")

from attnbench.budget import Budget  # noqa: E402
from attnbench.errors import ConfigError  # noqa: E402
from attnbench.mechanisms import cross  # noqa: E402
from attnbench.registry import MECHANISMS  # noqa: E402
from attnbench.run.planning import RunRequest, plan_run  # noqa: E402
from attnbench.suite import CellContext  # noqa: E402
from attnbench.suites.medvqa import SUITE  # noqa: E402
from attnbench.suites.medvqa.model import Batch, ModelConfig, VQAModel, forward_flops  # noqa: E402
from attnbench.suites.medvqa.task import MedVQATask, train_questions  # noqa: E402
from attnbench.suites.medvqa.train import train_and_evaluate  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.suites.medvqa.fixtures import write_slake, write_vqa_med  # noqa: E402

FUSION = ("ccam", "coguided", "cross", "cue_bottleneck", "mutual")
SMALL = ModelConfig(
    image_size=16,
    patch_size=8,
    dim=32,
    vocab_size=50,
    max_question_tokens=6,
    text_layers=1,
    fusion_layers=2,
    mlp_ratio=2,
    num_answers=7,
    text_heads=4,
)


@pytest.mark.parametrize("name", FUSION)
def test_model_flops_equal_flop_counter_forward_and_training_step(name):
    spec = MECHANISMS.get(name)
    hparams = spec.hparams("smoke", {"num_heads": 4})
    model = VQAModel(SMALL, spec, hparams)
    tokens = torch.randint(2, 50, (3, 6))
    mask = torch.arange(6)[None] < torch.tensor([[6], [4], [1]])
    batch = Batch(torch.randn(3, 3, 16, 16), tokens.masked_fill(~mask, 0), mask)
    declared = forward_flops(SMALL, spec, hparams, batch=3)
    with FlopCounterMode(display=False) as forward:
        model(batch)
    with FlopCounterMode(display=False) as step:
        model(batch).sum().backward()
    assert forward.get_total_flops() == declared["total"]
    assert (
        step.get_total_flops() == 3 * declared["total"] - declared["patch_embedding"]
    )  # pixels need no gradient
    assert declared["mechanism_total"] == 2 * spec.flops(3, 6, 4, 32, **hparams).total


def test_smoke_plan_runs_every_fusion_built_in_on_one_budget_and_skips_other_kinds():
    plan = plan_run(
        RunRequest(suite="medvqa", mechanisms=FUSION + ("mha",), profile="smoke", seeds=1),
        device="cpu",
    )
    assert sorted(c.mechanism for c in plan.cells) == list(FUSION)
    assert any("medvqa skips mha" in note for note in plan.notes)
    assert len({c.budget for c in plan.cells}) == 1 and all(
        c.hparams["num_heads"] == 4 for c in plan.cells
    )
    task = MedVQATask.from_config(plan.cells[0].task_config)
    questions, answers = train_questions(task)
    assert questions == 3 * 400 and plan.cells[0].task == "synthetic-32px"
    per_question = (
        3 * forward_flops(task.model_config(2, answers), cross.SPEC, {"num_heads": 4}, 1)["total"]
    )
    assert plan.cells[0].budget == Budget("flops", per_question * questions * 20)
    assert SUITE.groups == ("medical",) and SUITE.accepts == ("fusion",)


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"data": "mimic"}, "data='mimic' is not one of"),
        ({"patch_size": 5}, "must divide image_size=32"),
        ({"text_heads": 5}, "text_heads=5 must divide dim=64"),
        ({"synthetic_images": [0, 1, 1]}, "synthetic_images"),
        ({"synthetic_images": ["a", 1, 1]}, "synthetic_images"),
        ({"lenient": "maybe"}, "lenient='maybe' is not true or false"),
        ({"bleu_nltk": "3.4"}, "bleu_nltk='3.4' is not one of 3.2, 3.3"),
        ({"root": "/nonexistent"}, "root is set but data=synthetic"),
        ({"data": "slake", "root": "/nonexistent/slake"}, "no slake data at /nonexistent/slake"),
        ({"bogus": 1}, "no task setting 'bogus'"),
        (
            {"synthetic_images": [2, 0, 1], "batch_size": 8},
            "batch_size=8 exceeds the 6 training questions",
        ),
    ],
)
def test_bad_settings_fail_at_planning(settings, message):
    with pytest.raises(ConfigError, match=message):
        plan_run(
            RunRequest(
                suite="medvqa", mechanisms=("cross",), profile="smoke", task_settings=settings
            ),
            device="cpu",
        )


def test_a_cell_trains_and_reports_closed_open_accuracy_and_costs():
    config = {**SUITE.tasks("smoke")[0].config, "synthetic_images": [8, 2, 4], "batch_size": 8}
    task = MedVQATask.from_config(SUITE.make_task(config, "x").config)
    spec = MECHANISMS.get("cue_bottleneck")
    hparams = spec.hparams("smoke", {"num_heads": 4})
    outcome = train_and_evaluate(task, spec, hparams, Budget("steps", 3), 0, CellContext())
    assert outcome.steps == 3 and math.isfinite(outcome.metrics["final_train_loss"])
    assert {
        "accuracy",
        "closed_accuracy",
        "open_accuracy",
        "val_accuracy",
        "answer_coverage",
    } <= set(outcome.metrics)
    counts = outcome.details["closed_open_counts"]
    assert counts["CLOSED"] + counts["OPEN"] == 12
    closed, open_ = outcome.metrics["closed_accuracy"], outcome.metrics["open_accuracy"]
    assert math.isclose(
        outcome.metrics["accuracy"], (closed * counts["CLOSED"] + open_ * counts["OPEN"]) / 12
    )
    per_question = forward_flops(task.model_config(2, 2), spec, hparams, 1)
    assert outcome.costs["flops_attention"] == per_question["mechanism_attention"]


def _details(db_path):
    with sqlite3.connect(db_path) as connection:
        return [json.loads(row[0]) for row in connection.execute("select details from cells")]


def test_smoke_run_end_to_end_through_the_cli(tmp_path):
    db = f"sqlite:///{tmp_path / 'm.db'}"
    result = run_cli(
        "run",
        "--suite",
        "medical",
        "-m",
        "cross",
        "-m",
        "mutual",
        "--seeds",
        "1",
        "--budget",
        "2",
        "--budget-kind",
        "steps",
        "--set",
        "synthetic_images=[8,2,4]",
        "--set",
        "batch_size=8",
        "--db",
        db,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(
        run_cli("leaderboard", "--suite", "medvqa", "--format", "json", "--db", db).stdout
    )
    assert {r["mechanism"] for r in rows} == {"cross", "mutual"} and {
        r["metric"] for r in rows
    } == {"accuracy"}
    with pytest.raises(ConfigError, match="medvqa reads vqa-rad in this profile: --set root=DIR"):
        plan_run(RunRequest(suite="medvqa", mechanisms=("cross",), profile="paper"), device="cpu")
    for details in _details(tmp_path / "m.db"):
        assert (
            details["split_sizes"] == {"train": 24, "val": 6, "test": 12}
            and details["skipped"] == {}
        )


def test_real_data_with_a_bad_row_exits_2_with_one_line_or_is_skipped_and_counted(tmp_path):
    root = tmp_path / "slake"
    root.mkdir()
    write_slake(root, "missing image")
    strict = run_cli(
        "run",
        "--suite",
        "medvqa",
        "-m",
        "cross",
        "--set",
        "data=slake",
        "--set",
        f"root={root}",
        "--db",
        f"sqlite:///{tmp_path / 's.db'}",
    )
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert strict.stderr.strip().splitlines() == [
        f"attnbench: error: {root / 'test.json'}: question 5 names image 'xmlab77/source.jpg',"
        " which is not there (--set lenient=True skips such rows and counts them)"
    ]
    config = {
        **SUITE.tasks("smoke")[0].config,
        "data": "slake",
        "root": str(root),
        "batch_size": 2,
        "lenient": "true",
    }
    task = MedVQATask.from_config(SUITE.make_task(config, "x").config)
    assert task.lenient is True and task.label == "slake-en"
    outcome = train_and_evaluate(
        task, MECHANISMS.get("cross"), {"num_heads": 4}, Budget("steps", 1), 0, CellContext()
    )
    assert (
        outcome.details["skipped"] == {"missing image": 1}
        and outcome.details["split_sizes"]["test"] == 2
    )


def test_vqa_med_2019_cells_store_strict_accuracy_bleu_and_categories(tmp_path):
    pytest.importorskip("nltk")
    root = tmp_path / "vqamed"
    root.mkdir()
    write_vqa_med(root)
    config = {
        **SUITE.tasks("smoke")[0].config,
        "data": "vqa-med-2019",
        "root": str(root),
        "batch_size": 2,
        "image_size": 16,
    }
    task = MedVQATask.from_config(SUITE.make_task(config, "x").config)
    outcome = train_and_evaluate(
        task, MECHANISMS.get("cross"), {"num_heads": 4}, Budget("steps", 1), 0, CellContext()
    )
    metrics = outcome.metrics
    assert metrics["strict_accuracy"] == metrics["accuracy"] and 0 <= metrics["bleu"] <= 1
    assert {"accuracy/modality", "accuracy/plane", "accuracy/organ", "accuracy/abnormality"} <= set(
        metrics
    )
    assert outcome.details["metric_version"].endswith("snowball-method0-nltk3.2")
    # `--set bleu_nltk=3.3` arrives as the number 3.3
    older = MedVQATask.from_config(SUITE.make_task({**config, "bleu_nltk": 3.3}, "x").config)
    assert older.bleu_nltk == "3.3" and older.metric_version().endswith("snowball-method0-nltk3.3")
    # cta..., no, yes, axial, and "septic cerebral emboli", an accepted reading of a reference with
    # an optional part
    assert metrics["answer_coverage"] == pytest.approx(5 / 9)
