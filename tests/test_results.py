"""`attnbench.results.load` options the leaderboards use at scale give the same answers as the
full load."""

from __future__ import annotations

import pandas as pd

from attnbench import results
from attnbench.views import grid, leaderboard
from tests.views.site_data import populate_needle, populate_realistic


def test_latest_only_and_ranking_columns_give_the_same_leaderboard(tmp_path):
    store = populate_realistic(tmp_path / "r.db", "evil")
    full = results.load(store)
    assert full.duplicated(
        ["config_hash", "budget_kind", "budget_value", "seed"]
    ).any()  # re-runs exist
    light = results.load(store, columns=results.RANKING_COLUMNS, latest_only=True)
    expected = leaderboard.latest_per_cell(full)
    assert sorted(light["cell_id"]) == sorted(expected["cell_id"])
    assert leaderboard.to_json(leaderboard.build(light)) == leaderboard.to_json(
        leaderboard.build(full)
    )
    metric_columns = [c for c in full.columns if c not in results.CELL_COLUMNS]
    pd.testing.assert_frame_equal(
        light.set_index("cell_id")[metric_columns].sort_index(),
        expected.set_index("cell_id")[metric_columns].sort_index(),
        check_dtype=False,
    )


def test_grids_are_the_same_from_the_light_load(tmp_path):
    store = populate_needle(tmp_path / "n.db", "evil")
    full = results.load(store)
    light = results.load(store, columns=results.RANKING_COLUMNS, latest_only=True)
    as_dicts = [(g.mechanism, g.as_dict()) for g in grid.grids(full)]
    assert as_dicts and as_dicts == [(g.mechanism, g.as_dict()) for g in grid.grids(light)]


def test_the_site_is_the_same_from_undecoded_cells(tmp_path):
    from attnbench.views.site import render_site

    store = populate_realistic(tmp_path / "r.db", "evil")
    decoded = render_site(results.load(store), results.load_runs(store), tmp_path / "a")
    raw = render_site(results.load(store, decode=False), results.load_runs(store), tmp_path / "b")
    assert [p.name for p in decoded] == [p.name for p in raw]
    assert all(a.read_text() == b.read_text() for a, b in zip(decoded, raw))
    assert "--hparam" in "".join(
        p.read_text() for p in raw
    )  # the reproduce commands read the config
