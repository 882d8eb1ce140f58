"""Length x depth grids: metric names, the mean grid per leaderboard table and mechanism, and its
views (the terminal leaderboard, JSON and Markdown)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnbench import results
from attnbench.budget import Budget
from attnbench.cell import CellRecord, CellSpec
from attnbench.metric_names import grid_metric, parse_grid_metric
from attnbench.store.database import Store
from attnbench.views import grid
from attnbench.views.leaderboard import build
from tests.conftest import run_cli
from tests.store.test_database import PROVENANCE
from tests.views.site_data import (
    NEEDLE_DEPTHS,
    NEEDLE_LENGTHS,
    needle_mean,
    needle_scores,
    populate,
    populate_needle,
    write_needle,
)

EVIL = "<script>alert(1)</script>"


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**7), st.integers(0, 10_000).map(lambda hundredths: hundredths / 100))
def test_metric_name_round_trips(length, depth):
    assert parse_grid_metric(grid_metric(length, depth)) == (length, depth)


@pytest.mark.parametrize(
    "name",
    [
        "score",
        "score_within_train",
        "grid",
        "grid/L128",
        "grid/L128/D",
        "grid/Lx/D5",
        "grid/L128/D5/extra",
        "xgrid/L128/D5",
        "grid/D5/L128",
    ],
)
def test_other_metrics_are_not_grid_points(name):
    assert parse_grid_metric(name) is None
    assert grid.grid_columns([name, "grid/L8/D50", 3]) == ["grid/L8/D50"]


def test_mean_grid_skips_missing_points():
    cells = pd.DataFrame(
        {
            "grid/L8/D0": [10.0, 30.0],
            "grid/L16/D0": [math.nan, 50.0],
            "grid/L8/D50": [math.nan] * 2,
            "score": [1.0, 2.0],
        }
    )
    scores = grid.mean_grid(cells)
    assert list(scores.index) == [0.0] and list(scores.columns) == [
        8,
        16,
    ]  # depth 50 has no value at all
    assert scores.loc[0.0, 8] == 20 and scores.loc[0.0, 16] == 50
    assert grid.mean_grid(cells[["score"]]).empty


@pytest.fixture
def store(tmp_path) -> Store:
    populate(tmp_path / "r.db", EVIL)  # MQAR cells, which have no grid
    return populate_needle(tmp_path / "r.db", EVIL)


def test_grids_are_mean_over_seeds_in_leaderboard_order(store):
    cells = results.load(store)
    found = grid.grids(cells)
    assert [g.mechanism for g in found] == ["dense", "streaming", EVIL]
    assert [r.mechanism for r in build(cells, suite="needle")] == ["dense", "streaming", EVIL]
    for g in found:
        assert g.key == (
            "needle",
            "smoke",
            "flops",
            1e9,
            "",
        )  # needle averages its tasks: no per-task table
        assert g.lengths == list(NEEDLE_LENGTHS) and g.depths == list(NEEDLE_DEPTHS)
        assert g.n_cells == 2  # the failed `streaming` cell counts for nothing
        for depth, row in zip(g.depths, g.rows()):
            for length, value in zip(g.lengths, row):
                if g.mechanism == EVIL and (length, depth) == (512, 100):
                    assert math.isnan(value)
                else:
                    assert value == pytest.approx(needle_mean(g.mechanism, length, depth))
    assert grid.grids(cells, suite="mqar") == [] and grid.grids(cells.iloc[0:0]) == []
    assert [g.mechanism for g in grid.grids(cells, suite="needle")] == ["dense", "streaming", EVIL]


def test_a_rerun_replaces_the_earlier_cell_and_a_failed_rerun_drops_it(store):
    run = store.start_run(PROVENANCE, "smoke", {})
    write_needle(store, run, "dense", 0, {point: 0.0 for point in needle_scores("dense", 0)})
    failed = CellSpec(
        "needle",
        "streaming",
        "smoke",
        "niah_single_1",
        {},
        {"num_heads": 1},
        Budget("flops", 1e9),
        1,
        primary_metric="score",
    )
    store.write_cell(run, CellRecord(failed, "failed", error="RuntimeError: loss is NaN"))
    store.finish_run(run, "done")
    found = {g.mechanism: g for g in grid.grids(results.load(store))}
    dense = found["dense"].scores
    assert dense.loc[50.0, 128] == pytest.approx(
        needle_scores("dense", 1)[128, 50.0] / 2
    )  # 0 and seed 1's score
    assert found["streaming"].n_cells == 1
    assert found["streaming"].scores.loc[50.0, 512] == needle_scores("streaming", 0)[512, 50.0]


def test_colours_run_red_yellow_green_and_missing_is_grey():
    red, yellow, green = grid.colour(0), grid.colour(50), grid.colour(100)
    assert red[0] > red[1] and yellow[0] > 200 and yellow[1] > 200 and green[1] > green[0]
    assert grid.colour(-5) == red and grid.colour(250) == green
    assert grid.colour(math.nan) == grid.MISSING_COLOUR
    assert grid.hex_colour(100) == "#%02x%02x%02x" % green
    assert grid.show(79.6) == "80" and grid.show(math.nan) == "—"


def test_json_rows_carry_their_grid(store):
    cells = results.load(store)
    records = json.loads(grid.leaderboard_json(build(cells), grid.grids(cells)))
    assert {r["suite"] for r in records if r["grid"] is None} == {"mqar"}
    evil = next(r for r in records if r["suite"] == "needle" and r["mechanism"] == EVIL)
    assert evil["grid"]["lengths"] == [128, 256, 512] and evil["grid"]["depths"] == [
        0,
        25,
        50,
        75,
        100,
    ]
    assert evil["grid"]["scores"][-1][-1] is None and evil["grid"]["scores"][0][0] == needle_mean(
        EVIL, 128, 0
    )


def test_markdown_has_a_table_per_mechanism_after_its_leaderboard(store):
    cells = results.load(store)
    text = grid.leaderboard_markdown(build(cells), grid.grids(cells))
    assert text.index("### needle") < text.index("#### Length x depth") and "### mqar" in text
    assert text.count("| depth % \\ length | 128 | 256 | 512 |") == 3
    assert "| 50 | 98 | 53 | 8 |" in text  # streaming loses the middle of the longest context
    assert "| 100 | 35 | 35 | — |" in text and "**&lt;script>alert(1)&lt;/script>**" in text


def test_leaderboard_command_prints_the_grids(store, tmp_path):
    db = str(tmp_path / "r.db")
    table = run_cli("leaderboard", "--db", db)
    assert table.returncode == 0, table.stderr
    out = table.stdout
    assert out.index("needle · profile smoke") < out.index("length x depth")
    assert out.count("D% \\ L") == 3 and "dense" in out and "streaming" in out and EVIL in out
    lines = out.splitlines()
    block = next(i for i, line in enumerate(lines) if "length x depth" in line)
    assert lines[block + 1].split() == ["dense", "streaming", EVIL]
    assert lines[block + 5].split() == [
        "50",
        "99",
        "89",
        "79",
        "50",
        "98",
        "53",
        "8",
        "50",
        "25",
        "25",
        "25",
    ]
    assert lines[block + 7].split()[-4:] == ["100", "35", "35", "—"]
    as_json = run_cli("leaderboard", "--db", db, "--suite", "needle", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    records = json.loads(as_json.stdout)
    assert [r["mechanism"] for r in records] == ["dense", "streaming", EVIL]
    assert all(len(r["grid"]["scores"]) == 5 and len(r["grid"]["scores"][0]) == 3 for r in records)
    markdown = run_cli("leaderboard", "--db", db, "--format", "markdown")
    assert markdown.returncode == 0 and markdown.stdout.count("| depth % \\ length |") == 3
