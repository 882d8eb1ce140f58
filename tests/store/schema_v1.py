"""The results database as schema version 1 wrote it (the commit before measurements and claims),
frozen here so that the migration to every later version is tested on the tables the older attnbench
really created.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

METADATA = MetaData()

META = Table(
    "attnbench_meta",
    METADATA,
    Column("key", String(64), primary_key=True),
    Column("value", String(256)),
)

RUNS = Table(
    "runs",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("uid", String(36), unique=True),
    Column("started_at", DateTime),
    Column("finished_at", DateTime, nullable=True),
    Column("status", String(16)),
    Column("command", Text),
    Column("profile", String(32)),
    Column("plan", JSON),
    Column("git_sha", String(40), nullable=True),
    Column("git_dirty", Boolean, nullable=True),
    Column("host", String(255)),
    Column("device", String(255)),
    Column("python_version", String(32)),
    Column("torch_version", String(64)),
    Column("attnbench_version", String(32)),
    Column("versions", JSON),
)

CELLS = Table(
    "cells",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), index=True),
    Column("suite", String(64), index=True),
    Column("mechanism", String(64), index=True),
    Column("profile", String(32)),
    Column("task", String(128)),
    Column("config_hash", String(16), index=True),
    Column("config", JSON),
    Column("budget_kind", String(16)),
    Column("budget_value", Float),
    Column("budget_used", Float, nullable=True),
    Column("flops_used", Float, nullable=True),
    Column("steps", Integer, nullable=True),
    Column("seed", Integer),
    Column("primary_metric", String(128)),
    Column("higher_is_better", Boolean),
    Column("conformance", Text),
    *(
        Column(name, Float, nullable=True)
        for name in (
            "flops_attention",
            "flops_selection",
            "flops_projections",
            "kv_cache_bytes",
            "kv_read_bytes_per_token",
            "state_bytes",
        )
    ),
    Column("status", String(16), index=True),
    Column("error", Text, nullable=True),
    Column("wall_seconds", Float),
    Column("peak_memory_bytes", BigInteger, nullable=True),
    Column("memory_kind", String(32), nullable=True),
    Column("params", BigInteger, nullable=True),
    Column("details", JSON),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
)

METRICS = Table(
    "metrics",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("cell_id", ForeignKey("cells.id"), index=True),
    Column("name", String(128)),
    Column("value", Float, nullable=True),
    UniqueConstraint("cell_id", "name"),
)
