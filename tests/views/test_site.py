"""The static HTML site: self-contained, escaped, with plots, provenance and reproduce commands."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from attnbench import results
from attnbench.views import grid
from attnbench.views.site import Point, pareto, render_site
from tests.conftest import run_cli
from tests.views.site_data import (
    NEEDLE_DEPTHS,
    NEEDLE_LENGTHS,
    needle_mean,
    populate,
    populate_needle,
)

EVIL = '<script>alert("x")</script>'


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.external, self.scripts = [], 0

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value and re.match(r"^(https?:)?//", value):
                self.external.append(value)
        self.scripts += tag == "script"


def test_site_is_self_contained_and_escaped(tmp_path):
    store = populate(tmp_path / "r.db", EVIL)
    written = render_site(results.load(store), results.load_runs(store), tmp_path / "site")
    assert [p.name for p in written] == ["index.html", "suite-mqar.html"]
    for page in written:
        html = page.read_text()
        parser = Collector()
        parser.feed(html)
        assert parser.external == [] and parser.scripts == 1  # only our own sorting script
        assert EVIL not in html
        assert 'name="viewport"' in html
    suite = written[1].read_text()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in suite
    assert "<svg" in suite and 'class="frontier"' in suite
    assert (
        "attnbench run --suite mqar -m mha --profile smoke --budget 1e+09 --budget-kind flops"
        " --seeds 2" in suite
    )
    assert "git abcabcabc" not in suite and "git abc" in suite


def test_pareto_front():
    points = [Point(1, 0.5, "a"), Point(2, 0.9, "b"), Point(3, 0.8, "c"), Point(0.5, 0.1, "d")]
    assert [p.label for p in pareto(points, higher_is_better=True)] == ["d", "a", "b"]
    assert [
        p.label for p in pareto([Point(1, 1, "x"), Point(2, 0.5, "y")], higher_is_better=False)
    ] == ["x", "y"]


def test_leaderboard_html_option(tmp_path):
    populate(tmp_path / "r.db", EVIL)
    result = run_cli("leaderboard", "--db", str(tmp_path / "r.db"), "--html", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "index.html").exists() and "wrote 2 pages" in result.stderr


class HeatMaps(HTMLParser):
    """Per heat map (an `svg.heat`): its label and its cells as (shown value, fill, tooltip)."""

    def __init__(self) -> None:
        super().__init__()
        self.maps: list[dict] = []
        self.cell: dict | None = None
        self.into: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg" and attrs.get("class") == "heat":
            self.maps.append({"label": attrs["aria-label"], "cells": []})
        elif tag == "g" and attrs.get("class") == "cell":
            self.cell = {"text": "", "title": ""}
        elif tag == "rect" and self.cell is not None:
            self.cell["fill"] = attrs["fill"]
        elif tag in ("text", "title") and self.cell is not None:
            self.into = tag

    def handle_data(self, data):
        if self.into and self.cell is not None:
            self.cell["text" if self.into == "text" else "title"] += data

    def handle_endtag(self, tag):
        if tag in ("text", "title"):
            self.into = None
        elif tag == "g" and self.cell is not None:
            self.maps[-1]["cells"].append(self.cell)
            self.cell = None


def test_needle_page_has_a_heat_map_per_mechanism(tmp_path):
    populate(tmp_path / "r.db", EVIL)
    store = populate_needle(tmp_path / "r.db", EVIL)
    written = render_site(results.load(store), results.load_runs(store), tmp_path / "site")
    assert [p.name for p in written] == ["index.html", "suite-mqar.html", "suite-needle.html"]
    assert "Length x depth" not in written[1].read_text()
    html = written[2].read_text()
    assert (
        "Length x depth" in html
        and EVIL not in html
        and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    )
    parser = HeatMaps()
    parser.feed(html)
    assert [m["label"] for m in parser.maps] == [
        f"{name}: score by context length and needle depth" for name in ("dense", "streaming", EVIL)
    ]
    for heat, mechanism in zip(parser.maps, ("dense", "streaming", EVIL)):
        cells = heat["cells"]
        assert len(cells) == len(NEEDLE_LENGTHS) * len(NEEDLE_DEPTHS)
        points = [
            (length, depth) for depth in NEEDLE_DEPTHS for length in NEEDLE_LENGTHS
        ]  # row by row
        for cell, (length, depth) in zip(cells, points):
            assert cell["title"].startswith(f"{mechanism} · {length} tokens · depth {depth:g}% · ")
            if mechanism == EVIL and (length, depth) == (512, 100):
                assert cell["text"] == "—" and cell["title"].endswith("no result")
            else:
                mean = needle_mean(mechanism, length, depth)
                assert cell["text"] == f"{mean:.0f}" and cell["title"].endswith(f"score {mean:.1f}")
                assert cell["fill"] == grid.hex_colour(mean)
    assert "context length (tokens)" in html and "needle depth (%)" in html
    assert html.count('<stop offset="') == 3 * 3  # a 0-50-100 legend per heat map


def test_an_html_path_that_is_a_file_is_one_clear_error(tmp_path):
    """Found by the CLI fuzz test: `--html` naming an existing file used to raise
    FileExistsError."""
    import pytest

    from attnbench.errors import ConfigError

    store = populate(tmp_path / "r.db", "x")
    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot write the site there"):
        render_site(results.load(store), results.load_runs(store), tmp_path / "taken")


def _reproduce(suite: str, task_config: dict, hparams: dict | None = None) -> list[str]:
    import shlex

    import pandas as pd

    from attnbench.views.site import reproduce_command

    cell = pd.Series(
        {
            "suite": suite,
            "mechanism": "mha",
            "profile": "smoke",
            "budget_value": 1e9,
            "budget_kind": "flops",
        }
    )
    return shlex.split(
        reproduce_command(cell, {"task_config": task_config, "hparams": hparams or {}}, 2)
    )


def test_reproduce_commands_carry_the_task_settings_a_run_changed():
    from attnbench.registry import SUITES

    default = dict(SUITES.get("mqar").tasks("smoke")[0].config)
    assert "--set" not in _reproduce("mqar", default)
    changed = _reproduce(
        "mqar", {**default, "seq_len": 64, "learning_rates": [0.01]}, {"window": "a b"}
    )
    assert (
        changed[changed.index("--set") + 1] == "learning_rates=[0.01]" and "seq_len=64" in changed
    )
    assert "window='a b'" in changed
    pretrained = _reproduce(
        "longbench", {"model": "/ckpt/llama", "backend": "lm-eval", "variant": "longbench"}
    )
    assert pretrained[pretrained.index("--model") + 1] == "/ckpt/llama"
    assert pretrained[pretrained.index("--backend") + 1] == "lm-eval"
    foreign = _reproduce("not-installed-here", {"model": "m", "seq_len": 3})
    assert "--set" not in foreign and foreign[foreign.index("--model") + 1] == "m"
