"""A mechanism's primary metric over the code's history: one point per git commit the store saw.

Points are per-commit means over the seeds (and tasks) of finished cells at one profile, budget and
leaderboard table (one model or backend, for suites that rank those apart), ordered by when the
commit was first run, so a step in the line is a change in the code.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from attnbench.errors import ConfigError, UnknownNameError
from attnbench.views.leaderboard import table_tasks

SPARKS = "▁▂▃▄▅▆▇█"


@dataclass
class HistoryPoint:
    git_sha: str
    dirty: bool
    first_run: pd.Timestamp
    mean: float
    n_cells: int
    config_hashes: int


def history(
    cells: pd.DataFrame,
    runs: pd.DataFrame,
    suite: str,
    mechanism: str,
    profile: str | None = None,
    budget: float | None = None,
) -> tuple[str, list[HistoryPoint], dict]:
    """(metric, points, the profile and budget chosen); the latest profile and budget by default."""
    chosen = cells[
        (cells["suite"] == suite) & (cells["mechanism"] == mechanism) & (cells["status"] == "done")
    ]
    if chosen.empty:
        known = sorted(set(cells["suite"] + "/" + cells["mechanism"]))
        raise UnknownNameError(
            f"no finished cells for suite {suite!r} and mechanism {mechanism!r} in this database"
            f" (it has: {', '.join(known) or 'nothing'})"
        )
    latest = chosen.sort_values("cell_id").iloc[-1]
    profile = profile or latest["profile"]
    budget_value = float(budget if budget is not None else latest["budget_value"])
    chosen = chosen[(chosen["profile"] == profile) & (chosen["budget_value"] == budget_value)]
    if chosen.empty:
        raise ConfigError(
            f"no finished {suite}/{mechanism} cells at profile {profile!r} and budget"
            f" {budget_value:g}"
        )
    chosen = chosen.assign(table_task=table_tasks(chosen))
    table_task = str(
        chosen.sort_values("cell_id")["table_task"].iloc[-1]
    )  # the latest cell's table
    chosen = chosen[chosen["table_task"] == table_task]
    metric = str(chosen["primary_metric"].iloc[-1])
    columns = ["cell_id", "run_id", "config_hash", "budget_kind", "budget_value", "seed", metric]
    merged = chosen[columns].merge(
        runs[["run_id", "git_sha", "git_dirty", "started_at"]].rename(
            columns={"started_at": "run_started"}
        ),
        on="run_id",
    )
    merged["git_sha"] = merged["git_sha"].fillna("(no git)")
    merged["git_dirty"] = merged["git_dirty"].fillna(False).astype(bool)
    # Per commit, a cell measured again there counts once: its latest result (as latest_per_cell,
    # per commit).
    merged = merged.sort_values("cell_id").drop_duplicates(
        ["git_sha", "config_hash", "budget_kind", "budget_value", "seed"], keep="last"
    )
    merged[metric] = pd.to_numeric(merged[metric], errors="coerce")
    per_commit = merged.groupby("git_sha", sort=False).agg(
        dirty=("git_dirty", "any"),
        first=("run_started", "min"),
        mean=(metric, "mean"),
        n=("cell_id", "size"),
        hashes=("config_hash", "nunique"),
    )
    points = [
        HistoryPoint(
            str(sha),
            bool(row["dirty"]),
            row["first"],
            float(row["mean"]),
            int(row["n"]),
            int(row["hashes"]),
        )
        for sha, row in per_commit.iterrows()
    ]
    points.sort(key=lambda p: p.first_run)
    return (
        metric,
        points,
        {
            "profile": profile,
            "budget_value": budget_value,
            "budget_kind": str(chosen["budget_kind"].iloc[-1]),
            "table_task": table_task,
        },
    )


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    return "".join(
        SPARKS[0 if span == 0 else round((v - low) / span * (len(SPARKS) - 1))] for v in values
    )
