"""LongBench's loader: the official files and the Hugging Face datasets cache, and one-line
errors for bad rows."""

from __future__ import annotations

import json
import sys

import pytest

from attnbench.errors import ConfigError
from attnbench.suites.longbench import data
from attnbench.suites.longbench.data import (
    DATASETS,
    E_DATASETS,
    DataUnavailable,
    LongBenchDataError,
    load,
    load_hf_cache,
    read_jsonl,
)
from tests.suites.longbench.fixtures import E_LENGTHS, rows, write_data


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("longbench") / "data")


def test_the_fixture_has_every_dataset_in_the_official_schema(folder):
    assert len(DATASETS) == 21 and len(E_DATASETS) == 13 and set(E_DATASETS) <= set(DATASETS)
    for name in DATASETS:
        loaded = load(name, folder)
        assert [list(row) for row in loaded.rows] == [list(data.FIELDS)] * len(loaded.rows)
        assert (loaded.rows[0]["all_classes"] is not None) == (name in ("trec", "lsht"))
        assert len(loaded.fingerprint) == 16 and loaded.source.endswith(f"{name}.jsonl")
    assert load("multifieldqa_zh", folder).rows[0]["language"] == "zh"
    assert [r["length"] for r in load("hotpotqa_e", folder).rows] == list(E_LENGTHS)


def test_the_folder_or_the_one_above_it_as_data_zip_unpacks(folder):
    assert load("trec", folder.parent).rows == load("trec", folder).rows
    with pytest.raises(ConfigError, match="has no narrativeqa_e.jsonl"):
        load("narrativeqa_e", folder)
    with pytest.raises(ConfigError, match="is not a folder.*data.zip"):
        load("trec", folder / "nowhere")


def _line(**changes):
    row = {**rows("hotpotqa", 1)[0], **changes}
    return json.dumps({k: v for k, v in row.items() if v != "<drop>"}, ensure_ascii=False)


@pytest.mark.parametrize(
    "line,message",
    [
        (_line(answers="Perpetua"), "field 'answers' must be a list of strings"),
        (_line(length=True), "field 'length' must be an integer"),
        (_line(length="12"), "field 'length' must be an integer"),
        (_line(all_classes="Animal"), "field 'all_classes' must be null or a list of strings"),
        (_line(_id=7), "field '_id' must be a string"),
        (_line(context="<drop>"), "missing field 'context'"),
        (_line(extra=1), "unexpected field 'extra'"),
        ("[1, 2]", "a row must be a JSON object"),
        ('{"input": ', "not valid JSON"),
    ],
)
def test_a_malformed_row_is_one_line_naming_file_and_line(tmp_path, line, message):
    path = tmp_path / "hotpotqa.jsonl"
    path.write_text(_line() + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(LongBenchDataError) as caught:
        read_jsonl(path)
    text = str(caught.value)
    assert text.startswith(f"{path}:3: ") and message in text and "\n" not in text


def test_files_that_are_empty_or_not_utf8_are_refused(tmp_path):
    empty = tmp_path / "trec.jsonl"
    empty.write_text("\n")
    with pytest.raises(LongBenchDataError, match="no rows"):
        read_jsonl(empty)
    latin = tmp_path / "lsht.jsonl"
    latin.write_bytes(_line(input="caf\u00e9").encode("latin-1"))
    with pytest.raises(LongBenchDataError, match="not UTF-8"):
        read_jsonl(latin)


def test_without_datasets_installed_the_cache_is_unavailable_with_how_to_get_the_data(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DataUnavailable, match="`datasets` package.*not installed.*data_dir"):
        load_hf_cache("hotpotqa")


def test_the_hugging_face_datasets_cache_is_read_offline(tmp_path):
    datasets = pytest.importorskip("datasets")
    from datasets.packaged_modules.json.json import Json

    source = tmp_path / "src" / "hotpotqa.jsonl"
    source.parent.mkdir()
    source.write_text("".join(json.dumps(r) + "\n" for r in rows("hotpotqa", 2)))
    # lay the rows out as load_dataset("THUDM/LongBench", "hotpotqa") caches them:
    # THUDM___long_bench/hotpotqa/...
    cache = tmp_path / "cache"
    builder = Json(
        cache_dir=str(cache),
        dataset_name="long_bench",
        config_name="hotpotqa",
        data_files={"test": str(source)},
        hash="0123abcd",
    )
    builder.download_and_prepare()
    (cache / "long_bench").rename(cache / "THUDM___long_bench")
    (config,) = (cache / "THUDM___long_bench").iterdir()
    config.rename(config.parent / "hotpotqa")
    online = datasets.config.HF_HUB_OFFLINE
    loaded = load_hf_cache("hotpotqa", cache_dir=str(cache))
    assert loaded.rows == rows("hotpotqa", 2) and "THUDM/LongBench" in loaded.source
    assert datasets.config.HF_HUB_OFFLINE == online  # switched off only while reading
    with pytest.raises(DataUnavailable, match="has no THUDM/LongBench config 'qasper'"):
        load_hf_cache("qasper", cache_dir=str(cache))
