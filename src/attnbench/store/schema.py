"""SQLAlchemy models of the results database: runs (provenance), cells (one unit of work), metrics,
and the claims of cells in flight.

The schema carries a version in `attnbench_meta`; a database written by an older attnbench is
migrated (`attnbench.store.migrations`), one written by a newer one is refused rather than misread.

A result is one measurement of a cell: (config hash, budget kind, budget value, seed) and its
`measurement`, 1 for the first finished result and n for the n-th deliberate new measurement. The
database allows one finished result per measurement (a unique index over done cells), and a run
claims a measurement (`claims`, unique over the same columns) in one transaction before it starts
the work, so concurrent runs of one plan never do a cell twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SCHEMA_VERSION = 2
RESULT_KEY = ("config_hash", "budget_kind", "budget_value", "seed", "measurement")
DONE = text("status = 'done'")


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "attnbench_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    command: Mapped[str] = mapped_column(Text)
    profile: Mapped[str] = mapped_column(String(32))
    plan: Mapped[dict] = mapped_column(JSON)
    git_sha: Mapped[str | None] = mapped_column(String(40), nullable=True)
    git_dirty: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    host: Mapped[str] = mapped_column(String(255))
    device: Mapped[str] = mapped_column(String(255))
    python_version: Mapped[str] = mapped_column(String(32))
    torch_version: Mapped[str] = mapped_column(String(64))
    attnbench_version: Mapped[str] = mapped_column(String(32))
    versions: Mapped[dict] = mapped_column(JSON)
    cells: Mapped[list[Cell]] = relationship(back_populates="run")


class Cell(Base):
    __tablename__ = "cells"
    __table_args__ = (
        Index(
            "uq_cells_done_result",
            *RESULT_KEY,
            unique=True,
            sqlite_where=DONE,
            postgresql_where=DONE,
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    suite: Mapped[str] = mapped_column(String(64), index=True)
    mechanism: Mapped[str] = mapped_column(String(64), index=True)
    profile: Mapped[str] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(String(128))
    config_hash: Mapped[str] = mapped_column(String(16), index=True)
    config: Mapped[dict] = mapped_column(JSON)
    budget_kind: Mapped[str] = mapped_column(String(16))
    budget_value: Mapped[float] = mapped_column(Float)
    budget_used: Mapped[float | None] = mapped_column(Float, nullable=True)
    flops_used: Mapped[float | None] = mapped_column(Float, nullable=True)
    steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seed: Mapped[int] = mapped_column(Integer)
    measurement: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    primary_metric: Mapped[str] = mapped_column(String(128))
    higher_is_better: Mapped[bool] = mapped_column(Boolean)
    conformance: Mapped[str] = mapped_column(Text)
    flops_attention: Mapped[float | None] = mapped_column(Float, nullable=True)
    flops_selection: Mapped[float | None] = mapped_column(Float, nullable=True)
    flops_projections: Mapped[float | None] = mapped_column(Float, nullable=True)
    kv_cache_bytes: Mapped[float | None] = mapped_column(Float, nullable=True)
    kv_read_bytes_per_token: Mapped[float | None] = mapped_column(Float, nullable=True)
    state_bytes: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    wall_seconds: Mapped[float] = mapped_column(Float)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    memory_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    params: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    details: Mapped[dict] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime] = mapped_column(DateTime)
    run: Mapped[Run] = relationship(back_populates="cells")
    metrics: Mapped[list[Metric]] = relationship(back_populates="cell")


class Metric(Base):
    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("cell_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cell_id: Mapped[int] = mapped_column(ForeignKey("cells.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    cell: Mapped[Cell] = relationship(back_populates="metrics")


class Claim(Base):
    """A measurement a run has taken and not yet written: its cell is in flight in that run."""

    __tablename__ = "claims"
    __table_args__ = (UniqueConstraint(*RESULT_KEY, name="uq_claims_result"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    config_hash: Mapped[str] = mapped_column(String(16))
    budget_kind: Mapped[str] = mapped_column(String(16))
    budget_value: Mapped[float] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(Integer)
    measurement: Mapped[int] = mapped_column(Integer)
    claimed_at: Mapped[datetime] = mapped_column(DateTime)
