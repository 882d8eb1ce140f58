"""LongBench's data in the official format, read offline.

Two sources, tried in this order:

* a folder of the official files, `<name>.jsonl` (LongBench) and `<name>_e.jsonl` (LongBench-E), as
  the official `data.zip` unpacks them into `data/` (the folder itself or its parent may be given);
* the Hugging Face datasets cache of `THUDM/LongBench` (now `zai-org/LongBench`), config `<name>` or
  `<name>_e`, split `test`, as `datasets.load_dataset` left it; read with the hub switched off, so
  nothing is ever downloaded here.

Every row must have exactly the official fields, typed as the LongBench README gives them; anything
else is one `LongBenchDataError` line naming the file and line (or cache row).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from attnbench.errors import ConfigError
from attnbench.toolkit import official_rows
from attnbench.toolkit.official_rows import DataUnavailable, Loaded, check_fields, file_digest
from attnbench.values import is_whole

DATASETS = (
    "narrativeqa",
    "qasper",
    "multifieldqa_en",
    "multifieldqa_zh",
    "hotpotqa",
    "2wikimqa",
    "musique",
    "dureader",
    "gov_report",
    "qmsum",
    "multi_news",
    "vcsum",
    "trec",
    "triviaqa",
    "samsum",
    "lsht",
    "passage_count",
    "passage_retrieval_en",
    "passage_retrieval_zh",
    "lcc",
    "repobench-p",
)
E_DATASETS = (
    "qasper",
    "multifieldqa_en",
    "hotpotqa",
    "2wikimqa",
    "gov_report",
    "multi_news",
    "trec",
    "triviaqa",
    "samsum",
    "passage_count",
    "passage_retrieval_en",
    "lcc",
    "repobench-p",
)
VARIANTS = {"longbench": DATASETS, "longbench_e": E_DATASETS}

# Rows per dataset in the official release (LongBench/task.md), for budgets planned before the data
# is read.
SIZES = {
    "longbench": {
        **{name: 200 for name in DATASETS},
        "multifieldqa_en": 150,
        "lcc": 500,
        "repobench-p": 500,
    },
    "longbench_e": {
        **{name: 300 for name in E_DATASETS},
        "multifieldqa_en": 150,
        "qasper": 224,
        "multi_news": 294,
    },
}

HUB_IDS = ("THUDM/LongBench", "zai-org/LongBench")
GET_DATA = (
    "--set data_dir=FOLDER with the official data/<name>.jsonl files (unzip data.zip from the"
    " THUDM/LongBench dataset repository on the Hugging Face Hub), or load THUDM/LongBench once"
    " with the `datasets` package so that its cache holds it"
)

# The official schema: field -> (check, what it must be)
FIELDS: dict[str, tuple[Any, str]] = {
    "input": (lambda v: isinstance(v, str), "a string"),
    "context": (lambda v: isinstance(v, str), "a string"),
    "answers": (
        lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v),
        "a list of strings",
    ),
    "length": (is_whole, "an integer"),
    "dataset": (lambda v: isinstance(v, str), "a string"),
    "language": (lambda v: isinstance(v, str), "a string"),
    "all_classes": (
        lambda v: v is None or (isinstance(v, list) and all(isinstance(c, str) for c in v)),
        "null or a list of strings",
    ),
    "_id": (lambda v: isinstance(v, str), "a string"),
}


class LongBenchDataError(ConfigError):
    """A data file or row that is not in the official format."""


def config_name(dataset: str, variant: str) -> str:
    """The official name of a dataset's file or Hub config: `hotpotqa`, or `hotpotqa_e` for
    LongBench-E."""
    return f"{dataset}_e" if variant == "longbench_e" else dataset


def check_row(row: Any, where: str) -> dict[str, Any]:
    """The row if it has exactly the eight official fields with the official types; else one
    clear error."""
    return check_fields(row, where, FIELDS, "LongBench", LongBenchDataError)


def folder_of(data_dir: str | os.PathLike) -> Path:
    """The folder that holds the .jsonl files: `data_dir`, or its `data/` as data.zip unpacks."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise ConfigError(f"LongBench data_dir {data_dir} is not a folder; {GET_DATA}")
    if not any(root.glob("*.jsonl")) and (root / "data").is_dir():
        return root / "data"
    return root


def data_file(data_dir: str | os.PathLike, name: str) -> Path:
    path = folder_of(data_dir) / f"{name}.jsonl"
    if not path.is_file():
        raise ConfigError(f"LongBench data_dir {data_dir} has no {name}.jsonl; {GET_DATA}")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every row of an official .jsonl file, validated; blank lines are allowed."""
    rows = official_rows.read_jsonl(path, check_row, LongBenchDataError)
    if not rows:
        raise LongBenchDataError(f"{path}: no rows")
    return rows


def load_folder(data_dir: str | os.PathLike, name: str) -> Loaded:
    path = data_file(data_dir, name)
    return Loaded(read_jsonl(path), str(path.resolve()), file_digest(path))


def load_hf_cache(name: str, cache_dir: str | None = None) -> Loaded:
    """The rows of config `name` from the Hugging Face datasets cache, with the Hub switched off."""
    missing = (
        "no LongBench data: no data_dir was set and the `datasets` package, which reads the"
        f" Hugging Face cache, is not installed; {GET_DATA}"
    )
    with official_rows.offline_datasets(missing) as datasets:
        for repo in HUB_IDS:
            try:
                table = datasets.load_dataset(repo, name, split="test", cache_dir=cache_dir)
            except Exception:  # not cached under this id (datasets raises several types for that)
                continue
            rows = [
                check_row(dict(row), f"{repo} {name} test row {index + 1}")
                for index, row in enumerate(table)
            ]
            if not rows:
                raise LongBenchDataError(f"{repo} {name} test split in the datasets cache: no rows")
            return Loaded(
                rows, f"{repo} ({name}, test) from the datasets cache", table._fingerprint
            )
    raise DataUnavailable(
        "no LongBench data: no data_dir was set and the Hugging Face datasets cache "
        f"({cache_dir or datasets.config.HF_DATASETS_CACHE}) has no {HUB_IDS[0]} config "
        f"{name!r}; {GET_DATA}"
    )


def load(
    name: str, data_dir: str | os.PathLike | None = None, cache_dir: str | None = None
) -> Loaded:
    """The official rows of `name` (e.g. `hotpotqa`, `hotpotqa_e`): from `data_dir` when given,
    else the cache."""
    if data_dir is not None:
        return load_folder(data_dir, name)
    return load_hf_cache(name, cache_dir)
