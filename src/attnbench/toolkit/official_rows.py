"""Reading a benchmark's rows in their official format, offline: what every text suite's loader
shares.

Each suite states its schema (field -> (check, what it must be)) and its own error type; this module
checks rows against it with one clear line naming the file and row, reads .jsonl files, fingerprints
them, and opens the Hugging Face datasets cache with the Hub switched off, so nothing is ever
downloaded.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from attnbench.errors import AttnbenchError

Schema = Mapping[str, tuple[Callable[[Any], bool], str]]


class DataUnavailable(AttnbenchError):
    """No source holds the data (a reason to skip a cell, not an error in what the user gave)."""


@dataclass(frozen=True)
class Loaded:
    rows: list[dict[str, Any]]
    source: str  # the file, or the cache entry, the rows came from
    fingerprint: str  # sha256 of the file (16 hex digits), or the datasets cache fingerprint


def check_fields(
    row: Any, where: str, schema: Schema, benchmark: str, error: type[Exception]
) -> dict[str, Any]:
    """The row if it has exactly the schema's fields with the schema's types; else one `error`
    line."""
    if not isinstance(row, dict):
        raise error(f"{where}: a row must be a JSON object, got {type(row).__name__}")
    missing = [name for name in schema if name not in row]
    if missing:
        raise error(f"{where}: missing field {', '.join(repr(m) for m in missing)}")
    extra = sorted(set(row) - set(schema))
    if extra:
        raise error(
            f"{where}: unexpected field {', '.join(repr(e) for e in extra)} "
            f"({benchmark} rows have {', '.join(schema)})"
        )
    for name, (ok, expected) in schema.items():
        if not ok(row[name]):
            raise error(f"{where}: field {name!r} must be {expected}, got {row[name]!r:.60}")
    return row


def read_jsonl(
    path: Path, check: Callable[[Any, str], dict[str, Any]], error: type[Exception]
) -> list[dict[str, Any]]:
    """Every row of a .jsonl file, each passed through `check(row, where)`; blank lines are
    allowed."""
    rows = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise error(f"{path}:{number}: not valid JSON ({exc.msg})") from None
                rows.append(check(row, f"{path}:{number}"))
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return rows


def file_digest(path: Path) -> str:
    """sha256 of the file, 16 hex digits: which copy of the data a result came from."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


@contextmanager
def offline_datasets(missing: str) -> Iterator[Any]:
    """The `datasets` module with the Hub switched off and its per-config chatter silenced, restored
    after; `DataUnavailable(missing)` when it is not installed."""
    try:
        import datasets
    except ImportError:
        raise DataUnavailable(missing) from None
    offline, verbosity = datasets.config.HF_HUB_OFFLINE, datasets.logging.get_verbosity()
    datasets.config.HF_HUB_OFFLINE = True
    datasets.logging.set_verbosity_error()  # not "Using the latest cached version ..." per config
    try:
        yield datasets
    finally:
        datasets.config.HF_HUB_OFFLINE = offline
        datasets.logging.set_verbosity(verbosity)
