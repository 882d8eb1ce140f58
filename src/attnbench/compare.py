"""Regression tracking: compare a run's cells with a baseline's and flag only real regressions.

Cells are matched by suite, mechanism, config hash and budget. For each match the primary
metric's difference of means over seeds gets a bootstrap 95% interval; a match regresses only
when it is worse, the interval excludes zero (significant) and the change exceeds the relative
tolerance. One seed on either side can never be significant, so it is reported, not failed.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from attnbench import results
from attnbench.errors import ConfigError
from attnbench.leaderboard import latest_per_cell
from attnbench.store import Store

KEY = ["suite", "mechanism", "config_hash", "budget_kind", "budget_value"]
RESAMPLES = 9999


@dataclass
class Comparison:
    suite: str
    mechanism: str
    task: str
    config_hash: str
    budget_kind: str
    budget_value: float
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
        return self.delta / abs(self.baseline_mean) if self.baseline_mean else math.inf * np.sign(self.delta)


def load_source(source: str) -> pd.DataFrame:
    """Cells x metrics from a database URL or path, or from an exported Parquet/CSV/JSON file."""
    path = Path(source)
    if "://" not in source and path.suffix.lower() in (".parquet", ".csv", ".json"):
        from attnbench.transfer import read_file

        long = read_file(path)
        cells = long.drop(columns=["metric", "value"]).drop_duplicates("cell_uid")
        wide = long.dropna(subset=["metric"]).pivot(index="cell_uid", columns="metric", values="value")
        frame = cells.merge(wide, left_on="cell_uid", right_index=True, how="left")
        return frame.assign(cell_id=range(len(frame)))
    return results.load(Store.open(source, create=False))


def difference_interval(baseline: np.ndarray, current: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% percentile interval of mean(current) - mean(baseline), resampling seeds in each."""
    if len(baseline) < 2 or len(current) < 2:
        return -math.inf, math.inf
    if np.ptp(baseline) == 0 and np.ptp(current) == 0:
        delta = float(current.mean() - baseline.mean())
        return delta, delta
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny samples make scipy warn about degenerate resamples
        result = stats.bootstrap((baseline, current), lambda b, c, axis: c.mean(axis) - b.mean(axis),
                                 n_resamples=RESAMPLES, method="percentile", vectorized=True,
                                 rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def compare(baseline: pd.DataFrame, current: pd.DataFrame, tolerance: float = 0.02) -> list[Comparison]:
    if not tolerance >= 0:
        raise ConfigError(f"--tolerance {tolerance} must be a non-negative fraction, e.g. 0.02")
    done = {name: latest_per_cell(frame[frame["status"] == "done"]) for name, frame in
            (("baseline", baseline), ("current", current))}
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
        comparisons.append(Comparison(
            *key[:2], str(now["task"].iloc[-1]), key[2], key[3], float(key[4]), metric, higher, float(b.mean()),
            float(c.mean()), delta, low, high, len(b), len(c), significant,
            regression=significant and worse and beyond, improvement=significant and not worse and beyond,
        ))
    return comparisons


def to_markdown(comparisons: list[Comparison], tolerance: float) -> str:
    regressions = [c for c in comparisons if c.regression]
    verdict = (f"**{len(regressions)} regression(s)**" if regressions else "**No regression**")
    lines = [f"### attnbench compare: {verdict}", "",
             f"{len(comparisons)} matched cells; a regression is significant (bootstrap 95% interval of the "
             f"difference excludes 0) and worse by more than {tolerance:.1%}.", "",
             "| suite | mechanism | task | metric | baseline | current | Δ | 95% CI of Δ | seeds | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        verdict = "❌ regression" if c.regression else "✅ improvement" if c.improvement else "—"
        ci = "n/a (1 seed)" if math.isinf(c.ci_low) else f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]"
        lines.append(f"| {c.suite} | {c.mechanism} | {c.task} | {c.metric} | {c.baseline_mean:.4f} | "
                     f"{c.current_mean:.4f} | {c.delta:+.4f} | {ci} | {c.n_baseline}/{c.n_current} | {verdict} |")
    return "\n".join(lines) + "\n"


def as_records(comparisons: list[Comparison]) -> list[dict]:
    return [asdict(c) for c in comparisons]
