"""Leaderboards from the store: one table per suite and budget, a row per mechanism.

Costs sit beside quality: training FLOPs spent, parameters, and per mechanism layer the KV
cache kept, the bytes of it read per new token and any recurrent state, so a sparse-read
mechanism and an evicting one are compared on the cost that differs.

Each seed's score is the primary metric averaged over the suite's tasks; the row shows the
mean and Student-t 95% interval of those per-seed scores. Only cells that finished count; a
new measurement of the same cell replaces the earlier one. Failed cells are counted, never hidden.

A suite decides which of its tasks share a table (`Suite.table_of`): LongBench, RewardBench and
kernels rank each task in its own (a model through one backend or mode, or one kernel length),
needle's pretrained cells rank per model; averaging LongBench over two models, or over THUDM's and
lm-eval's protocols, would rank nothing. Other suites average their tasks.

A suite whose headline is a mean of parts (RewardBench's Chat, Chat Hard, Safety, Reasoning) stores
each part as a metric named `section/<name>`; a table whose cells have them shows one column per
section, the mean over the mechanism's finished cells, beside the headline.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from attnbench.cell import COST_COLUMNS
from attnbench.metric_names import SECTION_PREFIX

TABLE_KEYS = ["suite", "profile", "budget_kind", "budget_value", "table_task"]


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
    sections: dict[str, float] = field(default_factory=dict)  # `section/<name>` metrics, by name
    table_task: str = (
        ""  # what this row's table is limited to (a task, or a model), for suites that split
    )

    @property
    def table_key(self) -> tuple:
        return (self.suite, self.profile, self.budget_kind, self.budget_value, self.table_task)


def latest_per_cell(cells: pd.DataFrame) -> pd.DataFrame:
    """A cell that was run again (same config, budget and seed) counts once: its latest result, with
    the `table_task` column that says which table it ranks in."""
    key = ["config_hash", "budget_kind", "budget_value", "seed"]
    latest = cells.sort_values("cell_id").drop_duplicates(key, keep="last")
    return latest.assign(table_task=table_tasks(latest))


def table_tasks(cells: pd.DataFrame) -> np.ndarray:
    """Per cell, what its table is limited to beyond suite, profile and budget ("" where tasks
    average)."""
    pairs = pd.MultiIndex.from_frame(cells[["suite", "task"]])
    tables = {pair: _table_of(*pair) for pair in pairs.unique()}
    return pairs.map(tables.__getitem__).to_numpy()


def _table_of(suite: str, task: str) -> str:
    """The suite's own say (suite objects import no torch); a suite not installed here averages
    its tasks."""
    from attnbench.registry import SUITES

    try:
        return str(SUITES.get(suite).table_of(task))
    except (
        Exception
    ):  # a database from elsewhere may name a suite this machine lacks or cannot load
        return ""


def build(cells: pd.DataFrame, suite: str | None = None) -> list[LeaderboardRow]:
    """Rows from `attnbench.results.load(...)`, ranked within each (suite, profile, budget) table.

    Aggregated with whole-frame group-bys, not a loop over groups: a team's store holds 100,000s
    of cells and the terminal table must stay interactive."""
    if suite is not None:
        cells = cells[cells["suite"] == suite]
    if cells.empty:
        return []
    latest = latest_per_cell(cells)
    keys = [*TABLE_KEYS, "mechanism"]
    latest = latest.assign(
        _primary=_primary_values(latest), _failed=(latest["status"] != "done").astype(int)
    )
    done = latest[latest["status"] == "done"]
    per_seed = done.groupby([*keys, "seed"], sort=False)["_primary"].mean()
    per_seed = per_seed[np.isfinite(per_seed.to_numpy(dtype=float))]
    seeds = per_seed.groupby(level=keys, sort=False)
    quality = pd.DataFrame({"mean": seeds.mean(), "std": seeds.std(ddof=1), "n": seeds.count()})
    numeric = [
        "flops_used",
        "params",
        "wall_seconds",
        "peak_memory_bytes",
        *[c for c in COST_COLUMNS if c in done],
    ]
    costs = (
        done[keys]
        .join(done[numeric].apply(pd.to_numeric, errors="coerce"))
        .groupby(keys, sort=False)
        .mean()
    )
    tasks = done.groupby(keys, sort=False)["task"].nunique()
    section_columns = [
        c for c in done.columns if isinstance(c, str) and c.startswith(SECTION_PREFIX)
    ]
    sections = (
        done[keys]
        .join(done[section_columns].apply(pd.to_numeric, errors="coerce"))
        .groupby(keys, sort=False)
        .mean()
        if section_columns
        else pd.DataFrame()
    )
    meta = latest.groupby(keys, sort=True).agg(
        metric=("primary_metric", "last"),
        higher=("higher_is_better", "last"),
        failed=("_failed", "sum"),
    )
    rows_by_table: dict[tuple, list[LeaderboardRow]] = {}
    for key, info in meta.iterrows():
        stats_row = quality.loc[key] if key in quality.index else None
        cost = costs.loc[key] if key in costs.index else None
        mean, low, high, n = _interval(stats_row)

        def cost_of(name: str, cost: pd.Series | None = cost) -> float:
            return (
                float(cost[name])
                if cost is not None and name in cost and pd.notna(cost[name])
                else math.nan
            )

        suite_name, profile, budget_kind, budget_value, table_task, mechanism = key
        rows_by_table.setdefault(key[:5], []).append(
            LeaderboardRow(
                suite=suite_name,
                profile=profile,
                budget_kind=budget_kind,
                budget_value=float(budget_value),
                mechanism=mechanism,
                metric=str(info["metric"]),
                higher_is_better=bool(info["higher"]),
                mean=mean,
                ci_low=low,
                ci_high=high,
                n_seeds=n,
                n_tasks=int(tasks.get(key, 0)),
                flops=cost_of("flops_used"),
                params=cost_of("params"),
                wall_seconds=cost_of("wall_seconds"),
                peak_memory_bytes=cost_of("peak_memory_bytes"),
                **{name: cost_of(name) for name in COST_COLUMNS},
                failed=int(info["failed"]),
                sections=(
                    {
                        name[len(SECTION_PREFIX) :]: float(value)
                        for name, value in sections.loc[key].items()
                        if pd.notna(value)
                    }
                    if key in sections.index
                    else {}
                ),
                table_task=table_task,
            )
        )
    return [row for table_key in sorted(rows_by_table) for row in _ranked(rows_by_table[table_key])]


def _primary_values(cells: pd.DataFrame) -> np.ndarray:
    """Each cell's own primary metric, whatever its column is called."""
    values = np.full(len(cells), np.nan)
    for metric in cells["primary_metric"].unique():
        if metric in cells:
            mask = (cells["primary_metric"] == metric).to_numpy()
            values[mask] = pd.to_numeric(cells.loc[mask, metric], errors="coerce").to_numpy(
                dtype=float
            )
    return values


