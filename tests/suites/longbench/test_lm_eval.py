"""LongBench through lm-eval (`--backend lm-eval`), offline: lm-eval's own tasks read the fixture
rows in the official format, a tiny random Llama answers through lm-eval's HFLM with the mechanism
installed, and the results land in the store in the native scale, marked as lm-eval's variant.
Nothing is downloaded."""

from __future__ import annotations

import dataclasses
import json
import re
import sys

import pytest

pytest.importorskip("transformers")
pytest.importorskip("rouge")
pytest.importorskip("jieba")
pytest.importorskip("fuzzywuzzy")
pytest.importorskip("accelerate")
pytest.importorskip("lm_eval")

from sqlalchemy import create_engine, select  # noqa: E402

from attnbench.cli import main  # noqa: E402
from attnbench.errors import ConfigError, SkipCell  # noqa: E402
from attnbench.mechanisms import dense  # noqa: E402
from attnbench.registry import MECHANISMS  # noqa: E402
from attnbench.run.planning import RunRequest, plan_run  # noqa: E402
from attnbench.store.schema import Cell  # noqa: E402
from attnbench.suite import CellContext  # noqa: E402
from attnbench.suites.longbench import SUITE  # noqa: E402
from attnbench.suites.longbench.data import VARIANTS, config_name  # noqa: E402
from attnbench.suites.longbench.lm_eval_backend import collect  # noqa: E402
from attnbench.suites.longbench.lm_eval_tasks import task_yaml  # noqa: E402
from attnbench.suites.longbench.prompts import MAX_NEW_TOKENS, PROMPTS  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.suites.longbench.fixtures import save_checkpoint, write_data  # noqa: E402

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
PROMPT_TOKENS = 1024 - 576  # the fixture model's window less the room kept for answers


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    import datasets

    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("longbench") / "data")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The fixture Llama, answering up to each dataset's full answer length (the native tests' copy
    stops at its first non-ASCII byte), so that every prompt gets an answer of its own."""
    from transformers import GenerationConfig

    path = save_checkpoint(tmp_path_factory.mktemp("tiny-llama-lm-eval"))
    config = GenerationConfig.from_pretrained(path)
    config.eos_token_id = 2
    config.save_pretrained(path)
    return path


def lm_eval_answer(model, tokenizer, name: str, row: dict, stop_at_newline: bool) -> str:
    """lm-eval's answer to a row, computed without lm-eval: THUDM's prompt text (lm-eval's templates
    are the same text with `question` for `input`), its last PROMPT_TOKENS tokens, greedy for the
    dataset's answer length, ended at the first newline where the task stops there."""
    import torch

    ids = tokenizer(PROMPTS[name].format(**row))["input_ids"][-PROMPT_TOKENS:]
    with torch.inference_mode():
        output = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=MAX_NEW_TOKENS[name],
            do_sample=False,
            pad_token_id=0,
        )
    text = tokenizer.decode(output[0, len(ids) :], skip_special_tokens=True)
    return text.split("\n")[0] if stop_at_newline else text


def _plan(checkpoint, folder, backend="lm-eval", **settings):
    return plan_run(
        RunRequest(
            suite="longbench",
            mechanisms=("dense",),
            profile="smoke",
            model=str(checkpoint),
            backend=backend,
            task_settings={"data_dir": str(folder), **settings},
        ),
        device="cpu",
    )


def test_the_backend_is_part_of_the_cells_config_and_label(checkpoint, folder):
    native, lm_eval = (
        _plan(checkpoint, folder, backend, datasets=["hotpotqa"]).cells[0]
        for backend in ("native", "lm-eval")
    )
    assert (
        "backend" not in native.task_config and lm_eval.task_config["backend"] == "lm-eval"
    )  # native: as before backends
    assert native.task_config["metrics"].startswith("thudm-longbench@2e00731 rouge==")
    assert (
        lm_eval.task_config["metrics"].startswith("lm-eval==0.4")
        and "fuzzywuzzy==" in lm_eval.task_config["metrics"]
    )
    assert (
        native.task == f"longbench-{checkpoint.name}"
        and lm_eval.task == f"longbench-lm-eval-{checkpoint.name}"
    )
    assert native.config_hash != lm_eval.config_hash
    rest = {k: v for k, v in lm_eval.task_config.items() if k not in ("backend", "metrics")}
    assert rest == {k: v for k, v in native.task_config.items() if k not in ("backend", "metrics")}
    assert rest["max_length"] == PROMPT_TOKENS


