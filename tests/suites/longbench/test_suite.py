"""The LongBench suite offline: official prompts and truncation, planning, a tiny random Llama
reading synthetic rows of every dataset end to end into the store, and the cells that cannot run
stored as skipped."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

pytest.importorskip("transformers")
pytest.importorskip("rouge")
pytest.importorskip("jieba")
pytest.importorskip("fuzzywuzzy")

from sqlalchemy import create_engine, select  # noqa: E402

from attnbench.errors import ConfigError, SkipCell  # noqa: E402
from attnbench.registry import MECHANISMS  # noqa: E402
from attnbench.run.planning import RunRequest, plan_run  # noqa: E402
from attnbench.store.schema import Cell  # noqa: E402
from attnbench.suite import CellContext  # noqa: E402
from attnbench.suites.longbench import SUITE, scorer  # noqa: E402
from attnbench.suites.longbench.data import DATASETS, load  # noqa: E402
from attnbench.suites.longbench.prompts import (
    MAX_NEW_TOKENS,
    NO_CHAT_DATASETS,
    PROMPTS,  # noqa: E402
    middle_truncate,
    postprocess,
    prompt_ids,
)
from attnbench.suites.longbench.task import ANSWER_ROOM  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.suites.longbench.fixtures import (
    byte_tokenizer,
    rows,
    save_checkpoint,
    write_data,
)  # noqa: E402

CHAT = (
    "{% for m in messages %}<|user|>{{ m['content'] }}{% endfor %}{% if add_generation_prompt"
    " %}<|bot|>{% endif %}"
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("longbench") / "data")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("tiny-llama-bytes"))


def _digest(table: dict) -> str:
    return hashlib.sha256(
        json.dumps(table, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()


def test_prompts_and_answer_lengths_are_the_official_config_files():
    # sha256 of json.dumps(..., sort_keys=True, ensure_ascii=False) of config/dataset2prompt.json
    # and config/dataset2maxlen.json at THUDM/LongBench 2e00731
    assert _digest(PROMPTS) == "e7d865d712fe45e2455f5e864ac474001d7758d68d349e76ffbcdd382483358f"
    assert (
        _digest(MAX_NEW_TOKENS)
        == "39a79d9491ead3dc8bcea6dbd8b963b29248eb4c344dde1e176b0a58b4e758a9"
    )
    assert list(PROMPTS) == list(MAX_NEW_TOKENS) == list(DATASETS)


def test_middle_truncation_keeps_the_first_and_last_half_of_max_length_tokens():
    tokenizer = byte_tokenizer()
    text = "".join(chr(ord("a") + i % 26) for i in range(100))
    kept, cut = middle_truncate(tokenizer, text, 21)  # 101 tokens with BOS; half = 10
    assert cut and kept == text[:9] + text[-10:]  # the first ten tokens are BOS and nine characters
    assert middle_truncate(tokenizer, text, 101) == (text, False)
    # a cut inside a character decodes to the replacement character, as pred.py's decode does
    kept, _ = middle_truncate(tokenizer, "会议" * 10, 10)  # BOS and 4 bytes, then the last 5 bytes
    assert kept.startswith("会\ufffd") and kept.endswith("\ufffd议") and "会议" not in kept


def test_chat_template_wraps_all_but_the_few_shot_and_code_datasets():
    tokenizer = byte_tokenizer(chat_template=CHAT)
    for name in ("hotpotqa", "trec", "lcc"):
        row = rows(name, 1)[0]
        ids, truncated = prompt_ids(tokenizer, name, row, 10_000, chat_template=True)
        text = tokenizer.decode(ids)
        assert not truncated and text.count("<s>") == 1 - (name not in NO_CHAT_DATASETS)
        assert text.startswith("<|user|>") == (name not in NO_CHAT_DATASETS)
        assert text.endswith("<|bot|>") == (name not in NO_CHAT_DATASETS)
        plain, _ = prompt_ids(tokenizer, name, row, 10_000, chat_template=False)
        assert tokenizer.decode(plain) == "<s>" + PROMPTS[name].format(
            context=row["context"], input=row["input"]
        )


def test_one_line_datasets_keep_the_first_line():
    assert postprocess("samsum", "\n\nThey meet.\nDialogue: more") == "They meet."
    assert postprocess("gov_report", "\nA.\nB.") == "\nA.\nB."


def _plan(checkpoint, folder, **settings):
    return plan_run(
        RunRequest(
            suite="longbench",
            mechanisms=("dense", "streaming"),
            profile="smoke",
            model=str(checkpoint),
            task_settings={"data_dir": str(folder), **settings},
        ),
        device="cpu",
    )


def test_planning_reads_the_window_from_the_model_and_budgets_prompt_tokens(checkpoint, folder):
    plan = _plan(checkpoint, folder, max_examples=1)
    assert {c.mechanism for c in plan.cells} == {"dense", "streaming"} and len(plan.cells) == 2
    cell = plan.cells[0]
    assert cell.task_config["max_length"] == 1024 - ANSWER_ROOM
    assert cell.task_config["metrics"].startswith("thudm-longbench@2e00731")
    assert cell.budget.kind == "tokens" and cell.budget.value == 6 * (
        1024 - ANSWER_ROOM
    )  # six smoke datasets
    assert cell.task == "longbench-" + checkpoint.name
    chosen = _plan(checkpoint, folder, datasets="hotpotqa, trec", max_length=64).cells[
        0
    ]  # as --set gives it
    assert (
        chosen.task_config["datasets"] == ["hotpotqa", "trec"] and chosen.budget.value == 2 * 2 * 64
    )


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"datasets": ["hotpotqa", "nope"]}, "dataset 'nope' is not in longbench"),
        (
            {"variant": "longbench_e", "datasets": "dureader"},
            "dataset 'dureader' is not in longbench_e",
        ),
        ({"variant": "v2"}, "variant 'v2' is not one of"),
        ({"max_examples": 0}, "max_examples=0 must be an integer >= 1"),
        ({"max_length": 1}, "max_length=1 must be an integer >= 2"),
        ({"chat_template": "yes"}, "chat_template='yes' must be True, False or None"),
        ({"colour": "red"}, "no task setting 'colour'"),
    ],
)
def test_bad_settings_fail_at_planning(checkpoint, folder, settings, message):
    with pytest.raises(ConfigError, match=message):
        _plan(checkpoint, folder, **settings)


def test_a_short_window_or_a_bad_row_fail_at_planning(tmp_path, folder):
    short = save_checkpoint(tmp_path / "short", window=512)
    with pytest.raises(ConfigError, match="window of 512 tokens.*--set max_length=N"):
        _plan(short, folder)
    assert _plan(short, folder, max_length=100).cells[0].task_config["max_length"] == 100
    broken = write_data(tmp_path / "broken")
    (broken / "trec.jsonl").write_text(json.dumps({"input": "q"}) + "\n")
    with pytest.raises(ConfigError, match=r"trec.jsonl:1: missing field 'context'"):
        _plan(short, broken, max_length=100)


def test_longbench_e_scores_each_length_bucket_with_streaming(checkpoint, folder):
    plan = _plan(
        checkpoint,
        folder,
        variant="longbench_e",
        datasets=["trec", "passage_count", "lcc"],
        max_examples=4,
    )
    cell = next(c for c in plan.cells if c.mechanism == "streaming")
    steps = []
    outcome = SUITE.run_cell(
        cell, MECHANISMS.get("streaming"), CellContext(on_step=lambda s, n: steps.append(s))
    )
    metrics = outcome.metrics
    assert steps == list(range(1, 13))
    for name in ("trec", "passage_count", "lcc"):
        assert {f"{name}/{b}" for b in ("0-4k", "4-8k", "8k+")} <= set(metrics)
        assert 0 <= metrics[name] <= 100
    assert {"score/0-4k", "score/4-8k", "score/8k+"} <= set(metrics)
    # the smoke window of 16 keeps a small share of every prompt's attention and cache
    assert 0 < metrics["prefill_flop_fraction"] < 0.5 and 0 < metrics["kv_kept_fraction"] < 0.5
    assert outcome.details["predictions"]["trec"]["config"] == "trec_e"
    assert outcome.budget_used == outcome.details["tokens_read"] > 0


def test_cli_runs_every_dataset_into_the_store_with_per_row_predictions(
    checkpoint, folder, tmp_path
):
    db = tmp_path / "r.db"
    result = run_cli(
        "run",
        "--suite",
        "longbench",
        "-m",
        "dense",
        "--model",
        str(checkpoint),
        "--set",
        f"data_dir={folder}",
        "--set",
        "datasets=all",
        "--set",
        "max_examples=1",
        "--db",
        str(db),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with create_engine(f"sqlite:///{db}").connect() as conn:
        (cell,) = conn.execute(select(Cell)).all()
    assert cell.status == "done" and cell.budget_kind == "tokens" and cell.kv_cache_bytes > 0
    from attnbench.results import load as load_results

    frame = load_results(str(db))
    row = frame.iloc[0]
    assert all(0 <= row[name] <= 100 for name in DATASETS) and 0 <= row["score"] <= 100
    assert (
        row["prefill_flop_fraction"] == row["kv_kept_fraction"] == 1.0
    )  # dense is its own reference
    predictions = cell.details["predictions"]
    assert set(predictions) == set(DATASETS)
    for name in DATASETS:  # every score is recomputed from the stored predictions and the data
        stored = predictions[name]["rows"]
        answers = {r["_id"]: r["answers"] for r in load(name, folder).rows}
        assert [r["_id"] for r in stored] == [f"{name}-0000"]
        assert (
            scorer(
                name,
                [r["pred"] for r in stored],
                [answers[r["_id"]] for r in stored],
                predictions[name]["all_classes"],
            )
            == row[name]
        )
    assert cell.details["metric_version"] == cell.config["task_config"]["metrics"]


def test_without_a_model_or_data_run_cell_says_why(folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # no Hugging Face cache to fall back on
    (cell,) = plan_run(
        RunRequest(suite="longbench", mechanisms=("dense",), profile="smoke"), device="cpu"
    ).cells
    with pytest.raises(SkipCell, match="no --model.*no data_dir was set"):
        SUITE.run_cell(cell, MECHANISMS.get("dense"), CellContext())


def test_cells_without_a_model_or_data_are_stored_as_skipped(tmp_path):
    db = tmp_path / "r.db"
    result = run_cli(
        "run",
        "--suite",
        "longbench",
        "-m",
        "dense",
        "--db",
        str(db),
        env={"HF_DATASETS_CACHE": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with create_engine(f"sqlite:///{db}").connect() as conn:
        (cell,) = conn.execute(select(Cell)).all()
    assert cell.status == "skipped" and "no --model" in cell.error and "data_dir" in cell.error
