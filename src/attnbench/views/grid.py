"""Scores over a (context length x depth) grid, rebuilt from the grid metrics a suite stores
(`attnbench.metric_names`): the store needs no table of its own and any suite that scores over
lengths and depths gets heat maps.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import pandas as pd

from attnbench.metric_names import parse_grid_metric
from attnbench.views import leaderboard


def grid_columns(columns) -> list[str]:
    return [c for c in columns if isinstance(c, str) and parse_grid_metric(c) is not None]


def mean_grid(cells: pd.DataFrame) -> pd.DataFrame:
    """Mean score per (depth, length) over the given finished cells: depths as rows, lengths as
    columns."""
    columns = grid_columns(cells.columns)
    if not columns:
        return pd.DataFrame()
    means = cells[columns].apply(pd.to_numeric, errors="coerce").mean()
    points = [
        (*parse_grid_metric(name), value) for name, value in means.items() if not math.isnan(value)
    ]
    if not points:
        return pd.DataFrame()
    frame = pd.DataFrame(points, columns=["length", "depth", "score"])
    return frame.pivot_table(
        index="depth", columns="length", values="score", aggfunc="mean"
    ).sort_index()


# Red -> yellow -> green over 0..100, light enough for dark text on every cell (terminal and site).
_STOPS = ((0.0, (248, 105, 107)), (50.0, (255, 235, 132)), (100.0, (99, 190, 123)))
MISSING_COLOUR = (234, 238, 242)


def colour(score: float) -> tuple[int, int, int]:
    """The heat-map colour of a score (0-100, clamped); a missing score is grey."""
    if math.isnan(score):
        return MISSING_COLOUR
    score = min(max(score, _STOPS[0][0]), _STOPS[-1][0])
    for (low, a), (high, b) in zip(_STOPS, _STOPS[1:]):
        if score <= high:
            t = (score - low) / (high - low)
            return tuple(round(x + (y - x) * t) for x, y in zip(a, b))
    return _STOPS[-1][1]


def hex_colour(score: float) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour(score))


def show(score: float) -> str:
    """A score as the views print it: an integer, "—" where the grid has no point."""
    return "—" if math.isnan(score) else f"{score:.0f}"


@dataclass
class Grid:
    """One mechanism's mean grid in one leaderboard table (suite, profile, budget)."""

    suite: str
    profile: str
    budget_kind: str
    budget_value: float
    mechanism: str
    scores: (
        pd.DataFrame
    )  # depths (percent) as rows, lengths (tokens) as columns; NaN where no point
    n_cells: int
    table_task: str = ""

    @property
    def key(self) -> tuple:
        return (self.suite, self.profile, self.budget_kind, self.budget_value, self.table_task)

    @property
    def lengths(self) -> list[int]:
        return [int(length) for length in self.scores.columns]

    @property
    def depths(self) -> list[float]:
        return [float(depth) for depth in self.scores.index]

    def rows(self) -> list[list[float]]:
        """Scores per depth (outer) and length (inner)."""
        return [[float(v) for v in row] for row in self.scores.to_numpy()]

    def as_dict(self) -> dict:
        return {
            "lengths": self.lengths,
            "depths": self.depths,
            "scores": [[None if math.isnan(v) else v for v in row] for row in self.rows()],
            "n_cells": self.n_cells,
        }


def grids(
    cells: pd.DataFrame,
    suite: str | None = None,
    rows: list[leaderboard.LeaderboardRow] | None = None,
) -> list[Grid]:
    """Per leaderboard table and mechanism, the mean grid over its latest finished cells, in
    leaderboard order (best mechanism first; pass the table's `rows` when already built); tables and
    mechanisms without grid metrics have none."""
    if suite is not None:
        cells = cells[cells["suite"] == suite]
    columns = grid_columns(cells.columns)
    if cells.empty or not columns:
        return []
    latest = leaderboard.latest_per_cell(cells)
    values = latest[columns].apply(pd.to_numeric, errors="coerce")
    keep = (latest["status"] == "done").to_numpy() & values.notna().any(axis=1).to_numpy()
    if not keep.any():
        return []
    keys = [*leaderboard.TABLE_KEYS, "mechanism"]
    groups = [latest.loc[keep, k] for k in keys]
    means = values[keep].groupby(groups, sort=False).mean()
    counts = values[keep].groupby(groups, sort=False).size()
    found: dict[tuple, Grid] = {}
    for key, series in means.iterrows():
        points = [
            (*parse_grid_metric(name), value)
            for name, value in series.items()
            if not math.isnan(value)
        ]
        if not points:
            continue
        scores = (
            pd.DataFrame(points, columns=["length", "depth", "score"])
            .pivot_table(index="depth", columns="length", values="score", aggfunc="mean")
            .sort_index()
        )
        table_suite, profile, budget_kind, budget_value, table_task, mechanism = key
        grid = Grid(
            table_suite,
            profile,
            budget_kind,
            float(budget_value),
            mechanism,
            scores,
            int(counts[key]),
            table_task,
        )
        found[(*grid.key, mechanism)] = grid
    rows = rows if rows is not None else leaderboard.build(cells)
    order = [(*r.table_key, r.mechanism) for r in rows]
    return [found[key] for key in order if key in found]


def for_table(all_grids: list[Grid], key: tuple) -> list[Grid]:
    return [g for g in all_grids if g.key == key]


def leaderboard_json(rows: list[leaderboard.LeaderboardRow], all_grids: list[Grid]) -> str:
    """The leaderboard's JSON rows, each with its mechanism's grid in that table (null where it
    has none)."""
    by_key = {(*g.key, g.mechanism): g for g in all_grids}
    records = []
    for row in rows:
        grid = by_key.get((*row.table_key, row.mechanism))
        records.append(
            {
                **{k: leaderboard._clean(v) for k, v in asdict(row).items()},
                "grid": grid.as_dict() if grid else None,
            }
        )
    return json.dumps(records, indent=2)


def leaderboard_markdown(rows: list[leaderboard.LeaderboardRow], all_grids: list[Grid]) -> str:
    """The leaderboard's Markdown tables, each followed by a small grid table per mechanism that
    has one."""
    parts = []
    for key, table_rows in leaderboard.tables(rows).items():
        parts.append(leaderboard.to_markdown(table_rows))
        table_grids = for_table(all_grids, key)
        if table_grids:
            parts.append("#### Length x depth\n")
            parts.extend(to_markdown(g) for g in table_grids)
    return "\n".join(parts)


def to_markdown(grid: Grid) -> str:
    """A small Markdown table: depth % down, length across, the mean score as an integer."""
    header = f"**{_md(grid.mechanism)}** (score by length x depth, mean of {grid.n_cells} cells)\n"
    lines = [
        "| depth % \\ length | " + " | ".join(str(length) for length in grid.lengths) + " |",
        "|---" * (len(grid.lengths) + 1) + "|",
    ]
    for depth, row in zip(grid.depths, grid.rows()):
        lines.append(f"| {depth:g} | " + " | ".join(show(v) for v in row) + " |")
    return header + "\n" + "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("<", "&lt;")
