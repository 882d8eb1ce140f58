"""Leaderboards from the store: one table per suite and budget, a row per mechanism.

Costs sit beside quality: training FLOPs spent, parameters, and per mechanism layer the KV
cache kept, the bytes of it read per new token and any recurrent state, so a sparse-read
mechanism and an evicting one are compared on the cost that differs.

Each seed's score is the primary metric averaged over the suite's tasks; the row shows the
mean and Student-t 95% interval of those per-seed scores. Only cells that finished count; a
re-run of the same cell replaces the earlier one. Failed cells are counted, never hidden.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Iterable

import pandas as pd

from attnbench.cell import COST_COLUMNS
from attnbench.stats import mean_interval

TABLE_KEYS = ["suite", "profile", "budget_kind", "budget_value"]


@dataclass
class LeaderboardRow:
    suite: str
    profile: str
    budget_kind: str
    budget_value: float
    mechanism: str
    metric: str
    higher_is_better: bool
    mean: float
    ci_low: float
    ci_high: float
    n_seeds: int
    n_tasks: int
    flops: float
    params: float
    wall_seconds: float
    peak_memory_bytes: float
    flops_attention: float
    flops_selection: float
    flops_projections: float
    kv_cache_bytes: float
    kv_read_bytes_per_token: float
    state_bytes: float
    failed: int
    rank: int = 0


def latest_per_cell(cells: pd.DataFrame) -> pd.DataFrame:
    """A cell that was run again (same config, budget and seed) counts once: its latest result."""
    key = ["config_hash", "budget_kind", "budget_value", "seed"]
    return cells.sort_values("cell_id").drop_duplicates(key, keep="last")


def build(cells: pd.DataFrame, suite: str | None = None) -> list[LeaderboardRow]:
    """Rows from `attnbench.results.load(...)`, ranked within each (suite, profile, budget) table."""
    if suite is not None:
        cells = cells[cells["suite"] == suite]
    if cells.empty:
        return []
    latest = latest_per_cell(cells)
    rows: list[LeaderboardRow] = []
    for table_key, table in latest.groupby(TABLE_KEYS, sort=True):
        table_rows = [_row(table_key, mechanism, group) for mechanism, group in table.groupby("mechanism")]
        rows.extend(_ranked([r for r in table_rows if r is not None]))
    return rows


def _row(table_key: tuple, mechanism: str, group: pd.DataFrame) -> LeaderboardRow | None:
    suite, profile, budget_kind, budget_value = table_key
    done = group[group["status"] == "done"]
    metric = str(group["primary_metric"].iloc[-1])
    higher = bool(group["higher_is_better"].iloc[-1])
    if metric in done:
        per_seed = done.groupby("seed")[metric].mean()
    else:
        per_seed = pd.Series(dtype=float)
    interval = mean_interval(per_seed.tolist())
    return LeaderboardRow(
        suite=suite, profile=profile, budget_kind=budget_kind, budget_value=float(budget_value),
        mechanism=mechanism, metric=metric, higher_is_better=higher, mean=interval.mean, ci_low=interval.low,
        ci_high=interval.high, n_seeds=interval.n, n_tasks=int(done["task"].nunique()),
        flops=_mean(done["flops_used"]), params=_mean(done["params"]), wall_seconds=_mean(done["wall_seconds"]),
        peak_memory_bytes=_mean(done["peak_memory_bytes"]),
        **{name: _mean(done[name]) if name in done else math.nan for name in COST_COLUMNS},
        failed=int((group["status"] != "done").sum()),
    )


def _mean(column: pd.Series) -> float:
    values = pd.to_numeric(column, errors="coerce").dropna()
    return float(values.mean()) if len(values) else math.nan


def _ranked(rows: list[LeaderboardRow]) -> list[LeaderboardRow]:
    """Competition ranking (1, 2, 2, 4) by mean; rows with no finished seed rank last, unranked (0)."""
    scored = [r for r in rows if not math.isnan(r.mean)]
    scored.sort(key=lambda r: -r.mean if r.higher_is_better else r.mean)
    for position, row in enumerate(scored):
        row.rank = scored[position - 1].rank if position and row.mean == scored[position - 1].mean else position + 1
    return scored + [r for r in rows if math.isnan(r.mean)]


def _clean(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else value


def to_json(rows: Iterable[LeaderboardRow]) -> str:
    return json.dumps([{k: _clean(v) for k, v in asdict(r).items()} for r in rows], indent=2)


def tables(rows: list[LeaderboardRow]) -> dict[tuple, list[LeaderboardRow]]:
    grouped: dict[tuple, list[LeaderboardRow]] = {}
    for row in rows:
        grouped.setdefault((row.suite, row.profile, row.budget_kind, row.budget_value), []).append(row)
    return grouped


def title(key: tuple) -> str:
    suite, profile, budget_kind, budget_value = key
    return f"{suite} · profile {profile} · budget {budget_value:.3g} {budget_kind}"


def columns(rows: list[LeaderboardRow]) -> list[str]:
    """Column headers for one table; the primary metric names its own column."""
    metric = rows[0].metric + (" ↑" if rows[0].higher_is_better else " ↓")
    return ["rank", "mechanism", metric, "95% CI", "seeds", "FLOPs", "params", "KV kept", "KV/token", "state",
            "wall s", "peak mem", "failed"]


def cells_of(row: LeaderboardRow) -> list[str]:
    """A row as display strings, shared by the terminal and Markdown renderings."""
    ci = "—" if math.isnan(row.ci_low) else f"{_score(row.ci_low, 3)}–{_score(row.ci_high, 3)}"
    return [
        str(row.rank) if row.rank else "—", row.mechanism, "—" if math.isnan(row.mean) else _score(row.mean, 4),
        ci, str(row.n_seeds), _si(row.flops), _si(row.params), _bytes(row.kv_cache_bytes),
        _bytes(row.kv_read_bytes_per_token), _bytes(row.state_bytes), "—" if math.isnan(row.wall_seconds) else f"{row.wall_seconds:.1f}", _bytes(row.peak_memory_bytes),
        str(row.failed),
    ]


def _score(value: float, decimals: int) -> str:
    """Fractions (accuracy) keep their decimals; scores on a 0-100 scale (RULER) show two."""
    return f"{value:.{min(decimals, 2) if abs(value) >= 10 else decimals}f}"


def _si(value: float) -> str:
    if math.isnan(value):
        return "—"
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def _bytes(value: float) -> str:
    if math.isnan(value):
        return "—"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def to_markdown(rows: list[LeaderboardRow]) -> str:
    parts = []
    for key, table_rows in tables(rows).items():
        parts.append(f"### {title(key)}\n")
        headers = columns(table_rows)
        parts.append("| " + " | ".join(headers) + " |")
        parts.append("|" + "|".join("---" for _ in headers) + "|")
        for row in table_rows:
            parts.append("| " + " | ".join(c.replace("|", "\\|") for c in cells_of(row)) + " |")
        parts.append("")
    return "\n".join(parts)


def to_rich_tables(rows: list[LeaderboardRow]) -> list:
    from rich.table import Table

    rendered = []
    for key, table_rows in tables(rows).items():
        table = Table(title=title(key), title_justify="left")
        for column in columns(table_rows):
            table.add_column(column, justify="left" if column == "mechanism" else "right", no_wrap=True)
        for row in table_rows:
            table.add_row(*cells_of(row))
        rendered.append(table)
    return rendered
