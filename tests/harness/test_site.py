"""The static HTML site: self-contained, escaped, with plots, provenance and reproduce commands."""
from __future__ import annotations

import re
from html.parser import HTMLParser

from attnbench import results
from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellRecord, CellSpec
from attnbench.leaderboard import LeaderboardRow
from attnbench.site import Point, pareto, render_site
from attnbench.store import Store
from tests.conftest import run_cli
from tests.harness.test_store import PROVENANCE

EVIL = '<script>alert("x")</script>'


def populate(path) -> Store:
    store = Store.open(path)
    run = store.start_run({**PROVENANCE, "device": f"cpu {EVIL}"}, "smoke", {})
    for mechanism, flops, kv, scores in (("mha", 4e9, 8192, [0.9, 0.95]), ("linear", 3e9, 0, [0.4, 0.5]),
                                         (EVIL, 5e9, 4096, [0.2, 0.3])):
        for seed, score in enumerate(scores):
            spec = CellSpec("mqar", mechanism, "smoke", "t", {}, {"num_heads": 1}, Budget("flops", 1e9), seed,
                            primary_metric="accuracy")
            outcome = CellOutcome({"accuracy": score}, 1e9, flops, 10, 100, costs={"kv_cache_bytes": kv})
            store.write_cell(run, CellRecord(spec, "done", outcome))
    store.finish_run(run, "done")
    return store


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
    store = populate(tmp_path / "r.db")
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
    assert "attnbench run --suite mqar -m mha --profile smoke --budget 1e+09 --budget-kind flops --seeds 2" in suite
    assert "git abcabcabc" not in suite and "git abc" in suite


def test_pareto_front():
    points = [Point(1, 0.5, "a"), Point(2, 0.9, "b"), Point(3, 0.8, "c"), Point(0.5, 0.1, "d")]
    assert [p.label for p in pareto(points, higher_is_better=True)] == ["d", "a", "b"]
    assert [p.label for p in pareto([Point(1, 1, "x"), Point(2, 0.5, "y")], higher_is_better=False)] == ["x", "y"]


def test_leaderboard_html_option(tmp_path):
    populate(tmp_path / "r.db")
    result = run_cli("leaderboard", "--db", str(tmp_path / "r.db"), "--html", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "index.html").exists() and "wrote 2 pages" in result.stderr
