"""The needle suite: its word tokenizer, training batches, grid metrics, planning and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from attnbench.budget import Budget
from attnbench.errors import ConfigError
from attnbench.metric_names import parse_grid_metric as parse
from attnbench.registry import MECHANISMS
from attnbench.run.planning import RunRequest, plan_run
from attnbench.suite import CellContext
from attnbench.suites.needle import SUITE
from attnbench.suites.needle.data import NOISE, generate
from attnbench.suites.needle.scratch import (
    grid_metrics,
    shortest_length,
    train_and_evaluate,
    training_batch,
)
from attnbench.suites.needle.task import ANSWER_TOKENS, NeedleTask
from attnbench.suites.needle.tokenizer import WordTokenizer, default_tokenizer
from attnbench.toolkit.lm import IGNORE_INDEX

TINY = NeedleTask(
    "scratch",
    "niah_single_1",
    lengths=(128, 160),
    depths=(0.0, 100.0),
    samples_per_point=2,
    train_length=128,
    d_model=16,
    n_layers=1,
    batch_size=4,
    learning_rate=1e-3,
)


def test_tokenizer_round_trips_prompts_and_spells_numbers_digit_by_digit():
    tokenizer = default_tokenizer()
    record = generate(
        "niah_single_1", count_tokens=tokenizer, max_seq_length=200, seed=3, tokens_to_generate=8
    )[0]
    ids = tokenizer.encode(record.input)
    assert tokenizer.unk_id not in ids
    assert tokenizer.decode(ids) == record.input
    value = record.outputs[0]
    assert tokenizer.encode(value) == [tokenizer.ids[d] for d in value]
    assert tokenizer.decode(tokenizer.encode(" " + value + ".")) == value + "."


def test_tokenizer_spells_unknown_words_and_is_the_same_everywhere():
    tokenizer = WordTokenizer()
    assert tokenizer.decode(tokenizer.encode("zyxw")) != ""  # letters, not <unk>
    assert tokenizer.unk_id not in tokenizer.encode("zyxw")
    assert WordTokenizer().tokens == tokenizer.tokens
    assert len(tokenizer.encode(NOISE)) == 24


def test_training_batches_label_exactly_the_answer():
    tokenizer = default_tokenizer()
    inputs, labels = training_batch(
        TINY, tokenizer, seed=5, shortest=shortest_length(TINY, tokenizer)
    )
    assert inputs.shape == labels.shape == (4, 127)
    for row in range(4):
        answer = labels[row][labels[row] != IGNORE_INDEX].tolist()
        assert len(answer) == ANSWER_TOKENS
        text = tokenizer.decode(answer)
        assert len(text) == 8 and text[:7].isdigit() and text.endswith(".")
        # The label at position t is the input at t + 1: the answer is in the sequence, right after
        # the prompt.
        where = (labels[row] != IGNORE_INDEX).nonzero().flatten()
        assert inputs[row, where[:-1] + 1].tolist() == answer[:-1]
    again, _ = training_batch(TINY, tokenizer, seed=5, shortest=shortest_length(TINY, tokenizer))
    assert torch.equal(inputs, again)


def test_training_batches_mix_lengths_up_to_the_training_length():
    tokenizer = default_tokenizer()
    task = NeedleTask(
        "scratch",
        "niah_single_1",
        lengths=(256,),
        depths=(50.0,),
        samples_per_point=1,
        train_length=256,
        batch_size=16,
    )
    inputs, _ = training_batch(task, tokenizer, seed=0, shortest=shortest_length(task, tokenizer))
    used = (inputs != tokenizer.pad_id).sum(1)
    assert used.max() <= 255 and len(set(used.tolist())) > 1


def test_grid_metrics_split_within_and_beyond_training():
    scores = {(128, 0.0): 100.0, (128, 100.0): 50.0, (256, 0.0): 0.0, (256, 100.0): 10.0}
    metrics = grid_metrics(scores, train_length=128)
    assert metrics["score"] == 40.0
    assert metrics["score_within_train"] == 75.0 and metrics["score_beyond_train"] == 5.0
    points = {parse(name): value for name, value in metrics.items() if parse(name)}
    assert points == scores
    assert "score_beyond_train" not in grid_metrics({(128, 0.0): 1.0}, train_length=128)


def test_a_cell_trains_and_scores_every_grid_point():
    outcome = train_and_evaluate(
        TINY, MECHANISMS.get("mha"), {"num_heads": 2}, Budget("steps", 3), 0, CellContext()
    )
    assert outcome.steps == 3 and outcome.flops > 0
    grid = {parse(name) for name in outcome.metrics if parse(name)}
    assert grid == {(128, 0.0), (128, 100.0), (160, 0.0), (160, 100.0)}
    assert 0 <= outcome.metrics["score"] <= 100 and math.isfinite(
        outcome.metrics["final_train_loss"]
    )


def test_plan_pairs_sequence_mechanisms_with_from_scratch_tasks_only():
    plan = plan_run(
        RunRequest(suite="needle", mechanisms=("mha", "linear"), profile="smoke"), device="cpu"
    )
    assert {c.task for c in plan.cells} == {"niah_single_1-scratch-T256"}
    assert len(plan.cells) == 4 and all(c.budget.kind == "flops" for c in plan.cells)


def test_pretrained_mechanisms_need_a_model():
    with pytest.raises(ConfigError, match="need --model"):
        plan_run(RunRequest(suite="needle", mechanisms=("dense",), profile="smoke"), device="cpu")


def test_a_model_path_that_does_not_exist_is_refused(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(ConfigError, match="does not exist"):
        plan_run(
            RunRequest(
                suite="needle", mechanisms=("dense",), profile="smoke", model=str(tmp_path / "nope")
            ),
            device="cpu",
        )


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"depths": [150]}, "outside 0-100"),
        ({"lengths": [40]}, "below what niah_single_1 needs"),
        ({"niah_task": "niah_single_2"}, "noise or needle haystack"),
        ({"samples_per_point": 0}, "samples_per_point=0 must be an integer >= 1"),
        ({"bogus": 1}, "no task setting 'bogus'"),
    ],
)
def test_bad_settings_fail_at_planning(settings, message):
    with pytest.raises(ConfigError, match=message):
        plan_run(
            RunRequest(
                suite="needle", mechanisms=("mha",), profile="smoke", task_settings=settings
            ),
            device="cpu",
        )


def test_an_unreadable_essay_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        SUITE.make_task(
            {
                **SUITE.tasks("smoke")[1].config,
                "niah_task": "niah_single_2",
                "model": None,
                "essay_dir": str(tmp_path / "missing"),
            },
            "x",
        )


def test_needle_joins_the_long_context_group_and_group_settings_reach_their_suite():
    plan = plan_run(
        RunRequest(
            suite="long-context",
            mechanisms=("mha",),
            profile="smoke",
            task_settings={"num_train": 64, "samples_per_point": 3},
        ),
        device="cpu",
    )
    assert {c.suite for c in plan.cells} == {"mqar", "needle"}
    assert all(c.task_config["num_train"] == 64 for c in plan.cells if c.suite == "mqar")
    assert all(c.task_config["samples_per_point"] == 3 for c in plan.cells if c.suite == "needle")
    assert any("needle has no setting num_train" in note for note in plan.notes)
    with pytest.raises(ConfigError, match="no suite of 'long-context' has such a task setting"):
        plan_run(
            RunRequest(
                suite="long-context",
                mechanisms=("mha",),
                profile="smoke",
                task_settings={"bogus": 1},
            ),
            device="cpu",
        )


def test_model_is_ignored_by_suites_that_train_from_scratch(tmp_path):
    with pytest.raises(ConfigError, match="no selected suite runs pretrained models"):
        plan_run(
            RunRequest(suite="mqar", mechanisms=("mha",), profile="smoke", model=str(tmp_path)),
            device="cpu",
        )
