"""The results store: one SQLAlchemy engine over SQLite (WAL, the default) or any other URL.

Each finished cell is written in one transaction with its metrics, so a crash loses at most the
cell in flight and never leaves half a cell behind. Nothing is ever updated but a run's end.

Several processes may write to one database at once (several `attnbench run`s sharing a SQLite
file or a PostgreSQL server): on SQLite a writer takes the write lock when its transaction begins
and waits for it, and a transaction that fails because the database is busy (a locked SQLite file,
a PostgreSQL serialization failure or deadlock) is rolled back and retried whole with a bounded,
jittered backoff. Only errors raised before the commit took effect are retried, so every write
commits exactly once or fails.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, TypeVar

from sqlalchemy import and_, create_engine, delete, event, func, inspect, select, text, update
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from attnbench.cell import COST_COLUMNS, CellRecord
from attnbench.errors import StoreError
from attnbench.store.migrations import upgrade
from attnbench.store.schema import SCHEMA_VERSION, Base, Cell, Claim, Meta, Metric, Run
from attnbench.store.sqlite_files import check_sqlite_file, read_only_url, sqlite_file, writable
from attnbench.store.storable import storable

DEFAULT_DB = Path("results") / "attnbench.db"
ENV_VAR = "ATTNBENCH_DB"

SQLITE_BUSY_TIMEOUT_S = 30  # how long SQLite itself waits for another writer's lock
CONNECT_TIMEOUT_S = 10  # an unreachable PostgreSQL host fails in seconds, not after TCP's minutes
RETRY_ATTEMPTS = 10
RETRY_BASE_S = 0.05  # the first backoff; it doubles up to RETRY_CAP_S
RETRY_CAP_S = 2.0
# serialization_failure, deadlock_detected, lock_not_available, too_many_connections,
# cannot_connect_now: each raised before the transaction committed, and likely to pass on a second
# try
PG_TRANSIENT = {"40001", "40P01", "55P03", "53300", "57P03"}
_SCHEMA_LOCK = (
    0x617474_6E62_656E  # PostgreSQL advisory lock that serialises concurrent schema set-up
)
_WRITE = (  # execution option marking a write transaction (BEGIN IMMEDIATE on SQLite)
    "attnbench_write"
)

T = TypeVar("T")


def resolve_url(db: str | os.PathLike | None) -> str:
    """`--db`, else $ATTNBENCH_DB, else results/attnbench.db; a plain path means a SQLite file."""
    chosen = str(db) if db else os.environ.get(ENV_VAR) or str(DEFAULT_DB)
    if "://" in chosen:
        return chosen
    return f"sqlite:///{Path(chosen).expanduser()}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (`_sqlite_begin`): the driver's own transaction control would
    # run reads and DDL outside the transaction, so schema set-up and read-then-write were not
    # atomic.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_read_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # A reader leaves the journal mode alone: switching it writes the file, which a read-only one
    # refuses.
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA foreign_keys=ON")


def _sqlite_begin(conn: Connection) -> None:
    # A writer takes the write lock up front, where SQLite's busy timeout waits for it; a deferred
    # transaction that read first would fail at once when upgrading to a stale snapshot.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def is_transient(exc: DBAPIError) -> bool:
    """Whether `exc` means the database was busy and the rolled-back transaction may simply run
    again."""
    if exc.connection_invalidated:
        return False  # the connection dropped: the commit may or may not have happened
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code:
        return code in PG_TRANSIENT
    message = str(exc.orig).lower()
    return any(
        phrase in message
        for phrase in ("database is locked", "database is busy", "database table is locked")
    )


def _backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...): doubling, capped,
    jittered."""
    return min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


class Store:
    """Open with `Store.open(db)`; `create=False` refuses to make a new database (read-only
    commands).

    `damage` is SQLite's integrity report of a damaged file opened for reading (None when it is
    sound): writers refuse such a file, readers warn and read what can still be read.
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._writer = engine.execution_options(**{_WRITE: True})
        self.retries = 0  # transactions run again because the database was busy
        self.damage: str | None = None

    @classmethod
    def open(cls, db: str | os.PathLike | None = None, create: bool = True) -> Store:
        url = resolve_url(db)
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"database URL {url!r} is not a valid SQLAlchemy URL: {exc}") from None
        is_sqlite = parsed.get_backend_name() == "sqlite"
        file = sqlite_file(parsed)
        if file is not None:
            check_sqlite_file(file, create)
            if not create and not writable(file):
                parsed = read_only_url(parsed, file)  # a file the user may only read is still read
        try:
            engine = create_engine(parsed, **_engine_options(parsed))
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            hint = (
                "; pip install 'attnbench[postgres]' provides the postgresql+psycopg:// driver"
                if isinstance(exc, ImportError) and parsed.get_backend_name() == "postgresql"
                else ""
            )
            raise StoreError(f"cannot open database {url!r}: {one_line(exc)}{hint}") from None
        if is_sqlite:
            event.listen(engine, "connect", _sqlite_pragmas if create else _sqlite_read_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        store = cls(engine, url)
        if file is not None and file.exists():
            store.damage = store._integrity()
            if store.damage and create:
                engine.dispose()
                raise StoreError(
                    f"database {file} is damaged ({store.damage}); refusing to write to it: restore"
                    " a copy, or `attnbench export` what still reads into a new database"
                )
        store._prepare(create)
        return store

    def _integrity(self) -> str | None:
        """SQLite's quick_check of the whole file: None when it is sound, else its first complaints.
        A file SQLite cannot read at all (not a database, a damaged header) is refused outright."""
        try:
            with self.engine.connect() as conn:
                rows = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check").fetchall()]
        except DBAPIError as exc:
            if any(word in one_line(exc).lower() for word in ("malformed", "corrupt")):
                return one_line(exc)  # damaged past what quick_check can list
            self.engine.dispose()
            raise StoreError(f"cannot open database {self.url}: {one_line(exc)}") from None
        return None if rows == ["ok"] else " ".join(" ".join(str(row).split()) for row in rows[:3])

    def _prepare(self, create: bool) -> None:
        def prepare(session: Session) -> None:
            conn = session.connection()
            if conn.dialect.name == "postgresql":
                # Runs starting together on an empty or older database would otherwise race to
                # create or upgrade it.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            tables = set(inspect(conn).get_table_names())
            if Meta.__tablename__ in tables:
                version = self._schema_version(conn)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"database {self.url} has schema version {version}, newer than this "
                        f"attnbench understands ({SCHEMA_VERSION}); upgrade attnbench"
                    )
                if version < SCHEMA_VERSION:
                    try:
                        upgrade(conn, version)
                    except SQLAlchemyError as exc:
                        raise StoreError(
                            f"cannot upgrade database {self.url} from schema version {version} to "
                            f"{SCHEMA_VERSION}: {one_line(exc)}"
                        ) from None
            elif tables & {"runs", "cells", "metrics"}:
                raise StoreError(
                    f"database {self.url} has tables named like attnbench's but no "
                    "attnbench_meta; refusing to write into it"
                )
            elif not create:
                raise StoreError(f"database {self.url} holds no attnbench results")
            if create:
                Base.metadata.create_all(conn)
                if Meta.__tablename__ not in tables:
                    conn.execute(
                        Meta.__table__.insert().values(
                            key="schema_version", value=str(SCHEMA_VERSION)
                        )
                    )

        try:
            self.transaction(prepare, write=create, action="open")
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open database {self.url}: {one_line(exc)}") from None

    def _schema_version(self, conn: Connection) -> int:
        row = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar()
        try:
            return int(str(row).strip())
        except ValueError:
            raise StoreError(
                f"database {self.url} has schema version {row!r}, not a whole number: it was not "
                "written by attnbench, or was edited"
            ) from None

    def transaction(
        self,
        work: Callable[[Session], T],
        write: bool = True,
        conflicts: bool = False,
        action: str | None = None,
    ) -> T:
        """Run `work(session)` in one transaction and commit it, retried whole while the database is
        busy.

        `work` may run more than once, so it must build everything it adds inside the call. Only
        errors raised before the commit took effect are retried; giving up, or any other database
        error (a value the database refuses, a read-only file, a full disk, a lost server), raises
        StoreError in one line (`action` names what failed: "open", else read or write). With
        `conflicts`, a unique-constraint violation is raised as IntegrityError for the caller.
        """
        bind = self._writer if write else self.engine
        for attempt in itertools.count(1):
            try:
                with Session(bind) as session, session.begin():
                    return work(session)
            except DBAPIError as exc:
                if conflicts and isinstance(exc, IntegrityError):
                    raise
                if not is_transient(exc):
                    verb = action or ("write to" if write else "read")
                    raise StoreError(f"cannot {verb} database {self.url}: {one_line(exc)}") from exc
                if attempt == RETRY_ATTEMPTS:
                    raise StoreError(
                        f"database {self.url} stayed busy through {RETRY_ATTEMPTS} attempts: "
                        f"{one_line(exc)}"
                    ) from exc
                self.retries += 1
                time.sleep(_backoff(attempt))

    def start_run(self, provenance: dict[str, Any], profile: str, plan: dict[str, Any]) -> int:
        fields = storable(
            dict(
                uid=str(uuid.uuid4()),
                started_at=utcnow(),
                status="running",
                profile=profile,
                plan=plan,
                **provenance,
            )
        )

        def insert(session: Session) -> int:
            run = Run(**fields)
            session.add(run)
            session.flush()
            return run.id

        return self.transaction(insert)

    def finish_run(self, run_id: int, status: str) -> None:
        """End a run and give back the claims of cells it never finished."""

        def finish(session: Session) -> None:
            session.execute(
                update(Run).where(Run.id == run_id).values(status=status, finished_at=utcnow())
            )
            session.execute(delete(Claim).where(Claim.run_id == run_id))

        self.transaction(finish)

    def running_runs(self) -> list[tuple[int, dict[str, Any]]]:
        """(id, plan and execution settings) of every run still marked `running`: in progress, or
        left so by a process that died."""
        query = select(Run.id, Run.plan).where(Run.status == "running").order_by(Run.id)
        rows = self.transaction(lambda session: session.execute(query).all(), write=False)
        return [(run_id, plan if isinstance(plan, dict) else {}) for run_id, plan in rows]

    def stored_plan(self, run_id: int) -> dict[str, Any] | None:
        """The plan and execution settings a run stored, while the run is still marked `running`;
        None once it has ended."""
        query = select(Run.plan).where(Run.id == run_id, Run.status == "running")
        plan = self.transaction(lambda session: session.scalar(query), write=False)
        return plan if isinstance(plan, dict) else None

    def mark_crashed(self, run_id: int) -> bool:
        """End a run whose process died without ending it: `crashed`, at its last written cell (else
        its start), its claims given back.

        False when the run was no longer `running` (another process got there first).
        """

        def mark(session: Session) -> bool:
            last = session.scalar(select(func.max(Cell.finished_at)).where(Cell.run_id == run_id))
            result = session.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "running")
                .values(status="crashed", finished_at=last if last else Run.started_at)
            )
            session.execute(delete(Claim).where(Claim.run_id == run_id))
            return result.rowcount == 1

        return self.transaction(mark)

    def claim(self, run_id: int, key: ResultKey, resume: bool) -> Claimed:
        """Take the next measurement of a cell for this run, in one transaction, before its work
        starts.

        With `resume` a cell that has a finished result, or is claimed by a run still marked
        `running`, is not taken (`Claimed.holder` names that run); without it the cell is measured
        again, as the next measurement. Claims of runs no longer `running` are stale and go.
        Concurrent claimers of one measurement meet at the unique constraint: the loser sees the
        winner's claim when it tries again.
        """

        def take(session: Session) -> Claimed:
            _lock_key(session, key)
            where = _key_filter(Claim, key)
            stale = select(Run.id).where(Run.status != "running")
            session.execute(delete(Claim).where(where, Claim.run_id.in_(stale)))
            done = session.scalar(
                select(func.max(Cell.measurement)).where(
                    _key_filter(Cell, key), Cell.status == "done"
                )
            )
            held = session.execute(select(Claim.measurement, Claim.run_id).where(where)).all()
            if resume and (done is not None or held):
                return Claimed(None, held[0][1] if held and done is None else None)
            number = max([done or 0, *(m for m, _ in held)]) + 1
            session.add(
                Claim(run_id=run_id, **_key_values(key), measurement=number, claimed_at=utcnow())
            )
            session.flush()
            return Claimed(number, None)

        for _ in range(RETRY_ATTEMPTS):
            try:
                return self.transaction(take, conflicts=True)
            except IntegrityError:
                # another run took this measurement between our read and our insert: read again
                continue
        raise StoreError(
            f"database {self.url}: could not claim a cell through {RETRY_ATTEMPTS} conflicts"
        )

    def write_cell(self, run_id: int, record: CellRecord, measurement: int | None = None) -> int:
        """Write one finished cell and its metrics in a single transaction, giving back its claim.

        A done result takes the claimed measurement, or the next free one when it has none (a writer
        that did not claim) or when another result holds it already; a finished cell is never lost
        to a conflict.
        """
        return self.transaction(lambda session: _insert_cell(session, run_id, record, measurement))

    def done_keys(self) -> set[tuple[str, str, float, int]]:
        """Resume keys (config hash, budget kind, budget value, seed) of every cell already done."""
        query = select(Cell.config_hash, Cell.budget_kind, Cell.budget_value, Cell.seed).where(
            Cell.status == "done"
        )
        rows = self.transaction(lambda session: session.execute(query).all(), write=False)
        return {(h, k, float(v), int(s)) for h, k, v, s in rows}

    def dispose(self) -> None:
        self.engine.dispose()


ResultKey = tuple  # (config hash, budget kind, budget value, seed): CellSpec.resume_key


@dataclass(frozen=True)
class Claimed:
    """The measurement a claim took, or None and the run that holds the cell (None when it is
    done)."""

    measurement: int | None
    holder: int | None


def _key_values(key: ResultKey) -> dict[str, Any]:
    config_hash, budget_kind, budget_value, seed = key
    return {
        "config_hash": config_hash,
        "budget_kind": budget_kind,
        "budget_value": float(budget_value),
        "seed": int(seed),
    }


def _key_filter(table: Any, key: ResultKey) -> Any:
    return and_(*(getattr(table, column) == value for column, value in _key_values(key).items()))


def _lock_key(session: Session, key: ResultKey) -> None:
    """Serialise the claims and writes of one cell on PostgreSQL, whose statements each see what was
    committed when they began: without it a claimer could read "not done" before another run's write
    of the cell commits and "not claimed" after it. (On SQLite every writer holds the write lock for
    its whole transaction.)
    """
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(repr(tuple(_key_values(key).values())).encode()).digest()
        session.execute(
            text("SELECT pg_advisory_xact_lock(:k)"),
            {"k": int.from_bytes(digest[:8], "big", signed=True)},
        )


def _insert_cell(session: Session, run_id: int, record: CellRecord, measurement: int | None) -> int:
    spec, outcome = record.spec, record.outcome
    key = spec.resume_key
    _lock_key(session, key)
    session.execute(delete(Claim).where(_key_filter(Claim, key), Claim.run_id == run_id))
    if record.status == "done":
        taken = set(
            session.scalars(
                select(Cell.measurement).where(_key_filter(Cell, key), Cell.status == "done")
            )
        )
        if measurement is None or measurement in taken:
            claimed = set(session.scalars(select(Claim.measurement).where(_key_filter(Claim, key))))
            measurement = max(taken | claimed | {0}) + 1
    fields = storable(
        dict(
            run_id=run_id,
            suite=spec.suite,
            mechanism=spec.mechanism,
            profile=spec.profile,
            task=spec.task,
            config_hash=spec.config_hash,
            config=spec.config(),
            budget_kind=spec.budget.kind,
            budget_value=spec.budget.value,
            seed=spec.seed,
            measurement=measurement or 1,
            primary_metric=spec.primary_metric,
            higher_is_better=spec.higher_is_better,
            conformance=spec.conformance,
            status=record.status,
            error=record.error,
            wall_seconds=record.wall_seconds,
            peak_memory_bytes=record.peak_memory_bytes,
            memory_kind=record.memory_kind,
            started_at=record.started_at or utcnow(),
            finished_at=record.finished_at or utcnow(),
            budget_used=outcome.budget_used if outcome else None,
            flops_used=outcome.flops if outcome else None,
            steps=outcome.steps if outcome else None,
            params=outcome.params if outcome else None,
            details=outcome.details if outcome else {},
            **{name: outcome.costs.get(name) if outcome else None for name in COST_COLUMNS},
        )
    )
    cell = Cell(**fields)
    if outcome:
        cell.metrics = [
            Metric(name=storable(name), value=_finite_or_none(value))
            for name, value in outcome.metrics.items()
        ]
    session.add(cell)
    session.flush()
    return cell.id


def _engine_options(url: URL) -> dict[str, Any]:
    if url.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    connect_args = {}
    if url.get_driver_name() in ("psycopg", "psycopg2") and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    # a server connection dropped while a long cell trained is replaced before the cell is written
    return {"connect_args": connect_args, "pool_pre_ping": True}


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
