"""RewardBench's `filtered` split in the official format, read offline.

Sources, by the task's `data` setting:

* `hub` — the Hugging Face datasets cache of `allenai/reward-bench`, split `filtered`, read with the
  Hub switched off, so nothing is ever downloaded here;
* a path — a `.parquet` or `.jsonl` file of the split, or a folder that holds one (the Hub
  repository's `data/filtered-*.parquet` layout, or `filtered*.parquet` / `filtered*.jsonl`);
* `synthetic` — attnbench's own smoke rows (`smoke.synthetic_rows`), the official schema with
  made-up text.

Every row must have exactly the seven official fields with the official types, a known subset and a
unique id, and the rows must cover all 23 subsets (a section of a partial set would not be
RewardBench's); anything else is one `RewardBenchDataError` line naming the file and row.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from attnbench.errors import ConfigError
from attnbench.suites.rewardbench.sections import SUBSETS
from attnbench.toolkit import official_rows
from attnbench.toolkit.official_rows import DataUnavailable, Loaded, check_fields, file_digest
from attnbench.values import is_whole

HUB_ID = "allenai/reward-bench"
SPLIT = "filtered"
GET_DATA = (
    f"fetch it once with `python -c \"import datasets; datasets.load_dataset('{HUB_ID}',"
    f" split='{SPLIT}')\"` (or `hf download {HUB_ID} --repo-type dataset` and --set data=<its"
    " data/filtered-*.parquet>), or --set data=FILE with a .parquet or .jsonl copy of the split"
)


def _is_int(value: Any) -> bool:
    return is_whole(value)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


# The official schema: field -> (check, what it must be)
FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "prompt": (_is_str, "a string"),
    "chosen": (_is_str, "a string"),
    "chosen_model": (_is_str, "a string"),
    "rejected": (_is_str, "a string"),
    "rejected_model": (_is_str, "a string"),
    "subset": (_is_str, "a string"),
    "id": (_is_int, "an integer"),
}


class RewardBenchDataError(ConfigError):
    """A data file or row that is not in the official format."""


def check_row(row: Any, where: str) -> dict[str, Any]:
    """The row if it has exactly the seven official fields, typed, with a known subset; else one
    clear error."""
    check_fields(row, where, FIELDS, "RewardBench", RewardBenchDataError)
    if row["subset"] not in SUBSETS:
        raise RewardBenchDataError(
            f"{where}: subset {row['subset']!r} is not one of RewardBench's 23"
        )
    return row


def check_rows(rows: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """Ids unique and all 23 subsets present."""
    seen: set[int] = set()
    for row in rows:
        if row["id"] in seen:
            raise RewardBenchDataError(f"{source}: id {row['id']} appears twice")
        seen.add(row["id"])
    absent = [subset for subset in SUBSETS if subset not in {row["subset"] for row in rows}]
    if absent:
        raise RewardBenchDataError(
            f"{source}: no rows of subset {', '.join(absent)}; RewardBench's sections "
            "need all 23 subsets"
        )
    return rows


def _plain(value: Any) -> Any:
    """numpy scalars from pandas as Python values (an int64 id as int)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not parquet
        raise RewardBenchDataError(f"{path}: not a readable parquet file ({exc})") from None
    return [
        check_row({k: _plain(v) for k, v in row.items()}, f"{path} row {i + 1}")
        for i, row in enumerate(table.to_pylist())
    ]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return official_rows.read_jsonl(path, check_row, RewardBenchDataError)


def data_file(data: str | os.PathLike) -> Path:
    """The file named, or the one file of the split inside the folder named."""
    path = Path(data).expanduser()
    if path.is_file():
        if path.suffix not in (".parquet", ".jsonl"):
            raise ConfigError(f"RewardBench data {data}: expected a .parquet or .jsonl file")
        return path
    if not path.is_dir():
        raise ConfigError(f"RewardBench data {data} is neither a file nor a folder; {GET_DATA}")
    for pattern in (f"data/{SPLIT}-*.parquet", f"{SPLIT}*.parquet", f"{SPLIT}*.jsonl"):
        found = sorted(path.glob(pattern))
        if len(found) == 1:
            return found[0]
        if found:
            raise ConfigError(
                f"RewardBench data {data} holds {len(found)} files matching {pattern}; name one"
            )
    raise ConfigError(
        f"RewardBench data {data} holds no {SPLIT}-*.parquet or {SPLIT}*.jsonl; {GET_DATA}"
    )


def load_file(data: str | os.PathLike) -> Loaded:
    path = data_file(data)
    rows = read_parquet(path) if path.suffix == ".parquet" else read_jsonl(path)
    if not rows:
        raise RewardBenchDataError(f"{path}: no rows")
    return Loaded(check_rows(rows, str(path)), str(path.resolve()), file_digest(path))


def load_hf_cache(cache_dir: str | None = None) -> Loaded:
    """The `filtered` split from the Hugging Face datasets cache, with the Hub switched off."""
    missing = (
        "no RewardBench data: the `datasets` package, which reads the Hugging Face cache, is not"
        f" installed; {GET_DATA}"
    )
    with official_rows.offline_datasets(missing) as datasets:
        try:
            table = datasets.load_dataset(HUB_ID, split=SPLIT, cache_dir=cache_dir)
        except Exception:  # not cached (datasets raises several types for that)
            raise DataUnavailable(
                "no RewardBench data: the Hugging Face datasets cache "
                f"({cache_dir or datasets.config.HF_DATASETS_CACHE}) has no {HUB_ID} split "
                f"{SPLIT!r}; {GET_DATA}"
            ) from None
    source = f"{HUB_ID} ({SPLIT}) from the datasets cache"
    rows = [check_row(dict(row), f"{source} row {i + 1}") for i, row in enumerate(table)]
    return Loaded(check_rows(rows, source), source, table._fingerprint)


def load(data: str, cache_dir: str | None = None) -> Loaded:
    """The rows named by the task's `data` setting: "hub", "synthetic" or a path."""
    if data == "hub":
        return load_hf_cache(cache_dir)
    if data == "synthetic":
        from attnbench.suites.rewardbench.smoke import synthetic_rows

        rows = synthetic_rows()
        digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
        return Loaded(
            check_rows([check_row(r, "synthetic row") for r in rows], "synthetic"),
            "attnbench synthetic smoke rows (not RewardBench data)",
            digest,
        )
    return load_file(data)


def first_rows(rows: list[dict[str, Any]], per_subset: int | None) -> list[dict[str, Any]]:
    """The first `per_subset` rows of each subset, in the data's order (all when None)."""
    if per_subset is None:
        return list(rows)
    taken: dict[str, int] = {}
    kept = []
    for row in rows:
        if taken.get(row["subset"], 0) < per_subset:
            taken[row["subset"]] = taken.get(row["subset"], 0) + 1
            kept.append(row)
    return kept
