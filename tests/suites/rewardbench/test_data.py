"""RewardBench's data offline: the `filtered` split from a .jsonl, a parquet file or the Hub's
folder layout (identical rows), every malformed row refused with one line naming where, and a clear
message saying how to fetch the split when the datasets cache lacks it."""

from __future__ import annotations

import pytest

from attnbench.errors import ConfigError
from attnbench.suites.rewardbench.data import (
    DataUnavailable,
    RewardBenchDataError,
    first_rows,
    load,
    load_hf_cache,
)
from attnbench.suites.rewardbench.sections import SUBSETS
from attnbench.suites.rewardbench.smoke import synthetic_rows
from tests.conftest import run_cli
from tests.suites.rewardbench.fixtures import TIE_ID, rows, write_hub_layout, write_jsonl


def test_jsonl_parquet_and_the_hub_layout_give_the_same_rows(tmp_path):
    from_jsonl = load(str(write_jsonl(tmp_path / "filtered.jsonl")))
    folder = write_hub_layout(tmp_path / "hub")
    from_folder = load(str(folder))
    from_file = load(str(folder / "data" / "filtered-00000-of-00001.parquet"))
    assert from_jsonl.rows == from_folder.rows == from_file.rows == rows()
    assert all(type(r["id"]) is int for r in from_folder.rows)  # int64 from parquet as a Python int
    assert (
        from_folder.source.endswith("filtered-00000-of-00001.parquet")
        and len(from_jsonl.fingerprint) == 16
    )
    assert load(str(tmp_path)).rows == rows()  # a folder holding filtered.jsonl


def _bad(tmp_path, change):
    records = rows()
    change(records)
    return str(write_jsonl(tmp_path / "filtered.jsonl", records))


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda r: r[0].pop("chosen_model"), r"filtered.jsonl:1: missing field 'chosen_model'"),
        (lambda r: r[1].update(score=1.0), r"filtered.jsonl:2: unexpected field 'score'"),
        (lambda r: r[2].update(id="7"), r"filtered.jsonl:3: field 'id' must be an integer"),
        (lambda r: r[2].update(id=True), r"filtered.jsonl:3: field 'id' must be an integer"),
        (lambda r: r[3].update(chosen=["a"]), r"filtered.jsonl:4: field 'chosen' must be a string"),
        (
            lambda r: r[0].update(subset="anthropic_hhh"),
            r"subset 'anthropic_hhh' is not one of RewardBench's 23",
        ),
        (lambda r: r[1].update(id=r[0]["id"]), r"id 0 appears twice"),
        (
            lambda r: r.__setitem__(slice(None), [x for x in r if x["subset"] != "hep-rust"]),
            r"no rows of subset hep-rust; RewardBench's sections need all 23",
        ),
    ],
)
def test_malformed_rows_are_one_clear_error(tmp_path, change, message):
    with pytest.raises(RewardBenchDataError, match=message):
        load(_bad(tmp_path, change))


def test_files_that_are_not_the_split_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="expected a .parquet or .jsonl file"):
        load(str(tmp_path / "notes.txt"))
    with pytest.raises(ConfigError, match="neither a file nor a folder"):
        load(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="holds no filtered-\\*.parquet"):
        load(str(tmp_path))
    (tmp_path / "filtered.jsonl").write_text("{not json\n")
    with pytest.raises(RewardBenchDataError, match="filtered.jsonl:1: not valid JSON"):
        load(str(tmp_path))
    (tmp_path / "filtered.parquet").write_text("not parquet")
    with pytest.raises(RewardBenchDataError, match="not a readable parquet file"):
        load(str(tmp_path / "filtered.parquet"))


def test_an_empty_cache_says_how_to_fetch_the_split(tmp_path):
    pytest.importorskip("datasets")
    with pytest.raises(
        DataUnavailable,
        match=r"has no allenai/reward-bench split 'filtered'; fetch it once with "
        r".*load_dataset\('allenai/reward-bench', split='filtered'\)",
    ):
        load_hf_cache(cache_dir=str(tmp_path / "empty"))


def test_first_rows_keeps_the_first_of_each_subset_in_order():
    data = rows(per_subset=3)
    kept = first_rows(data, 2)
    assert [r["id"] for r in kept if r["subset"] == "hep-go"] == [
        r["id"] for r in data if r["subset"] == "hep-go"
    ][:2]
    assert len(kept) == 2 * 23 and TIE_ID not in {
        r["id"] for r in kept
    }  # the tie is a third xstest row
    assert first_rows(data, None) == data


def test_the_smoke_rows_have_the_official_schema():
    loaded = load("synthetic")
    assert loaded.rows == synthetic_rows() and len(loaded.rows) == 2 * len(SUBSETS)
    assert "not RewardBench data" in loaded.source


def test_the_cli_refuses_a_bad_data_file_in_one_line(tmp_path):
    path = _bad(tmp_path, lambda r: r[0].pop("prompt"))
    result = run_cli(
        "run",
        "--suite",
        "rewardbench",
        "-m",
        "dense",
        "--set",
        f"data={path}",
        "--db",
        str(tmp_path / "r.db"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        "filtered.jsonl:1: missing field 'prompt'" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )
