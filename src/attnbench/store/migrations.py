"""Upgrades of a results database written by an older attnbench, one schema version at a time.

Stored results outlive the code: opening a database whose `attnbench_meta` says an older schema
version runs each step from there to `SCHEMA_VERSION` inside the transaction that opens it, so a
database is upgraded whole or not at all (PostgreSQL runs DDL in transactions; on SQLite the step's
writes and the version are one transaction too). Each step is tested on a database built with the
previous version's tables (tests/store/schema_v*.py), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection

from attnbench.store.schema import SCHEMA_VERSION, Cell, Claim, Meta


def _v2_measurements_and_claims(conn: Connection) -> None:
    """Version 2: a cell's `measurement` (the n-th finished result of its config, budget and seed),
    one finished result per measurement, and the `claims` of cells in flight. A cell measured again
    before version 2 becomes the next measurement of its key, in the order the results were
    written."""
    conn.execute(text("ALTER TABLE cells ADD COLUMN measurement INTEGER NOT NULL DEFAULT 1"))
    conn.execute(
        text(
            "UPDATE cells SET measurement = 1 + (SELECT COUNT(*) FROM cells AS earlier WHERE"
            " earlier.config_hash = cells.config_hash AND earlier.budget_kind = cells.budget_kind"
            " AND earlier.budget_value = cells.budget_value AND earlier.seed = cells.seed AND"
            " earlier.status = 'done' AND earlier.id < cells.id) WHERE EXISTS (SELECT 1 FROM cells"
            " AS earlier WHERE earlier.config_hash = cells.config_hash AND earlier.budget_kind ="
            " cells.budget_kind AND earlier.budget_value = cells.budget_value AND earlier.seed ="
            " cells.seed AND earlier.status = 'done' AND earlier.id < cells.id)"
        )
    )
    for index in Cell.__table__.indexes:
        if index.unique:
            index.create(conn)
    Claim.__table__.create(conn)


# target version -> the step that upgrades a database from the version before it
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _v2_measurements_and_claims}


def upgrade(conn: Connection, version: int) -> None:
    """Bring a database at schema `version` to `SCHEMA_VERSION`, in the caller's transaction."""
    for target in range(version + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[target](conn)
    conn.execute(
        Meta.__table__.update()
        .where(Meta.key == "schema_version")
        .values(value=str(SCHEMA_VERSION))
    )
