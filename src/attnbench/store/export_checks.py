"""Checking an export file whole before anything is imported from it or compared with it.

An export is one flat table, a row per (cell, metric), written by `attnbench export`; what `import`
writes from it must be what `run` would have written, or every later command on that database breaks
(a seed of "abc" crashed every `run --resume`). Each column is checked against the schema column it
fills: its type, its length, whether it may be empty, its range; then the rows against each other: a
cell's columns agree on every row of the cell, a run's on every row of the run, and no metric
appears twice for one cell. The first problem is one line naming the file, the row (as a spreadsheet
numbers it: the header is row 1) and the column.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Integer, String, Text

from attnbench.cell import STATUSES
from attnbench.errors import ConfigError
from attnbench.store.schema import SCHEMA_VERSION, Cell, Metric, Run

RUN_FIELDS = (
    "uid",
    "started_at",
    "finished_at",
    "status",
    "command",
    "profile",
    "plan",
    "git_sha",
    "git_dirty",
    "host",
    "device",
    "python_version",
    "torch_version",
    "attnbench_version",
    "versions",
)
CELL_FIELDS = tuple(c.name for c in Cell.__table__.columns if c.name not in ("id", "run_id"))
ADDED_IN = {
    "measurement": 2
}  # columns an export of an older schema lacks, and the version that added them
RUN_STATUSES = ("running", "done", "failed", "interrupted", "crashed")


def _columns() -> dict[str, Any]:
    """Every export column and the schema column that gives its type, length and nullability."""
    found = {"cell_uid": Run.__table__.c.uid, "run_uid": Run.__table__.c.uid}
    found.update({f"run_{name}": Run.__table__.c[name] for name in RUN_FIELDS if name != "uid"})
    found.update({name: Cell.__table__.c[name] for name in CELL_FIELDS})
    found["metric"] = Metric.__table__.c.name
    found["value"] = Metric.__table__.c.value
    return found


COLUMNS = _columns()
NULLABLE = {"metric", "value"}  # a cell without metrics has one row with neither


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT


def _problem(value: Any, column: Any, name: str) -> str | None:
    """Why `value` cannot fill `column`, or None."""
    kind = column.type
    if _missing(value):
        return None if column.nullable or name in NULLABLE else "is empty"
    if isinstance(kind, (String, Text)) and not isinstance(kind, JSON):
        if not isinstance(value, str):
            return f"is {value!r}, not text"
        if "\x00" in value:
            return "holds a NUL character"
        length = getattr(kind, "length", None)
        if name != "cell_uid" and length is not None and len(value) > length:
            return f"is {len(value)} characters, more than {length}"
        return None
    if isinstance(kind, Boolean):
        return (
            None
            if isinstance(value, bool) or value in (0, 1)
            else f"is {value!r}, not true or false"
        )
    if isinstance(kind, (Integer, BigInteger)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not float(value).is_integer()
        ):
            return f"is {value!r}, not a whole number"
        return None
    if isinstance(kind, Float):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            return f"is {value!r}, not a finite number"
        return None
    if isinstance(kind, DateTime):
        try:
            pd.Timestamp(value)
        except (ValueError, TypeError, OverflowError):
            return f"is {value!r}, not a date and time"
        return None if not pd.isna(pd.Timestamp(value)) else "is empty"
    if isinstance(kind, JSON):
        try:
            decoded = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            return "is not valid JSON"
        return None if isinstance(decoded, dict) else "is not a JSON object"
    return None


def _first_rows(values: pd.Series) -> list[tuple[int, Any]]:
    """(row, value) for the first row of each distinct value: an export repeats a cell's columns on
    each of its metric rows and a run's on each of its cells, so this checks each value once."""
    try:
        firsts = values[~values.duplicated()]
    except TypeError:  # unhashable values (lists, dicts): every row
        firsts = values
    return list(zip(firsts.index.tolist(), firsts.tolist()))


def _ranges(frame: pd.DataFrame) -> tuple[str, str, Any] | None:
    """(column, expectation, failing mask) of the first range rule a column breaks."""
    rules = [
        ("seed", "a whole number >= 0", lambda s: s < 0),
        ("measurement", "a whole number >= 1", lambda s: s < 1),
        ("budget_value", "a number above 0", lambda s: s <= 0),
        ("status", f"one of {', '.join(STATUSES)}", lambda s: ~s.isin(STATUSES)),
        ("run_status", f"one of {', '.join(RUN_STATUSES)}", lambda s: ~s.isin(RUN_STATUSES)),
        (
            "budget_kind",
            "one of flops, steps, seconds, tokens",
            lambda s: ~s.isin(("flops", "steps", "seconds", "tokens")),
        ),
    ]
    for column, expected, broken in rules:
        if column in frame:
            mask = broken(frame[column])
            if mask.any():
                return column, expected, mask
    return None


def check_export(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The frame, every column and row checked (`ConfigError` on the first problem); older exports
    get the columns their schema lacked."""

    def refuse(row: int | None, column: str, detail: str) -> ConfigError:
        where = f"row {row + 2}, " if row is not None else ""
        return ConfigError(f"{path}: {where}column {column!r} {detail}")

    version = _version(frame, path)
    for column, added in ADDED_IN.items():
        if column not in frame and version < added:
            frame = frame.assign(**{column: 1})
    missing = [name for name in ["schema_version", *COLUMNS] if name not in frame.columns]
    if missing:
        raise ConfigError(f"{path}: not an attnbench export (missing columns {', '.join(missing)})")
    for name, column in COLUMNS.items():
        for row, value in _first_rows(frame[name]):
            problem = _problem(value, column, name)
            if problem:
                raise refuse(row, name, problem)
    broken = _ranges(frame)
    if broken:
        column, expected, mask = broken
        row = int(mask.to_numpy().nonzero()[0][0])
        raise refuse(row, column, f"is {frame[column].iloc[row]!r}, not {expected}")
    _check_consistency(frame, refuse)
    return frame


def _version(frame: pd.DataFrame, path: Path) -> int:
    if "schema_version" not in frame or not len(frame):
        return SCHEMA_VERSION
    values = set(frame["schema_version"].tolist())
    if len(values) != 1 or not all(
        isinstance(v, (int, float)) and float(v).is_integer() for v in values
    ):
        raise ConfigError(
            f"{path}: column 'schema_version' must hold one whole number, "
            f"not {sorted(map(str, values))}"
        )
    version = int(values.pop())
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: written by a newer attnbench (schema {version}; this one reads up to "
            f"{SCHEMA_VERSION})"
        )
    return version


def _check_consistency(frame: pd.DataFrame, refuse) -> None:
    """One run per cell, the same cell and run columns on each of their rows, no metric twice for
    a cell."""
    twice = frame.dropna(subset=["metric"]).duplicated(["cell_uid", "metric"])
    if twice.any():
        row = int(frame.dropna(subset=["metric"]).index[twice.to_numpy()][0])
        raise refuse(
            row,
            "metric",
            f"{frame.loc[row, 'metric']!r} appears twice for cell {frame.loc[row, 'cell_uid']!r}",
        )
    for key, columns in (
        ("cell_uid", ["run_uid", *CELL_FIELDS]),
        ("run_uid", [f"run_{f}" for f in RUN_FIELDS if f != "uid"]),
    ):
        for column in columns:
            values = frame[[key, column]].astype(str)
            spread = values.groupby(key)[column].nunique()
            if (spread > 1).any():
                which = spread[spread > 1].index[0]
                row = int(frame.index[frame[key] == which][1])
                raise refuse(
                    row, column, f"differs between rows of the same {key.split('_')[0]} {which!r}"
                )
