"""What the results database can hold, checked before the work rather than discovered after it.

PostgreSQL refuses a name longer than its column, a string holding NUL and a JSON document with NaN
or Infinity (SQLite stores all three), so a cell that broke one of these rules used to be trained
and then lost at the write. Planning checks every cell's names and configuration against the
schema's own column lengths; what a suite reports only after the work (metric names, details, error
text) is checked or made storable at the write.
"""

from __future__ import annotations

import math
from typing import Any

from attnbench.errors import ConfigError
from attnbench.store.schema import Cell, Metric

# what each planned cell field is stored in, and the words a user knows it by
_NAMED_FIELDS = (
    ("suite", "suite name"),
    ("mechanism", "mechanism name"),
    ("profile", "profile"),
    ("task", "task label"),
    ("primary_metric", "primary metric name"),
)


def column_length(table: Any, column: str) -> int | None:
    """The schema's length limit of a string column (None for unlimited text)."""
    return getattr(table.__table__.c[column].type, "length", None)


def problem(value: Any, where: str) -> str | None:
    """The first part of `value` that a database cannot store as given: NUL in text, a number that
    is not finite; None when every part is storable."""
    if isinstance(value, str):
        return f"{where} holds a NUL character" if "\x00" in value else None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is {value!r}, not a finite number"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = problem(key, f"{where} key") or problem(
            item, f"{where}.{key}" if where else str(key)
        )
        if found:
            return found
    return None


def check_cell(spec: Any) -> None:
    """Refuse, at planning, a cell whose names or configuration the store could not hold (one
    line)."""
    for field, words in _NAMED_FIELDS:
        value = str(getattr(spec, field))
        limit = column_length(Cell, field)
        if limit is not None and len(value) > limit:
            raise ConfigError(
                f"{words} {value[:40]!r}... is {len(value)} characters; the results database holds "
                f"at most {limit}"
            )
        if "\x00" in value:
            raise ConfigError(
                f"{words} {value!r} holds a NUL character, which the results database cannot store"
            )
    found = problem(dict(spec.hparams), "hyper-parameter") or problem(
        dict(spec.task_config), "task setting"
    )
    if found:
        raise ConfigError(
            f"{spec.mechanism} on {spec.suite}: {found}; the results database cannot store it"
        )


def unstorable_outcome(outcome: Any) -> str | None:
    """Why a suite's reported metrics cannot be stored as they are, or None (checked before the
    write)."""
    limit = column_length(Metric, "name")
    for name, value in outcome.metrics.items():
        if not isinstance(name, str) or not name or (limit is not None and len(name) > limit):
            return (
                f"suite reported a metric name {str(name)[:40]!r} that is not 1-{limit} characters"
                " of text"
            )
        try:
            float(value)
        except (TypeError, ValueError):
            return f"suite reported metric {name!r} = {value!r}, not a number"
    return None


def storable(value: Any) -> Any:
    """`value` as every backend stores it: NUL in text shown as \\x00, and non-finite numbers in
    JSON as null. For what a cell reports after its work (details, error text), so that it is never
    lost to the database.
    """
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value
