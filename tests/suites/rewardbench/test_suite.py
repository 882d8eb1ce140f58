"""The RewardBench suite offline: tiny random Llama checkpoints built from a config read fixture
rows of all 23 subsets (one an exact tie) end to end into the store, in each scoring mode, with the
mechanism installed through the attention interface; the smoke profile runs with nothing given;
cells without a model or data are stored as skipped; the leaderboard shows the sections."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402
from sqlalchemy import create_engine, select  # noqa: E402

from attnbench.errors import ConfigError, SkipCell  # noqa: E402
from attnbench.registry import MECHANISMS  # noqa: E402
from attnbench.run.planning import RunRequest, plan_run  # noqa: E402
from attnbench.store.schema import Cell  # noqa: E402
from attnbench.suite import CellContext  # noqa: E402
from attnbench.suites.rewardbench import SUITE  # noqa: E402
from attnbench.suites.rewardbench.formatting import JUDGE_SEGMENT, judge_ids  # noqa: E402
from attnbench.suites.rewardbench.scoring import (
    cell_metrics,
    metric_version,
    subset_accuracy,
)  # noqa: E402
from attnbench.suites.rewardbench.sections import SECTIONS, SUBSETS  # noqa: E402
from attnbench.toolkit.pretrained import install  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.suites.rewardbench.fixtures import (
    TIE_ID,
    rows,
    save_checkpoint,
    write_jsonl,
)  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("rewardbench") / "filtered.jsonl")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("tiny-reward-model"), classifier=True)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("tiny-lm"), classifier=False)


def _cell(model, rows_file, mechanism="dense", **settings):
    (cell,) = plan_run(
        RunRequest(
            suite="rewardbench",
            mechanisms=(mechanism,),
            profile="smoke",
            model=str(model),
            task_settings={"data": str(rows_file), **settings},
        ),
        device="cpu",
    ).cells
    return cell


def _run(cell):
    return SUITE.run_cell(cell, MECHANISMS.get(cell.mechanism), CellContext())


def _conversation(tokenizer, prompt, response=None):
    messages = [{"role": "user", "content": prompt}] + (
        [{"role": "assistant", "content": response}] if response else []
    )
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=response is None
    )


def test_cli_stores_subsets_sections_and_every_pair_and_the_leaderboard_shows_sections(
    classifier, data, tmp_path
):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from attnbench.results import load as load_results
    from attnbench.views import leaderboard

    db = tmp_path / "r.db"
    result = run_cli(
        "run",
        "--suite",
        "rewardbench",
        "-m",
        "dense",
        "--model",
        str(classifier),
        "--set",
        f"data={data}",
        "--set",
        "max_examples=None",
        "--db",
        str(db),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with create_engine(f"sqlite:///{db}").connect() as conn:
        (cell,) = conn.execute(select(Cell)).all()
    assert (
        cell.status == "done"
        and cell.budget_kind == "tokens"
        and cell.budget_value == len(rows()) * 2 * 512
    )
    row = load_results(str(db)).iloc[0]
    pairs = cell.details["pairs"]
    assert [p["id"] for p in pairs] == [r["id"] for r in rows()] and cell.details[
        "metric_version"
    ] == metric_version()
    tie = next(p for p in pairs if p["id"] == TIE_ID)
    assert (
        tie["chosen_reward"] == tie["rejected_reward"] and tie["result"] == 0
    )  # an exact tie is a loss
    # every stored score is recomputed from the stored pairs
    recomputed = cell_metrics(subset_accuracy((p["subset"], p["result"]) for p in pairs))
    assert set(recomputed) == {
        "score",
        *(f"section/{s}" for s in SECTIONS),
        *(f"subset/{s}" for s in SUBSETS),
        *(f"2024-09-10-before/{s}" for s in (*SECTIONS, "score")),
    }
    for name, value in recomputed.items():
        assert math.isclose(row[name], value), name
    assert row["prefill_flop_fraction"] == row["kv_kept_fraction"] == 1.0
    assert cell.budget_used == cell.details["tokens_read"] == sum(p["tokens"] for p in pairs)
    # the stored reward is the checkpoint's own head on the chat-templated conversation, read by
    # transformers alone
    model = AutoModelForSequenceClassification.from_pretrained(classifier).eval()
    tokenizer = AutoTokenizer.from_pretrained(classifier)
    first = rows()[0]
    ids = tokenizer(
        _conversation(tokenizer, first["prompt"], first["chosen"]), return_tensors="pt"
    )["input_ids"]
    with torch.no_grad():
        assert math.isclose(
            model(ids).logits[0, 0].item(), pairs[0]["chosen_reward"], rel_tol=1e-5, abs_tol=1e-6
        )
    board = leaderboard.build(load_results(str(db)))
    assert json.loads(leaderboard.to_json(board))[0]["sections"] == pytest.approx(
        {s: row[f"section/{s}"] for s in SECTIONS}
    )
    assert (
        "| score ↑ | 95% CI | Chat | Chat Hard | Reasoning | Safety |"
        in leaderboard.to_markdown(board)
    )


def test_the_mechanism_is_the_models_attention(classifier, data):
    rewards = {}
    for mechanism in ("dense", "pine", "streaming"):
        pairs = _run(_cell(classifier, data, mechanism, max_examples=1)).details["pairs"]
        rewards[mechanism] = [(p["chosen_reward"], p["rejected_reward"]) for p in pairs]
    assert (
        rewards["pine"] == rewards["dense"]
    )  # without segments pine is the model's own attention, exactly
    assert (
        rewards["streaming"] != rewards["dense"]
    )  # its smoke window of 16 drops most of each conversation


def test_implicit_rewards_are_response_log_probabilities(lm, data):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(lm).eval()
    tokenizer = AutoTokenizer.from_pretrained(lm)
    first = rows()[0]
    # rewardbench/dpo.py's sequence: BOS + the user turn (no generation prompt), then the scored
    # answer = the rest of the conversation (assistant header, response, end of turn) + EOS
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": first["prompt"]}], tokenize=False
    )
    answer = _conversation(tokenizer, first["prompt"], first["chosen"])[len(prompt) :]
    assert answer.startswith("<|assistant|>\n" + first["chosen"])
    head = [tokenizer.bos_token_id] + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full = (
        head + tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    )
    start = len(head)
    with torch.no_grad():
        logprobs = model(torch.tensor([full])).logits[0].log_softmax(-1)
    per_token = [logprobs[t - 1, full[t]].item() for t in range(start, len(full))]
    for norm, expected in (("sum", sum(per_token)), ("avg", sum(per_token) / len(per_token))):
        outcome = _run(_cell(lm, data, mode="implicit", ref_free_norm=norm, max_examples=1))
        assert math.isclose(outcome.details["pairs"][0]["chosen_reward"], expected, rel_tol=1e-5)
    # against itself as the reference every reward is exactly 0: all ties, all losses
    outcome = _run(_cell(lm, data, mode="implicit", reference=str(lm), max_examples=1))
    assert {p["chosen_reward"] for p in outcome.details["pairs"]} == {0.0} and outcome.metrics[
        "score"
    ] == 0
    assert outcome.budget_used == sum(
        p["tokens"] for p in outcome.details["pairs"]
    )  # policy and reference


def _swap(ids, spans):
    (s1, e1), (s2, e2) = spans
    return ids[:s1] + ids[s2:e2] + ids[s1:e1] + ids[e2:], [(s1, s1 + e2 - s2), (s1 + e2 - s2, e2)]


def test_the_judge_declares_the_two_responses_to_pine(lm, data):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(lm)
    ids, spans, truncated = judge_ids(tokenizer, "Which is warmer?", "Lava.", "Ice.", True, 2048)
    assert (
        not truncated
        and tokenizer.decode(ids[spans[0][0] : spans[0][1]])
        == JUDGE_SEGMENT.format(label="A", response="Lava.")
        and tokenizer.decode(ids[spans[1][0] : spans[1][1]])
        == JUDGE_SEGMENT.format(label="B", response="Ice.")
    )
    model = AutoModelForCausalLM.from_pretrained(lm).eval()
    swapped, swapped_spans = _swap(ids, spans)
    last = {}
    for name in ("dense", "pine"):
        install(model, MECHANISMS.get(name), {})
        with torch.no_grad():
            last[name] = [
                model(torch.tensor([i]), pine_segments=s).logits[0, -1]
                for i, s in ((ids, spans), (swapped, swapped_spans))
            ]
    torch.testing.assert_close(
        last["pine"][0], last["pine"][1], rtol=1e-4, atol=1e-4
    )  # order-free under pine
    assert not torch.allclose(last["dense"][0], last["dense"][1], atol=1e-4)
    for name, declared in (("pine", True), ("dense", False)):
        outcome = _run(_cell(lm, data, name, mode="judge", max_examples=1))
        assert (
            outcome.details["segments_declared"] is declared
            and 0 <= outcome.metrics["position_consistency"] <= 100
        )
        pair = outcome.details["pairs"][0]
        assert pair["chosen_reward"] == pair["chosen_first"][0] + pair["chosen_second"][1]


def test_the_smoke_profile_scores_with_nothing_given(tmp_path):
    db = tmp_path / "r.db"
    result = run_cli(
        "run", "--suite", "rewardbench", "--profile", "smoke", "-m", "pine", "--db", str(db)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with create_engine(f"sqlite:///{db}").connect() as conn:
        cells = conn.execute(select(Cell)).all()
    assert [c.status for c in cells] == ["done"]
    assert (
        cells[0].config["task_config"]["model"] == "random:tiny"
        and len(cells[0].details["pairs"]) == 46
    )
    board = run_cli(
        "leaderboard", "--suite", "rewardbench", "--format", "markdown", "--db", str(db)
    )
    assert board.returncode == 0 and "| Chat | Chat Hard | Reasoning | Safety |" in board.stdout


def test_cells_without_a_model_or_data_are_stored_as_skipped(tmp_path):
    db = tmp_path / "r.db"
    result = run_cli(
        "run",
        "--suite",
        "rewardbench",
        "--profile",
        "paper",
        "-m",
        "dense",
        "--db",
        str(db),
        env={"HF_DATASETS_CACHE": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with create_engine(f"sqlite:///{db}").connect() as conn:
        (cell,) = conn.execute(select(Cell)).all()
    assert cell.status == "skipped" and "no --model" in cell.error and "fetch it once" in cell.error


def test_without_data_run_cell_says_why(classifier, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)
    (cell,) = plan_run(
        RunRequest(
            suite="rewardbench", mechanisms=("dense",), profile="paper", model=str(classifier)
        ),
        device="cpu",
    ).cells
    with pytest.raises(SkipCell, match="`datasets` package.*is not installed"):
        _run(cell)


def test_a_real_model_in_the_smoke_profile_reads_rewardbench_not_the_made_up_rows(classifier, data):
    (cell,) = plan_run(
        RunRequest(
            suite="rewardbench", mechanisms=("dense",), profile="smoke", model=str(classifier)
        ),
        device="cpu",
    ).cells
    assert cell.task_config["data"] == "hub" and cell.task_config["max_examples"] == 2
    assert cell.budget.value == 2 * 23 * 2 * 512
    assert _cell(classifier, data).task_config["data"] == str(data)


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"mode": "pairwise"}, "mode 'pairwise' is not one of classifier, implicit, judge"),
        ({"reference": "x"}, "reference='x' is only for mode=implicit"),
        (
            {"mode": "implicit", "ref_free_norm": "max"},
            "ref_free_norm 'max' is not one of sum, avg, norm",
        ),
        ({"max_examples": 0}, "max_examples=0 must be an integer >= 1"),
        ({"max_length": 4}, "max_length=4 must be an integer >= 8"),
        ({"dtype": "int8"}, "dtype 'int8' is not one of"),
        ({"data": "/nonexistent/filtered.jsonl"}, "neither a file nor a folder"),
        (
            {"mode": "implicit", "reference": "/nonexistent/ref"},
            "model path /nonexistent/ref does not exist",
        ),
        ({"colour": "red"}, "no task setting 'colour'"),
    ],
)
def test_bad_settings_fail_at_planning(classifier, data, settings, message):
    with pytest.raises(ConfigError, match=message):
        _cell(classifier, data, **settings)
