"""Moving results between stores as files: baselines travel as Parquet (or CSV/JSON) in `results/`.

The file is one flat table, a row per (cell, metric) carrying the cell's columns and its run's
provenance (JSON fields as JSON text), so any tool reads it and `import_file` rebuilds runs,
cells and metrics exactly. Importing the same file twice adds nothing the second time: runs
are matched by their uid.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attnbench.errors import ConfigError
from attnbench.store.database import Store
from attnbench.store.export_checks import CELL_FIELDS, RUN_FIELDS, check_export
from attnbench.store.schema import SCHEMA_VERSION, Cell, Claim, Metric, Run

FORMATS = ("parquet", "csv", "json")
JSON_FIELDS = {"run_plan", "run_versions", "config", "details"}
DATETIME_FIELDS = {"run_started_at", "run_finished_at", "started_at", "finished_at"}
# columns read as text whatever they look like (a config hash of digits is not a number)
TEXT_COLUMNS = (
    "cell_uid",
    "run_uid",
    "config_hash",
    "run_git_sha",
    "suite",
    "mechanism",
    "task",
    "profile",
    "run_profile",
    "metric",
    "run_python_version",
    "run_torch_version",
    "run_attnbench_version",
)


def export_frame(store: Store) -> pd.DataFrame:
    rows = []
    with Session(store.engine) as session:
        for cell, run in session.execute(
            select(Cell, Run).join(Run, Cell.run_id == Run.id).order_by(Cell.id)
        ):
            base = {
                "cell_uid": f"{run.uid}:{cell.id}",
                **{f"run_{f}": getattr(run, f) for f in RUN_FIELDS},
            }
            base.update({f: getattr(cell, f) for f in CELL_FIELDS})
            for key in JSON_FIELDS:
                base[key] = json.dumps(base[key], sort_keys=True)
            base["schema_version"] = SCHEMA_VERSION
            metrics = cell.metrics or [None]
            for metric in metrics:
                rows.append(
                    {
                        **base,
                        "metric": metric.name if metric else None,
                        "value": metric.value if metric else None,
                    }
                )
    columns = [
        "cell_uid",
        *(f"run_{f}" for f in RUN_FIELDS),
        *CELL_FIELDS,
        "schema_version",
        "metric",
        "value",
    ]
    return pd.DataFrame(rows, columns=columns)


def format_of(path: Path, fmt: str | None) -> str:
    chosen = fmt or path.suffix.lstrip(".").lower()
    if chosen not in FORMATS:
        raise ConfigError(
            f"{path}: cannot tell the format; expected --format parquet, csv or json "
            "(or a .parquet, .csv or .json file)"
        )
    return chosen


def export_file(store: Store, path: str | os.PathLike, fmt: str | None = None) -> int:
    """Write every cell of the store to `path`; returns the number of cells."""
    path = Path(path)
    frame = export_frame(store)
    chosen = format_of(path, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    if chosen == "parquet":
        frame.to_parquet(path, index=False)
    elif chosen == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", date_format="iso", date_unit="us", indent=1)
    return int(frame["cell_uid"].nunique())


def read_file(path: str | os.PathLike, fmt: str | None = None) -> pd.DataFrame:
    """An export file, every column and row checked (`attnbench.store.export_checks`); a
    ConfigError line otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such file" if not path.exists() else f"{path}: not a regular file"
        )
    chosen = format_of(path, fmt)
    try:
        if chosen == "parquet":
            frame = pd.read_parquet(path)
        elif chosen == "csv":
            frame = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=True)
        else:
            frame = pd.read_json(path, orient="records", dtype=False)
    except Exception as exc:  # any reader error means the file is not what it claims to be
        raise ConfigError(
            f"{path}: not a readable {chosen} export ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    if not isinstance(frame, pd.DataFrame) or frame.columns.duplicated().any():
        raise ConfigError(
            f"{path}: not an attnbench export (not one table with distinct column names)"
        )
    frame = frame.reset_index(drop=True).astype(object).where(frame.notna(), None)
    return check_export(frame, path)


def _value(row: pd.Series, field: str):
    value = row[field]
    if field in JSON_FIELDS or field.removeprefix("run_") in ("plan", "versions"):
        return json.loads(value) if isinstance(value, str) else (value if value is not None else {})
    if value is None or (isinstance(value, float) and value != value):
        return None
    if field in DATETIME_FIELDS or field.endswith("_at"):
        return pd.Timestamp(value).to_pydatetime().replace(tzinfo=None)
    if isinstance(value, float) and field in (
        "seed",
        "steps",
        "params",
        "peak_memory_bytes",
        "measurement",
    ):
        return int(value)  # a CSV column with gaps reads whole numbers as floats
    return value.item() if hasattr(value, "item") else value


def import_file(store: Store, path: str | os.PathLike, fmt: str | None = None) -> tuple[int, int]:
    """Add the runs of an export that the store does not hold yet; returns (runs added, cells
    added)."""
    return import_frame(store, read_file(path, fmt))


def import_frame(store: Store, frame: pd.DataFrame) -> tuple[int, int]:
    """Add the runs of a checked export (`read_file`) in one transaction, retried while the database
    is busy as a run's writes are. A finished cell becomes the next measurement of its key here, so
    one finished result per measurement holds in the target whatever it held before."""

    def add(session: Session) -> tuple[int, int]:
        known = set(session.scalars(select(Run.uid)))
        taken = _taken_measurements(session)
        runs_added = cells_added = 0
        for uid, run_rows in frame.groupby("run_uid", sort=False):
            if uid in known:
                continue
            first = run_rows.iloc[0]
            run = Run(**{f: _value(first, f"run_{f}") for f in RUN_FIELDS})
            session.add(run)
            runs_added += 1
            for _, cell_rows in run_rows.groupby("cell_uid", sort=False):
                head = cell_rows.iloc[0]
                fields = {f: _value(head, f) for f in CELL_FIELDS}
                if fields["status"] == "done":
                    key = tuple(
                        fields[k] for k in ("config_hash", "budget_kind", "budget_value", "seed")
                    )
                    key = (key[0], key[1], float(key[2]), int(key[3]))
                    taken[key] = fields["measurement"] = taken.get(key, 0) + 1
                cell = Cell(run=run, **fields)
                cell.metrics = [
                    Metric(name=str(r["metric"]), value=_value(r, "value"))
                    for _, r in cell_rows.iterrows()
                    if isinstance(r["metric"], str)
                ]
                session.add(cell)
                cells_added += 1
        return runs_added, cells_added

    return store.transaction(add)


def _taken_measurements(session: Session) -> dict[tuple, int]:
    """The highest measurement held, finished or claimed, per (config hash, budget kind, budget
    value, seed)."""
    taken: dict[tuple, int] = {}
    for table, where in ((Cell, Cell.status == "done"), (Claim, True)):
        key = (table.config_hash, table.budget_kind, table.budget_value, table.seed)
        for *values, highest in session.execute(
            select(*key, func.max(table.measurement)).where(where).group_by(*key)
        ):
            k = (values[0], values[1], float(values[2]), int(values[3]))
            taken[k] = max(taken.get(k, 0), int(highest))
    return taken
