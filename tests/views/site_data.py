"""Stores of finished results for the static-site tests, written straight through the store's
API."""

from __future__ import annotations

from pathlib import Path

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellRecord, CellSpec
from attnbench.metric_names import grid_metric as metric_name
from attnbench.store.database import Store
from tests.store.test_database import PROVENANCE

# Per mechanism: training FLOPs, KV cache kept (bytes per layer) and the primary metric per seed.
Results = dict[str, tuple[float, float, list[float]]]


def write_results(
    store: Store,
    run: int,
    suite: str,
    metric: str,
    results: Results,
    budget: float = 1e9,
    higher_is_better: bool = True,
    profile: str = "smoke",
) -> None:
    """One finished cell per mechanism and seed, in an already started run."""
    for mechanism, (flops, kv, scores) in results.items():
        for seed, score in enumerate(scores):
            spec = CellSpec(
                suite,
                mechanism,
                profile,
                "t",
                {},
                {"num_heads": 1},
                Budget("flops", budget),
                seed,
                primary_metric=metric,
                higher_is_better=higher_is_better,
            )
            outcome = CellOutcome(
                {metric: score}, budget, flops, 10, 100, costs={"kv_cache_bytes": kv}
            )
            store.write_cell(run, CellRecord(spec, "done", outcome, wall_seconds=1.0 + seed))


def populate(path: Path, evil: str) -> Store:
    """Three mechanisms on MQAR, one of them named `evil`, run on a device whose name is `evil`
    too."""
    store = Store.open(path)
    run = store.start_run({**PROVENANCE, "device": f"cpu {evil}"}, "smoke", {})
    write_results(
        store,
        run,
        "mqar",
        "accuracy",
        {
            "mha": (4e9, 8192, [0.9, 0.95]),
            "linear": (3e9, 0, [0.4, 0.5]),
            evil: (5e9, 4096, [0.2, 0.3]),
        },
    )
    store.finish_run(run, "done")
    return store


def populate_realistic(path: Path, evil: str) -> Store:
    """Two suites (one metric higher-better, one lower-better), two budgets on one page, two
    commits, failed cells (one mechanism has nothing else), and FLOPs and cache sizes whose text
    order differs from their numeric order."""
    store = Store.open(path)
    mqar: Results = {
        "mha": (1.2e10, 65536, [0.91, 0.95, 0.93]),
        "gqa": (9e9, 16384, [0.88, 0.9, 0.86]),
        "sliding_window": (4.5e9, 2048, [0.52, 0.55, 0.49]),
        "linear": (3e9, 0, [0.41, 0.47, 0.44]),
        "moba": (2.2e10, 65536, [0.83, 0.81, 0.85]),
        evil: (5e9, 4096, [0.2, 0.3, 0.25]),
    }
    run = store.start_run({**PROVENANCE, "git_sha": "1111111111aaaaaaaaaa"}, "smoke", {})
    write_results(
        store,
        run,
        "mqar",
        "accuracy",
        {
            m: (f * 4, kv, [min(s + 0.04, 1.0) for s in scores])
            for m, (f, kv, scores) in mqar.items()
        },
        budget=4e9,
    )
    write_results(
        store,
        run,
        "lm",
        "perplexity",
        {
            "mha": (8e10, 262144, [21.5, 22.0]),
            "linear": (6e10, 0, [31.0, 30.2]),
            evil: (7e10, 131072, [9.5, 10.1]),
        },
        higher_is_better=False,
    )
    for mechanism, seed in (("linear", 2), ("nsa", 0), ("nsa", 1)):
        failed = CellSpec(
            "lm",
            mechanism,
            "smoke",
            "t",
            {},
            {"num_heads": 1},
            Budget("flops", 1e9),
            seed,
            primary_metric="perplexity",
            higher_is_better=False,
        )
        store.write_cell(run, CellRecord(failed, "failed", error="RuntimeError: loss is NaN"))
    store.finish_run(run, "failed")
    for sha, shift in (("1111111111aaaaaaaaaa", -0.05), ("2222222222bbbbbbbbbb", 0.0)):
        run = store.start_run({**PROVENANCE, "git_sha": sha, "device": f"cpu {evil}"}, "smoke", {})
        write_results(
            store,
            run,
            "mqar",
            "accuracy",
            {m: (f, kv, [s + shift for s in scores]) for m, (f, kv, scores) in mqar.items()},
        )
        store.finish_run(run, "done")
    return store


NEEDLE_LENGTHS, NEEDLE_DEPTHS = (128, 256, 512), (0.0, 25.0, 50.0, 75.0, 100.0)


def needle_scores(mechanism: str, seed: int) -> dict[tuple[int, float], float]:
    """One seed's score (0-100) per (length, depth): `dense` loses a little with length, `streaming`
    loses the middle of long contexts, any other name scores low and has no point at the longest
    length and deepest depth.
    """
    scores = {}
    for li, length in enumerate(NEEDLE_LENGTHS):
        for depth in NEEDLE_DEPTHS:
            if mechanism == "dense":
                scores[length, depth] = 100.0 - 10 * li - 2 * seed
            elif mechanism == "streaming":
                scores[length, depth] = 100.0 - 45 * li * (1 - abs(depth - 50) / 50) - 4 * seed
            elif (length, depth) != (NEEDLE_LENGTHS[-1], NEEDLE_DEPTHS[-1]):
                scores[length, depth] = 10.0 + depth / 5 + 10 * seed
    return scores


def needle_mean(mechanism: str, length: int, depth: float, seeds: int = 2) -> float:
    return sum(needle_scores(mechanism, seed)[length, depth] for seed in range(seeds)) / seeds


def write_needle(
    store: Store,
    run: int,
    mechanism: str,
    seed: int,
    scores: dict[tuple[int, float], float],
    profile: str = "smoke",
) -> None:
    """One finished needle cell: the headline score (the mean over the grid) and a metric per
    grid point."""
    spec = CellSpec(
        "needle",
        mechanism,
        profile,
        "niah_single_1",
        {},
        {"num_heads": 1},
        Budget("flops", 1e9),
        seed,
        primary_metric="score",
    )
    metrics = {
        "score": sum(scores.values()) / len(scores),
        **{metric_name(*point): s for point, s in scores.items()},
    }
    outcome = CellOutcome(metrics, 1e9, 1e9, 10, 100, costs={"kv_cache_bytes": 4096})
    store.write_cell(run, CellRecord(spec, "done", outcome, wall_seconds=2.0))


def populate_needle(path: Path, evil: str) -> Store:
    """Needle-in-a-haystack cells (suite "needle", metric "score" and a `grid/L../D..` metric per
    point) for `dense`, `streaming` and `evil`, two seeds each, plus a failed `streaming` cell; adds
    to a store at `path`.
    """
    store = Store.open(path)
    run = store.start_run({**PROVENANCE, "git_sha": "3333333333cccccccccc"}, "smoke", {})
    for mechanism in ("dense", "streaming", evil):
        for seed in range(2):
            write_needle(store, run, mechanism, seed, needle_scores(mechanism, seed))
    failed = CellSpec(
        "needle",
        "streaming",
        "smoke",
        "niah_single_1",
        {},
        {"num_heads": 1},
        Budget("flops", 1e9),
        2,
        primary_metric="score",
    )
    store.write_cell(run, CellRecord(failed, "failed", error="RuntimeError: out of memory"))
    store.finish_run(run, "failed")
    return store
