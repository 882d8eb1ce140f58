"""How a suite names the metrics that views read specially, beside its headline ones.

A score over a (context length x depth) grid is one metric per point, `grid/L{length}/D{depth}`
(depth in percent): the leaderboard and the site rebuild the grid from the names, so any suite that
scores over lengths and depths gets heat maps. A benchmark's sections (RewardBench's Chat, Safety,
...) are `section/<name>` metrics and become columns beside the headline score.
"""

from __future__ import annotations

import re

GRID_PREFIX = "grid/"
SECTION_PREFIX = "section/"
_GRID = re.compile(r"^grid/L(\d+)/D(\d+(?:\.\d+)?)$")


def grid_metric(length: int, depth: float) -> str:
    return f"{GRID_PREFIX}L{int(length)}/D{depth:g}"


def parse_grid_metric(name: str) -> tuple[int, float] | None:
    """(length, depth) of a grid metric name, None for any other metric."""
    match = _GRID.match(name)
    return (int(match.group(1)), float(match.group(2))) if match else None


def section_metric(name: str) -> str:
    return f"{SECTION_PREFIX}{name}"
