"""The results store: one SQLAlchemy engine over SQLite (WAL, the default) or any other URL.

Each finished cell is written in one transaction with its metrics, so a crash loses at most the
cell in flight and never leaves half a cell behind. Nothing is ever updated but a run's end.
"""
from __future__ import annotations

import math
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from attnbench.cell import COST_COLUMNS, CellRecord
from attnbench.errors import StoreError
from attnbench.schema import SCHEMA_VERSION, Base, Cell, Meta, Metric, Run

DEFAULT_DB = Path("results") / "attnbench.db"
ENV_VAR = "ATTNBENCH_DB"


def resolve_url(db: str | os.PathLike | None) -> str:
    """`--db`, else $ATTNBENCH_DB, else results/attnbench.db; a plain path means a SQLite file."""
    chosen = str(db) if db else os.environ.get(ENV_VAR) or str(DEFAULT_DB)
    if "://" in chosen:
        return chosen
    return f"sqlite:///{Path(chosen).expanduser()}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    """Open with `Store.open(db)`; `create=False` refuses to make a new database (read-only commands)."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url

    @classmethod
    def open(cls, db: str | os.PathLike | None = None, create: bool = True) -> Store:
        url = resolve_url(db)
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"database URL {url!r} is not a valid SQLAlchemy URL: {exc}")
        is_sqlite = parsed.get_backend_name() == "sqlite"
        if is_sqlite and parsed.database not in (None, "", ":memory:"):
            path = Path(parsed.database)
            if not path.exists():
                if not create:
                    raise StoreError(f"no database at {path}; run `attnbench run` first or pass --db")
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create the database folder {path.parent}: {exc.strerror}")
        try:
            engine = create_engine(url, connect_args={"timeout": 30} if is_sqlite else {})
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot open database {url!r}: {one_line(exc)}")
        if is_sqlite:
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine, url)
        store._prepare(create)
        return store

    def _prepare(self, create: bool) -> None:
        try:
            with self.engine.begin() as conn:
                tables = set(inspect(conn).get_table_names())
                if Meta.__tablename__ in tables:
                    row = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar()
                    version = int(row) if row is not None else 0
                    if version > SCHEMA_VERSION:
                        raise StoreError(f"database {self.url} has schema version {version}, newer than this "
                                         f"attnbench understands ({SCHEMA_VERSION}); upgrade attnbench")
                elif tables & {"runs", "cells", "metrics"}:
                    raise StoreError(f"database {self.url} has tables named like attnbench's but no "
                                     f"attnbench_meta; refusing to write into it")
                elif not create:
                    raise StoreError(f"database {self.url} holds no attnbench results")
                if create:
                    Base.metadata.create_all(conn)
                    if Meta.__tablename__ not in tables:
                        conn.execute(Meta.__table__.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open database {self.url}: {one_line(exc)}")

    def start_run(self, provenance: dict[str, Any], profile: str, plan: dict[str, Any]) -> int:
        run = Run(uid=str(uuid.uuid4()), started_at=utcnow(), status="running", profile=profile, plan=plan,
                  **provenance)
        with Session(self.engine) as session, session.begin():
            session.add(run)
            session.flush()
            return run.id

    def finish_run(self, run_id: int, status: str) -> None:
        with Session(self.engine) as session, session.begin():
            run = session.get(Run, run_id)
            run.status = status
            run.finished_at = utcnow()

    def write_cell(self, run_id: int, record: CellRecord) -> int:
        """Write one finished cell and its metrics in a single transaction."""
        spec, outcome = record.spec, record.outcome
        cell = Cell(
            run_id=run_id, suite=spec.suite, mechanism=spec.mechanism, profile=spec.profile, task=spec.task,
            config_hash=spec.config_hash, config=spec.config(), budget_kind=spec.budget.kind,
            budget_value=spec.budget.value, seed=spec.seed,
            primary_metric=spec.primary_metric, higher_is_better=spec.higher_is_better,
            conformance=spec.conformance,
            status=record.status, error=record.error,
            wall_seconds=record.wall_seconds, peak_memory_bytes=record.peak_memory_bytes,
            memory_kind=record.memory_kind, started_at=record.started_at or utcnow(),
            finished_at=record.finished_at or utcnow(),
            budget_used=outcome.budget_used if outcome else None,
            flops_used=outcome.flops if outcome else None,
            steps=outcome.steps if outcome else None,
            params=outcome.params if outcome else None,
            details=outcome.details if outcome else {},
            **{name: (outcome.costs.get(name) if outcome else None) for name in COST_COLUMNS},
        )
        if outcome:
            cell.metrics = [Metric(name=name, value=_finite_or_none(value)) for name, value in outcome.metrics.items()]
        with Session(self.engine) as session, session.begin():
            session.add(cell)
            session.flush()
            return cell.id

    def done_keys(self) -> set[tuple[str, str, float, int]]:
        """Resume keys (config hash, budget kind, budget value, seed) of every cell already done."""
        query = select(Cell.config_hash, Cell.budget_kind, Cell.budget_value, Cell.seed).where(Cell.status == "done")
        with self.engine.connect() as conn:
            return {(h, k, float(v), int(s)) for h, k, v, s in conn.execute(query)}

    def dispose(self) -> None:
        self.engine.dispose()


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
