"""Which cells share a leaderboard table: a suite's tasks are averaged, unless the suite ranks per
task (LongBench: one model through one backend per task; needle: one model; averaging two ranks
nothing).
"""

from __future__ import annotations

import pandas as pd

from attnbench.views.leaderboard import build, tables, title


def _cells(suite: str, metric: str, scores: dict[tuple[str, str], float]) -> pd.DataFrame:
    rows = []
    for index, ((task, mechanism), value) in enumerate(scores.items()):
        rows.append(
            {
                "cell_id": index,
                "suite": suite,
                "profile": "smoke",
                "budget_kind": "tokens",
                "budget_value": 1000.0,
                "mechanism": mechanism,
                "task": task,
                "seed": 0,
                "status": "done",
                "config_hash": f"h{index}",
                "primary_metric": metric,
                "higher_is_better": True,
                metric: value,
                "flops_used": 0.0,
                "params": 1.0,
                "wall_seconds": 1.0,
                "peak_memory_bytes": 1.0,
            }
        )
    return pd.DataFrame(rows)


def test_longbench_ranks_each_model_and_backend_in_its_own_table():
    cells = _cells(
        "longbench",
        "score",
        {
            ("longbench-llama", "dense"): 40.0,
            ("longbench-llama", "streaming"): 30.0,
            ("longbench-lm-eval-llama", "dense"): 10.0,
            ("longbench-lm-eval-llama", "streaming"): 20.0,
        },
    )
    grouped = tables(build(cells))
    assert [key[-1] for key in grouped] == ["longbench-llama", "longbench-lm-eval-llama"]
    native, lm_eval = grouped.values()
    assert [(r.mechanism, r.mean) for r in native] == [("dense", 40.0), ("streaming", 30.0)]
    assert [(r.mechanism, r.mean) for r in lm_eval] == [("streaming", 20.0), ("dense", 10.0)]
    assert (
        title(next(iter(grouped)))
        == "longbench · longbench-llama · profile smoke · budget 1e+03 tokens"
    )


def test_a_suite_that_does_not_rank_per_task_averages_its_tasks():
    cells = _cells("mqar", "accuracy", {("L32", "mha"): 1.0, ("L64", "mha"): 0.5})
    [row] = build(cells)
    assert row.mean == 0.75 and row.n_tasks == 2 and row.table_task == ""


def test_a_suite_not_installed_here_averages_its_tasks():
    cells = _cells("someone-elses-suite", "score", {("a", "m"): 1.0, ("b", "m"): 3.0})
    [row] = build(cells)
    assert row.mean == 2.0 and row.table_task == ""


def test_needle_ranks_pretrained_cells_per_model_and_averages_its_tasks():
    cells = _cells(
        "needle",
        "score",
        {
            ("niah_single_1-llama", "dense"): 80.0,
            ("niah_multikey_1-llama", "dense"): 60.0,
            ("niah_single_1-qwen", "dense"): 10.0,
            ("niah_single_1-scratch-T256", "mha"): 50.0,
            ("niah_multikey_1-scratch-T256", "mha"): 30.0,
        },
    )
    by_table = {key[-1]: rows for key, rows in tables(build(cells)).items()}
    assert sorted(by_table) == ["", "llama", "qwen"]
    assert [(r.mechanism, r.mean, r.n_tasks) for r in by_table["llama"]] == [("dense", 70.0, 2)]
    assert [(r.mechanism, r.mean) for r in by_table["qwen"]] == [("dense", 10.0)]
    assert [(r.mechanism, r.mean, r.n_tasks) for r in by_table[""]] == [("mha", 40.0, 2)]


def test_history_follows_the_latest_cells_table_only():
    from attnbench.views.history import history

    cells = _cells(
        "longbench",
        "score",
        {
            ("longbench-llama", "dense"): 40.0,
            ("longbench-qwen", "dense"): 10.0,
            ("longbench-qwen", "streaming"): 5.0,
        },
    )
    cells = cells.assign(run_id=1, seed=0)
    runs = pd.DataFrame(
        {
            "run_id": [1],
            "git_sha": ["abc"],
            "git_dirty": [False],
            "started_at": [pd.Timestamp("2026-11-29")],
        }
    )
    metric, points, chosen = history(cells, runs, "longbench", "dense")
    assert chosen["table_task"] == "longbench-qwen" and [p.mean for p in points] == [10.0]
