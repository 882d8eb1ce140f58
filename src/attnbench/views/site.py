"""The published leaderboard: a static, self-contained HTML site rendered from the store.

No CDN and no external asset: styles, the table-sorting script and the plots (inline SVG) are
in each page, so the folder opens offline and can be published as it is. Everything that comes
from a plug-in or the database goes through Jinja2's autoescaping.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from attnbench.errors import ConfigError
from attnbench.views import grid, leaderboard
from attnbench.views.leaderboard import LeaderboardRow, latest_per_cell

PLOT_WIDTH, PLOT_HEIGHT, MARGIN = 560, 320, 48


@dataclass
class Point:
    x: float
    y: float
    label: str
    frontier: bool = False
    px: float = 0.0
    py: float = 0.0


def pareto(points: list[Point], higher_is_better: bool) -> list[Point]:
    """Mark the points no other point beats on both cost (lower) and quality."""
    for p in points:
        p.frontier = not any(
            (q.x <= p.x and (q.y >= p.y if higher_is_better else q.y <= p.y))
            and (q.x < p.x or q.y != p.y)
            for q in points
            if q is not p
        )
    return sorted((p for p in points if p.frontier), key=lambda p: p.x)


def scatter(rows: list[LeaderboardRow], cost: str, cost_label: str) -> dict[str, Any] | None:
    """An SVG-ready quality-vs-cost plot (log-scaled cost), or None when there is nothing to
    plot."""
    points = [
        Point(getattr(r, cost), r.mean, r.mechanism)
        for r in rows
        if not math.isnan(r.mean) and getattr(r, cost) == getattr(r, cost) and getattr(r, cost) > 0
    ]
    if len(points) < 2:
        return None
    frontier = pareto(points, rows[0].higher_is_better)
    xs = [math.log10(p.x) for p in points]
    ys = [p.y for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    for p, lx in zip(points, xs):
        p.px = MARGIN + (lx - x0) / (x1 - x0) * (PLOT_WIDTH - 2 * MARGIN)
        p.py = PLOT_HEIGHT - MARGIN - (p.y - y0) / (y1 - y0) * (PLOT_HEIGHT - 2 * MARGIN)
    return {
        "points": points,
        "frontier": " ".join(f"{p.px:.1f},{p.py:.1f}" for p in frontier),
        "cost_label": cost_label,
        "metric": rows[0].metric,
        "width": PLOT_WIDTH,
        "height": PLOT_HEIGHT,
        "margin": MARGIN,
        "x_min": 10**x0,
        "x_max": 10**x1,
        "y_min": y0,
        "y_max": y1,
    }


def history_plots(cells: pd.DataFrame, runs: pd.DataFrame, suite: str) -> list[dict[str, Any]]:
    """Per mechanism with results at more than one commit: the primary metric per commit, as an
    SVG line."""
    from attnbench.views.history import history

    plots = []
    cells = cells[cells["suite"] == suite]
    for mechanism in sorted(set(cells.loc[cells["status"] == "done", "mechanism"])):
        metric, points, chosen = history(cells, runs, suite, mechanism)
        if len(points) < 2:
            continue
        values = [p.mean for p in points]
        low, high = min(values), max(values) if max(values) > min(values) else min(values) + 1
        width, height = PLOT_WIDTH, 160
        coords = [
            (
                MARGIN + i / (len(points) - 1) * (width - 2 * MARGIN),
                height - 24 - (v - low) / (high - low) * (height - 48),
            )
            for i, v in enumerate(values)
        ]
        plots.append(
            {
                "mechanism": mechanism,
                "metric": metric,
                "width": width,
                "height": height,
                "line": " ".join(f"{x:.1f},{y:.1f}" for x, y in coords),
                "points": [
                    {"x": x, "y": y, "sha": p.git_sha[:10], "mean": p.mean}
                    for (x, y), p in zip(coords, points)
                ],
                "profile": chosen["profile"],
                "budget": f"{chosen['budget_value']:.3g} {chosen['budget_kind']}",
            }
        )
    return plots


HEAT_CELL_W, HEAT_CELL_H, HEAT_LEFT, HEAT_BOTTOM = 56, 28, 64, 76


def heatmap(g: grid.Grid) -> dict[str, Any]:
    """An SVG-ready length x depth heat map: a coloured cell per point with its value and a tooltip,
    axis labels, and a 0-100 colour legend under the grid."""
    lengths, depths = g.lengths, g.depths
    grid_w, grid_h = len(lengths) * HEAT_CELL_W, len(depths) * HEAT_CELL_H
    top = max(8, (96 - grid_h) // 2)  # room for the rotated depth label beside a short grid
    content_w = max(
        grid_w, 150
    )  # the legend and the length label need this much under a narrow grid
    cells = []
    for row, (depth, scores) in enumerate(zip(depths, g.rows())):
        for column, (length, score) in enumerate(zip(lengths, scores)):
            cells.append(
                {
                    "x": HEAT_LEFT + column * HEAT_CELL_W,
                    "y": top + row * HEAT_CELL_H,
                    "fill": grid.hex_colour(score),
                    "text": grid.show(score),
                    "title": (
                        f"{g.mechanism} · {length} tokens · depth {depth:g}% · "
                        + ("no result" if math.isnan(score) else f"score {score:.1f}")
                    ),
                }
            )
    return {
        "mechanism": g.mechanism,
        "n_cells": g.n_cells,
        "cells": cells,
        "cell_w": HEAT_CELL_W,
        "cell_h": HEAT_CELL_H,
        "left": HEAT_LEFT,
        "top": top,
        "grid_w": grid_w,
        "grid_h": grid_h,
        "content_w": content_w,
        "width": HEAT_LEFT + content_w + 12,
        "height": top + grid_h + HEAT_BOTTOM,
        "lengths": [
            {"x": HEAT_LEFT + (i + 0.5) * HEAT_CELL_W, "label": str(v)}
            for i, v in enumerate(lengths)
        ],
        "depths": [
            {"y": top + (i + 0.5) * HEAT_CELL_H, "label": f"{v:g}"} for i, v in enumerate(depths)
        ],
        "stops": [(stop, grid.hex_colour(stop)) for stop in (0, 50, 100)],
    }


def _assignment(key: str, value: Any) -> str:
    """KEY=VALUE as `--hparam`/`--set` read it back (a Python literal; strings quoted)."""
    return f"{key}={value!r}"


def task_options(suite: str, profile: str, task_config: dict[str, Any]) -> list[str]:
    """`--model`, `--backend` and a `--set` for each task setting this cell changed from the suite's
    profile (a value that none of the profile's own tasks has); without the suite installed, the
    first two only.
    """
    config = dict(task_config)
    model, backend = config.pop("model", None), config.pop("backend", None)
    parts = (["--model", str(model)] if model else []) + (
        ["--backend", str(backend)] if backend else []
    )
    from attnbench.registry import SUITES

    try:
        owner = SUITES.get(suite)
        defaults, settings = [task.config for task in owner.tasks(profile)], owner.settings(profile)
    except Exception:  # a database from elsewhere may name a suite this machine lacks
        return parts
    for key, value in sorted(config.items()):
        if key in settings and all(default.get(key) != value for default in defaults):
            parts += ["--set", _assignment(key, value)]
    return parts


def reproduce_command(cell: pd.Series, config: dict[str, Any], n_seeds: int) -> str:
    """The `attnbench run` line that recomputes this leaderboard row (all its seeds), every
    setting spelled out."""
    parts = [
        "attnbench",
        "run",
        "--suite",
        cell["suite"],
        "-m",
        cell["mechanism"],
        "--profile",
        cell["profile"],
        "--budget",
        f"{cell['budget_value']:g}",
        "--budget-kind",
        cell["budget_kind"],
        "--seeds",
        str(n_seeds),
    ]
    parts += task_options(cell["suite"], cell["profile"], config.get("task_config") or {})
    for key, value in sorted(config.get("hparams", {}).items()):
        parts += [
            "--hparam",
            _assignment(key, value) if isinstance(value, str) else f"{key}={value}",
        ]
    return shlex.join(parts)


def provenance_rows(cells: pd.DataFrame, runs: pd.DataFrame) -> list[dict[str, Any]]:
    used = runs[runs["run_id"].isin(cells["run_id"].unique())]
    found = []
    for _, run in used.iterrows():
        found.append(
            {
                "run": run["run_id"],
                "date": str(run["started_at"])[:19],
                "git": (
                    (run["git_sha"] or "not a git checkout")[:12]
                    + (" (dirty)" if run["git_dirty"] else "")
                ),
                "device": run["device"],
                "versions": (
                    f"python {run['python_version']}, torch "
                    f"{run['torch_version']}, attnbench {run['attnbench_version']}"
                ),
                "host": run["host"],
            }
        )
    return found


def overview(rows: list[LeaderboardRow]) -> list[dict[str, Any]]:
    """Mechanisms across every table: mean rank and how many tables they are ranked in."""
    by_mechanism: dict[str, list[int]] = {}
    for row in rows:
        if row.rank:
            by_mechanism.setdefault(row.mechanism, []).append(row.rank)
    ranked = [
        {"mechanism": m, "mean_rank": sum(r) / len(r), "tables": len(r), "wins": r.count(1)}
        for m, r in by_mechanism.items()
    ]
    return sorted(ranked, key=lambda item: (item["mean_rank"], -item["tables"], item["mechanism"]))


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("attnbench.views", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["si"] = leaderboard._si
    env.filters["bytes"] = leaderboard._bytes
    env.filters["num"] = lambda v, digits=4: "—" if v is None or v != v else f"{v:.{digits}f}"
    return env


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-") or "suite"


def page_name(suite: str) -> str:
    """The page of one suite: its name where that is already a safe file name, else its slug and a
    digest of the exact name after a `~` (which no slug holds), so that `mqar.x` and `mqar/x` never
    share a page.
    """
    if slug(suite) == suite and suite.isascii():
        return f"suite-{suite}.html"
    return f"suite-{slug(suite)}~{hashlib.sha256(suite.encode()).hexdigest()[:10]}.html"


def render_site(cells: pd.DataFrame, runs: pd.DataFrame, out: str | Path) -> list[Path]:
    """Write index.html and one page per suite into `out`; returns the files written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".attnbench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"--html {out}: cannot write the site there ({exc.strerror or exc}); "
            "expected a folder that can be created or written"
        ) from None
    env = environment()
    rows = leaderboard.build(cells)
    latest = latest_per_cell(cells)
    all_grids = grid.grids(cells, rows=rows)
    suites = sorted({r.suite for r in rows})
    pages = {suite: page_name(suite) for suite in suites}
    written = []
    for suite in suites:
        tables = []
        for key, table_rows in leaderboard.tables([r for r in rows if r.suite == suite]).items():
            entries = []
            for row in table_rows:
                group = latest[
                    (latest["suite"] == row.suite)
                    & (latest["mechanism"] == row.mechanism)
                    & (latest["profile"] == row.profile)
                    & (latest["budget_value"] == row.budget_value)
                    & (latest["table_task"] == row.table_task)
                ]
                head = group.sort_values("cell_id").iloc[-1]
                config = head.get("config")
                config = (
                    json.loads(config) if isinstance(config, str) else config
                )  # results.load(decode=False)
                config = config if isinstance(config, dict) else {}
                entries.append(
                    {
                        "row": row,
                        "command": reproduce_command(head, config, row.n_seeds),
                        "provenance": provenance_rows(group, runs),
                    }
                )
            plots = [
                p
                for p in (
                    scatter(table_rows, "flops", "training FLOPs"),
                    scatter(table_rows, "kv_cache_bytes", "KV cache kept (bytes per layer)"),
                )
                if p
            ]
            tables.append(
                {
                    "title": leaderboard.title(key),
                    "columns": leaderboard.columns(table_rows),
                    "sections": leaderboard.section_names(table_rows),
                    "entries": entries,
                    "plots": plots,
                    "heatmaps": [heatmap(g) for g in grid.for_table(all_grids, key)],
                }
            )
        path = out / pages[suite]
        path.write_text(
            env.get_template("suite.html.j2").render(
                suite=suite, tables=tables, pages=pages, history=history_plots(cells, runs, suite)
            ),
            encoding="utf-8",
        )
        written.append(path)
    index = out / "index.html"
    index.write_text(
        env.get_template("index.html.j2").render(
            overview=overview(rows), pages=pages, n_cells=len(cells), n_runs=len(runs)
        ),
        encoding="utf-8",
    )
    return [index, *written]