def test_without_lm_eval_the_backend_is_one_line_naming_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    message = (
        "--backend lm-eval needs lm_eval, not installed here; install it with pip install"
        " 'attnbench[lm-eval]'"
    )
    with pytest.raises(ConfigError) as caught:
        plan_run(
            RunRequest(
                suite="longbench", mechanisms=("dense",), profile="smoke", backend="lm-eval"
            ),
            device="cpu",
        )
    assert str(caught.value) == message
    code = main(
        [
            "run",
            "--suite",
            "longbench",
            "--backend",
            "lm-eval",
            "-m",
            "dense",
            "--db",
            str(tmp_path / "r.db"),
        ]
    )
    assert code == 2 and capsys.readouterr().err.strip() == f"attnbench: error: {message}"
    assert not (tmp_path / "r.db").exists()


def test_cells_that_cannot_run_are_skipped_with_the_reason(checkpoint, folder, monkeypatch):
    (cell,) = plan_run(
        RunRequest(suite="longbench", mechanisms=("dense",), profile="smoke", backend="lm-eval"),
        device="cpu",
    ).cells
    ready = _plan(checkpoint, folder, datasets=["trec"]).cells[0]
    monkeypatch.setitem(sys.modules, "datasets", None)  # no Hugging Face cache to fall back on
    with pytest.raises(SkipCell, match="no --model.*no data_dir was set"):
        SUITE.run_cell(cell, MECHANISMS.get("dense"), CellContext())
    monkeypatch.setitem(
        sys.modules, "lm_eval", None
    )  # planned here, run where lm-eval is missing (a Ray worker)
    with pytest.raises(
        SkipCell, match=r"--backend lm-eval needs lm_eval \(pip install 'attnbench\[lm-eval\]'\)"
    ):
        SUITE.run_cell(ready, MECHANISMS.get("dense"), CellContext())


def test_lm_evals_tasks_exist_for_every_dataset_with_thudms_answer_lengths():
    """The backend sizes HFLM's window from THUDM's answer lengths; lm-eval's task files must
    agree."""
    for variant, names in VARIANTS.items():
        for name in names:
            text = task_yaml(config_name(name, variant)).read_text(encoding="utf-8")
            assert f"task: longbench_{config_name(name, variant)}\n" in text
            assert re.search(r"max_gen_toks: (\d+)", text).group(1) == str(MAX_NEW_TOKENS[name]), (
                name
            )


def test_collect_keeps_lm_evals_mean_in_the_native_scale_with_each_row():
    samples = [
        {
            "doc_id": i,
            "doc": {"_id": f"trec-e-{i}", "length": length},
            "filtered_resps": [f"answer {i}"],
            "score": score,
        }
        for i, (length, score) in enumerate([(3999, 1.0), (4000, 0.5), (7999, 0.0), (8000, 0.25)])
    ]
    output = {
        "results": {"longbench_trec_e": {"score,none": 0.4375}},
        "samples": {"longbench_trec_e": samples[::-1]},
    }
    metrics, rows = collect("trec", "longbench_trec_e", output, "longbench_e")
    assert metrics == {"trec": 43.75, "trec/0-4k": 100.0, "trec/4-8k": 25.0, "trec/8k+": 25.0}
    assert [(r["_id"], r["pred"], r["score"]) for r in rows] == [
        (f"trec-e-{i}", f"answer {i}", s["score"]) for i, s in enumerate(samples)
    ]
    assert collect("trec", "longbench_trec_e", output, "longbench")[0] == {"trec": 43.75}