def _interval(row: pd.Series | None, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and Student-t interval of the per-seed scores (as `stats.mean_interval`); NaN where
    undefined."""
    if row is None or row["n"] == 0:
        return math.nan, math.nan, math.nan, 0
    mean, n = float(row["mean"]), int(row["n"])
    if n == 1:
        return mean, math.nan, math.nan, 1
    half = float(student_t.ppf(0.5 + confidence / 2, n - 1) * row["std"] / math.sqrt(n))
    return mean, mean - half, mean + half, n


def _ranked(rows: list[LeaderboardRow]) -> list[LeaderboardRow]:
    """Competition ranking (1, 2, 2, 4) by mean; rows with no finished seed rank last, unranked
    (0)."""
    scored = [r for r in rows if not math.isnan(r.mean)]
    scored.sort(key=lambda r: -r.mean if r.higher_is_better else r.mean)
    for position, row in enumerate(scored):
        row.rank = (
            scored[position - 1].rank
            if position and row.mean == scored[position - 1].mean
            else position + 1
        )
    return scored + [r for r in rows if math.isnan(r.mean)]


def _clean(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else value


def to_json(rows: Iterable[LeaderboardRow]) -> str:
    return json.dumps([{k: _clean(v) for k, v in asdict(r).items()} for r in rows], indent=2)


def tables(rows: list[LeaderboardRow]) -> dict[tuple, list[LeaderboardRow]]:
    grouped: dict[tuple, list[LeaderboardRow]] = {}
    for row in rows:
        grouped.setdefault(row.table_key, []).append(row)
    return grouped


def title(key: tuple) -> str:
    suite, profile, budget_kind, budget_value, table_task = key
    task = f" · {table_task}" if table_task else ""
    return f"{suite}{task} · profile {profile} · budget {budget_value:.3g} {budget_kind}"


def section_names(rows: list[LeaderboardRow]) -> list[str]:
    """The sections any row of one table has, in order of first appearance."""
    return list(dict.fromkeys(name for row in rows for name in row.sections))


def columns(rows: list[LeaderboardRow]) -> list[str]:
    """Column headers for one table; the primary metric names its own column, its sections follow
    the interval."""
    metric = rows[0].metric + (" ↑" if rows[0].higher_is_better else " ↓")
    return [
        "rank",
        "mechanism",
        metric,
        "95% CI",
        *section_names(rows),
        "seeds",
        "FLOPs",
        "params",
        "KV kept",
        "KV/token",
        "state",
        "wall s",
        "peak mem",
        "failed",
    ]


def cells_of(row: LeaderboardRow, sections: Iterable[str] = ()) -> list[str]:
    """A row as display strings, shared by the terminal and Markdown renderings; `sections` are
    its table's."""
    ci = "—" if math.isnan(row.ci_low) else f"{_score(row.ci_low, 3)}–{_score(row.ci_high, 3)}"
    return [
        str(row.rank) if row.rank else "—",
        row.mechanism,
        "—" if math.isnan(row.mean) else _score(row.mean, 4),
        ci,
        *(_score(row.sections[name], 4) if name in row.sections else "—" for name in sections),
        str(row.n_seeds),
        _si(row.flops),
        _si(row.params),
        _bytes(row.kv_cache_bytes),
        _bytes(row.kv_read_bytes_per_token),
        _bytes(row.state_bytes),
        "—" if math.isnan(row.wall_seconds) else f"{row.wall_seconds:.1f}",
        _bytes(row.peak_memory_bytes),
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
            parts.append(
                "| "
                + " | ".join(
                    c.replace("|", "\\|") for c in cells_of(row, section_names(table_rows))
                )
                + " |"
            )
        parts.append("")
    return "\n".join(parts)


def to_rich_tables(rows: list[LeaderboardRow]) -> list:
    from rich.table import Table
    from rich.text import Text

    rendered = []
    for key, table_rows in tables(
        rows
    ).items():  # names come from plug-ins and users: Text, never markup
        table = Table(title=Text(title(key)), title_justify="left")
        for column in columns(table_rows):
            table.add_column(
                Text(column), justify="left" if column == "mechanism" else "right", no_wrap=True
            )
        for row in table_rows:
            table.add_row(*map(Text, cells_of(row, section_names(table_rows))))
        rendered.append(table)
    return rendered
