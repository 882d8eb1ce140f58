"""Results as pandas DataFrames, for notebooks and for every view attnbench renders."""

from __future__ import annotations

import os

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from attnbench.cell import COST_COLUMNS
from attnbench.errors import StoreError
from attnbench.store.database import Store, one_line
from attnbench.store.schema import Cell, Metric, Run

CELL_COLUMNS = [
    "cell_id",
    "run_id",
    "suite",
    "mechanism",
    "profile",
    "task",
    "config_hash",
    "config",
    "budget_kind",
    "budget_value",
    "budget_used",
    "flops_used",
    "steps",
    "seed",
    "primary_metric",
    "higher_is_better",
    "status",
    "error",
    "wall_seconds",
    "peak_memory_bytes",
    "memory_kind",
    "params",
    "conformance",
    *COST_COLUMNS,
    "started_at",
    "finished_at",
]


# What the leaderboards read: no config JSON, error text or timestamps to decode for every cell.
RANKING_COLUMNS = [
    c
    for c in CELL_COLUMNS
    if c not in ("config", "error", "conformance", "started_at", "finished_at")
]


def _store(db: str | os.PathLike | Store | None) -> Store:
    return db if isinstance(db, Store) else Store.open(db, create=False)


def _read(store: Store, *queries):
    """Run read queries, turning a database that cannot answer them into one clear error."""
    try:
        with store.engine.connect() as conn:
            return [conn.execute(query).all() for query in queries]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read results from {store.url}: {one_line(exc)}") from None


def _read_plain(store: Store, *queries):
    """Like `_read`, through the driver's cursor: for columns that need no decoding (no JSON, no
    dates) this skips SQLAlchemy's per-row processing, a third of the time at 100,000 cells."""
    try:
        with store.engine.connect() as conn:
            return [
                conn.exec_driver_sql(
                    str(query.compile(dialect=store.engine.dialect))
                ).cursor.fetchall()
                for query in queries
            ]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read results from {store.url}: {one_line(exc)}") from None


_DECODED = {
    "config",
    "started_at",
    "finished_at",
}  # JSON and dates: only SQLAlchemy turns them into objects


def load(
    db: str | os.PathLike | Store | None = None,
    columns: list[str] | None = None,
    latest_only: bool = False,
    decode: bool = True,
) -> pd.DataFrame:
    """One row per cell, one column per metric (NaN where a cell has no such metric); `columns`
    limits the cell columns read (e.g. `RANKING_COLUMNS`, all a leaderboard needs); `latest_only`
    reads only the latest result of each cell (same config, budget and seed), as leaderboards count
    them, and leaves the earlier measurements a long history holds in the database; `decode=False`
    leaves the config as its JSON text and times as stored (a third of the time at 100,000 cells,
    for views that decode only a few).
    """
    store = _store(db)
    columns = list(columns or CELL_COLUMNS)
    cell_query = select(
        *(Cell.id.label(c) if c == "cell_id" else getattr(Cell, c) for c in columns)
    )
    metric_query = select(Metric.cell_id, Metric.name, Metric.value)
    if latest_only:
        latest = select(func.max(Cell.id)).group_by(
            Cell.config_hash, Cell.budget_kind, Cell.budget_value, Cell.seed
        )
        cell_query = cell_query.where(Cell.id.in_(latest))
        metric_query = metric_query.where(Metric.cell_id.in_(latest))
    cell_query = cell_query.order_by(Cell.id)
    read = _read if decode and _DECODED & set(columns) else _read_plain
    cell_rows, metric_rows = read(store, cell_query, metric_query)
    # Plain tuples: pandas inspects SQLAlchemy rows attribute by attribute, 10x slower at 100,000
    # cells.
    cells = pd.DataFrame([tuple(row) for row in cell_rows], columns=columns)
    metrics = pd.DataFrame(
        [tuple(row) for row in metric_rows], columns=["cell_id", "name", "value"]
    )
    if metrics.empty:
        return cells
    wide = metrics.pivot(index="cell_id", columns="name", values="value")
    wide.columns.name = None
    return cells.merge(wide, left_on="cell_id", right_index=True, how="left")


def load_metrics(db: str | os.PathLike | Store | None = None) -> pd.DataFrame:
    """Long form: one row per (cell, metric), with the cell's identifying columns."""
    store = _store(db)
    query = select(
        Cell.id.label("cell_id"),
        Cell.suite,
        Cell.mechanism,
        Cell.profile,
        Cell.task,
        Cell.config_hash,
        Cell.budget_kind,
        Cell.budget_value,
        Cell.seed,
        Cell.status,
        Metric.name,
        Metric.value,
    )
    query = query.join(Metric, Metric.cell_id == Cell.id).order_by(Cell.id, Metric.name)
    (rows,) = _read(store, query)
    return pd.DataFrame(
        rows,
        columns=[
            "cell_id",
            "suite",
            "mechanism",
            "profile",
            "task",
            "config_hash",
            "budget_kind",
            "budget_value",
            "seed",
            "status",
            "metric",
            "value",
        ],
    )


def load_runs(db: str | os.PathLike | Store | None = None) -> pd.DataFrame:
    """One row per run with its provenance."""
    store = _store(db)
    columns = [
        "id",
        "uid",
        "started_at",
        "finished_at",
        "status",
        "command",
        "profile",
        "git_sha",
        "git_dirty",
        "host",
        "device",
        "python_version",
        "torch_version",
        "attnbench_version",
    ]
    (rows,) = _read(store, select(*(getattr(Run, c) for c in columns)).order_by(Run.id))
    return pd.DataFrame(rows, columns=["run_id" if c == "id" else c for c in columns])