def test_lm_eval_calls_the_installed_mechanism_and_scores_longbench_e_buckets(checkpoint, folder):
    calls = []

    def counting(**hparams):
        attention = dense.build(**hparams)

        def call(*args, **kwargs):
            calls.append(args[1].shape[2])  # the query length
            return attention(*args, **kwargs)

        return call

    spec = dataclasses.replace(dense.SPEC, build=counting)
    cell = _plan(
        checkpoint,
        folder,
        variant="longbench_e",
        datasets=["trec", "passage_count"],
        max_examples=4,
    ).cells[0]
    steps = []
    outcome = SUITE.run_cell(
        cell, spec, CellContext(on_step=lambda done, total: steps.append((done, total)))
    )
    metrics, details = outcome.metrics, outcome.details
    assert steps == [(4, 8), (8, 8)]
    prompts = [n for task in details["lm_eval_tasks"].values() for n in task["prompt_tokens"]]
    assert len(prompts) == 8 and all(0 < n <= PROMPT_TOKENS for n in prompts)
    assert sorted(n for n in calls if n > 1) == sorted(
        prompts * 2
    )  # each prompt's prefill in both layers
    assert outcome.budget_used == details["tokens_read"] == sum(prompts)
    for name in ("trec", "passage_count"):
        assert {f"{name}/{b}" for b in ("0-4k", "4-8k", "8k+")} <= set(metrics) and 0 <= metrics[
            name
        ] <= 100
        assert details["predictions"][name]["config"] == f"{name}_e"
    assert {"score/0-4k", "score/4-8k", "score/8k+"} <= set(metrics)
    assert (
        metrics["prefill_flop_fraction"] == metrics["kv_kept_fraction"] == 1.0
    )  # dense is its own reference
    assert details["lm_eval_tasks"]["longbench_trec_e"]["until"] == ["\n"]


def test_cli_runs_lm_evals_tasks_into_the_store(checkpoint, folder, tmp_path):
    from lm_eval.tasks.longbench import metrics as lm_eval_metrics

    from attnbench.results import load as load_results
    from attnbench.toolkit.pretrained import load

    model, tokenizer = load(str(checkpoint))
    data = tmp_path / "data"
    data.mkdir()
    rows, expected = {}, {}
    for name, stop_at_newline in (("hotpotqa", False), ("trec", True)):
        rows[name] = [
            json.loads(line)
            for line in (folder / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        expected[name] = [
            lm_eval_answer(model, tokenizer, name, row, stop_at_newline) for row in rows[name]
        ]
    rows["hotpotqa"][0]["answers"] = [
        expected["hotpotqa"][0].strip()
    ]  # one row lm-eval must score 1
    for name, records in rows.items():
        (data / f"{name}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
        )
    db = tmp_path / "r.db"
    result = run_cli(
        "run",
        "--suite",
        "longbench",
        "-m",
        "dense",
        "--backend",
        "lm-eval",
        "--model",
        str(checkpoint),
        "--set",
        f"data_dir={data}",
        "--set",
        "datasets=hotpotqa,trec",
        "--db",
        str(db),
        env=OFFLINE,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with create_engine(f"sqlite:///{db}").connect() as conn:
        (cell,) = conn.execute(select(Cell)).all()
    assert cell.status == "done" and cell.task == f"longbench-lm-eval-{checkpoint.name}"
    assert cell.config["task_config"]["backend"] == "lm-eval"
    assert cell.details["metric_version"] == cell.config["task_config"]["metrics"]
    assert cell.details["metric_version"].startswith("lm-eval==")
    assert "not THUDM's protocol" in cell.details["variant_note"]
    stored = load_results(str(db)).iloc[0]
    oracle = {
        "hotpotqa": lambda doc, pred: lm_eval_metrics.get_qa_f1_score(doc, [pred])["qa_f1_score"],
        "trec": lambda doc, pred: lm_eval_metrics.get_classification_score(doc, [pred])[
            "classification_score"
        ],
    }
    for name, records in rows.items():
        predicted = cell.details["predictions"][name]["rows"]
        assert [r["_id"] for r in predicted] == [r["_id"] for r in records]
        assert [r["pred"] for r in predicted] == expected[
            name
        ]  # lm-eval's prompt of the official row, answered
        scores = [oracle[name](row, r["pred"]) for row, r in zip(records, predicted)]
        assert [r["score"] for r in predicted] == scores
        assert stored[name] == round(100 * sum(scores) / len(scores), 2)
    assert cell.details["predictions"]["hotpotqa"]["rows"][0]["score"] == 1.0
    assert stored["score"] == round((stored["hotpotqa"] + stored["trec"]) / 2, 2) > 0
