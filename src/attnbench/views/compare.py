"""Regression tracking: compare the current results (each cell's latest) with a baseline's and flag
only real regressions.

Cells are matched by suite, mechanism, config hash and budget. For each match the primary
metric's difference of means over seeds gets a bootstrap 95% interval; a match regresses only
when it is worse, the interval excludes zero (significant) and the change exceeds the relative
tolerance. One seed on either side can never be significant, so it is reported, not failed.

A baseline cell with no counterpart is a failure of the gate too (unless the caller allows it): a
changed default hyper-parameter changes every config hash, and a gate that compared nothing would
pass a regressed mechanism. `unmatched` says, field by field, how the nearest current cell's
configuration differs.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from attnbench import results
from attnbench.errors import ConfigError
from attnbench.store.database import Store
from attnbench.views.leaderboard import latest_per_cell

KEY = ["suite", "mechanism", "config_hash", "budget_kind", "budget_value"]
RESAMPLES = 9999


@dataclass
class MatchKey:
    """Which cells of the baseline and the current results are compared: suite, mechanism, config
    and budget (the task is the config's label)."""

    suite: str
    mechanism: str
    task: str
    config_hash: str
    budget_kind: str
    budget_value: float


@dataclass
class Comparison(MatchKey):
    metric: str
    higher_is_better: bool
    baseline_mean: float
    current_mean: float
    delta: float
    ci_low: float
    ci_high: float
    n_baseline: int
    n_current: int
    significant: bool
    regression: bool
    improvement: bool

    @property
    def relative(self) -> float:
        return (
            self.delta / abs(self.baseline_mean)
            if self.baseline_mean
            else math.inf * np.sign(self.delta)
        )


def load_source(source: str) -> pd.DataFrame:
    """Cells x metrics from a database URL or path, or from an exported Parquet/CSV/JSON file."""
    path = Path(source)
    if "://" not in source and path.suffix.lower() in (".parquet", ".csv", ".json"):
        from attnbench.store.transfer import read_file

        long = read_file(path)
        cells = long.drop(columns=["metric", "value"]).drop_duplicates("cell_uid")
        wide = long.dropna(subset=["metric"]).pivot(
            index="cell_uid", columns="metric", values="value"
        )
        frame = cells.merge(wide, left_on="cell_uid", right_index=True, how="left")
        return frame.assign(cell_id=range(len(frame)))
    return results.load(Store.open(source, create=False))


def difference_interval(
    baseline: np.ndarray, current: np.ndarray, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap 95% percentile interval of mean(current) - mean(baseline), resampling seeds in
    each."""
    if len(baseline) < 2 or len(current) < 2:
        return -math.inf, math.inf
    if np.ptp(baseline) == 0 and np.ptp(current) == 0:
        delta = float(current.mean() - baseline.mean())
        return delta, delta
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny samples make scipy warn about degenerate resamples
        result = stats.bootstrap(
            (baseline, current),
            lambda b, c, axis: c.mean(axis) - b.mean(axis),
            n_resamples=RESAMPLES,
            method="percentile",
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def compare(
    baseline: pd.DataFrame, current: pd.DataFrame, tolerance: float = 0.02
) -> list[Comparison]:
    if not tolerance >= 0:
        raise ConfigError(f"--tolerance {tolerance} must be a non-negative fraction, e.g. 0.02")
    done = {
        name: latest_per_cell(frame[frame["status"] == "done"])
        for name, frame in (("baseline", baseline), ("current", current))
    }
    comparisons = []
    for key, now in done["current"].groupby(KEY, sort=True):
        then = done["baseline"]
        then = then[(then[KEY] == pd.Series(key, index=KEY)).all(axis=1)]
        if then.empty:
            continue
        metric = str(now["primary_metric"].iloc[-1])
        higher = bool(now["higher_is_better"].iloc[-1])
        b = pd.to_numeric(then[metric], errors="coerce").dropna().to_numpy(dtype=float)
        c = pd.to_numeric(now[metric], errors="coerce").dropna().to_numpy(dtype=float)
        if not len(b) or not len(c):
            continue
        delta = float(c.mean() - b.mean())
        low, high = difference_interval(b, c)
        significant = low > 0 or high < 0
        worse = delta < 0 if higher else delta > 0
        beyond = abs(delta) > tolerance * abs(float(b.mean()))
        comparisons.append(
            Comparison(
                *key[:2],
                str(now["task"].iloc[-1]),
                key[2],
                key[3],
                float(key[4]),
                metric,
                higher,
                float(b.mean()),
                float(c.mean()),
                delta,
                low,
                high,
                len(b),
                len(c),
                significant,
                regression=significant and worse and beyond,
                improvement=significant and not worse and beyond,
            )
        )
    return comparisons


@dataclass
class Unmatched(MatchKey):
    """A baseline cell that the current results do not have, and why."""

    reason: str


def unmatched(baseline: pd.DataFrame, current: pd.DataFrame) -> list[Unmatched]:
    """Every finished baseline cell without a finished current cell of the same key, with the
    reason: not run at all, run at another budget, or run with another configuration (the fields
    that differ)."""
    then = baseline[baseline["status"] == "done"]
    now = current[current["status"] == "done"]
    have = (
        set(map(tuple, now[KEY].astype(object).itertuples(index=False, name=None)))
        if len(now)
        else set()
    )
    missing = []
    for key, group in then.groupby(KEY, sort=True):
        if tuple(key) in have:
            continue
        head = group.iloc[-1]
        missing.append(
            Unmatched(
                *key[:2], str(head["task"]), key[2], key[3], float(key[4]), _why_missing(head, now)
            )
        )
    return missing


def _why_missing(cell: pd.Series, current: pd.DataFrame) -> str:
    same = current[
        (current["suite"] == cell["suite"]) & (current["mechanism"] == cell["mechanism"])
    ]
    if same.empty:
        return f"no finished {cell['suite']}/{cell['mechanism']} cell in the current results"
    same_task = same[same["task"] == cell["task"]]
    if same_task.empty:
        tasks = ", ".join(sorted(set(same["task"])))
        return f"no finished cell of task {cell['task']!r} (the current results have {tasks})"
    configured = same_task[same_task["config_hash"] == cell["config_hash"]]
    if not configured.empty:
        budgets = ", ".join(
            sorted(
                {
                    f"{v:g} {k}"
                    for k, v in zip(configured["budget_kind"], configured["budget_value"])
                }
            )
        )
        return (
            f"same configuration, other budget: baseline {cell['budget_value']:g}"
            f" {cell['budget_kind']}, current {budgets}"
        )
    nearest = same_task.iloc[-1]
    changed = config_differences(_config(cell.get("config")), _config(nearest.get("config")))
    return "configuration differs: " + (
        "; ".join(changed) if changed else "(configurations not stored)"
    )


def _config(value: object) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def config_differences(before: dict, after: dict, prefix: str = "") -> list[str]:
    """`field: baseline → current` for every leaf that differs, nested fields dotted
    (hparams.window)."""
    changes = []
    for key in sorted(set(before) | set(after), key=str):
        name = f"{prefix}{key}"
        old, new = before.get(key, "(absent)"), after.get(key, "(absent)")
        if isinstance(old, dict) and isinstance(new, dict):
            changes.extend(config_differences(old, new, name + "."))
        elif old != new:
            changes.append(f"{name}: {old!r} → {new!r}")
    return changes


def to_markdown(
    comparisons: list[Comparison],
    tolerance: float,
    missing: list[Unmatched] = (),
    allow_missing: bool = False,
) -> str:
    regressions = [c for c in comparisons if c.regression]
    failing_missing = (missing or not comparisons) and not allow_missing
    verdict = (
        f"**{len(regressions)} regression(s)**"
        if regressions
        else (
            "**Not compared: baseline cells without a match**"
            if failing_missing
            else "**No regression**"
        )
    )
    lines = [
        f"### attnbench compare: {verdict}",
        "",
        (
            f"{len(comparisons)} matched cells, {len(missing)} baseline cells without a match; a"
            " regression is significant (bootstrap 95% interval of the difference excludes 0) and"
            f" worse by more than {tolerance:.1%}."
        ),
        "",
        (
            "| suite | mechanism | task | metric | baseline | current | Δ | 95% CI of Δ | seeds |"
            " verdict |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        verdict = "❌ regression" if c.regression else "✅ improvement" if c.improvement else "—"
        ci = "n/a (1 seed)" if math.isinf(c.ci_low) else f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]"
        lines.append(
            f"| {_cell(c.suite)} | {_cell(c.mechanism)} | {_cell(c.task)} | {_cell(c.metric)} | "
            f"{c.baseline_mean:.4f} | {c.current_mean:.4f} | {c.delta:+.4f} | {ci} | "
            f"{c.n_baseline}/{c.n_current} | {verdict} |"
        )
    if missing:
        lines += [
            "",
            "Baseline cells without a match in the current results:",
            "",
            "| suite | mechanism | task | budget | why |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {_cell(m.suite)} | {_cell(m.mechanism)} | {_cell(m.task)} | "
            f"{m.budget_value:g} {m.budget_kind} | {_cell(m.reason)} |"
            for m in missing
        ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text in a Markdown table cell: a pipe would start a new cell, a newline end the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def as_records(comparisons: list[Comparison]) -> list[dict]:
    return [asdict(c) for c in comparisons]


def outcome(comparisons: list[Comparison], missing: list[Unmatched], allow_missing: bool) -> int:
    """The gate's exit status: 1 on a regression, or on nothing matched or a baseline cell unmatched
    unless allowed; else 0."""
    if any(c.regression for c in comparisons):
        return 1
    return 1 if (missing or not comparisons) and not allow_missing else 0
