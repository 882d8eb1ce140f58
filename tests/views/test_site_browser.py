"""The static site in a real headless Chromium (Debian's, driven by Playwright): sorting, plots,
heat maps, escaping, no console errors, phone width, and a screenshot of each page for people to
look at."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from attnbench import results
from attnbench.views.site import render_site
from tests.views.site_data import NEEDLE_DEPTHS, NEEDLE_LENGTHS, populate_needle, populate_realistic

EVIL = "<script>alert(1)</script>"
CHROMIUM = os.environ.get("ATTNBENCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Headless as root, and none of the background connections that a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 375, "height": 740}

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs the Python package playwright (pip install -e '.[dev]')"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    populate_realistic(root / "r.db", EVIL)
    store = populate_needle(root / "r.db", EVIL)
    render_site(results.load(store), results.load_runs(store), root / "site")
    return root / "site"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def server(site):
    """The site over http from localhost, on a free port, as a publisher would serve it."""
    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"needs Chromium at {CHROMIUM} (apt-get install chromium, or set ATTNBENCH_CHROMIUM)"
        )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """A loaded page with everything that went wrong on it: console errors, page errors, dialogs,
    requests that left the site."""

    def __init__(self, browser, url: str, viewport: dict, origin: str) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.outside: list[str] = []
        self.page.on(
            "console",
            lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("dialog", self._dialog)
        self.page.on(
            "request", lambda r: None if r.url.startswith(origin) else self.outside.append(r.url)
        )
        self.page.goto(url, wait_until="load")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def column(self, table, index: int) -> list[str]:
        return [
            td.inner_text() for td in table.locator(f"tbody tr td:nth-child({index + 1})").all()
        ]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser, server):
    pages = []

    def open_(name: str, viewport: dict = DESKTOP, base: str | None = None) -> Page:
        page = Page(browser, f"{base or server}/{name}", viewport, base or server)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        assert page.errors == [] and page.dialogs == [] and page.outside == [], page.page.url
        page.close()


def site_pages(site: Path) -> list[str]:
    return sorted(p.name for p in site.glob("*.html"))


def test_site_has_the_pages_the_data_asks_for(site):
    assert site_pages(site) == [
        "index.html",
        "suite-lm.html",
        "suite-mqar.html",
        "suite-needle.html",
    ]


@pytest.mark.parametrize(
    "name", ["index.html", "suite-lm.html", "suite-mqar.html", "suite-needle.html"]
)
def test_page_loads_clean_and_shows_the_evil_name_as_text(open_page, name):
    page = open_page(name)
    body = page.page.locator("body").inner_text()
    assert (
        EVIL in body
    )  # shown as literal text; the fixture asserts that no alert fired and nothing errored
    assert page.page.locator("script").count() == 1
    nav = page.page.locator("nav a")
    assert nav.all_inner_texts() == ["overview", "lm", "mqar", "needle"]


def headers(table) -> list[str]:
    return [th.inner_text().rstrip(" ▲▼") for th in table.locator("thead th").all()]


def as_number(text: str, units: dict[str, float]) -> float:
    for unit, scale in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


SI = {"G": 1e9, "M": 1e6, "k": 1e3}
BYTES = {" GiB": 2**30, " MiB": 2**20, " KiB": 2**10, " B": 1}


def test_clicking_a_header_sorts_numerically_then_reverses(open_page):
    page = open_page("suite-mqar.html")
    tables = page.page.locator("table.sortable")
    assert tables.count() == 2
    for t in range(2):  # the second table on the page sorts by its own columns too
        table = tables.nth(t)
        names = headers(table)
        for column, units in (("FLOPs", SI), ("KV kept", BYTES), ("accuracy ↑", {})):
            index = names.index(column)
            header = table.locator("thead th").nth(index)
            header.click()
            ascending = [as_number(v, units) for v in page.column(table, index)]
            assert ascending == sorted(ascending) and len(set(ascending)) > 2, (column, ascending)
            assert header.get_attribute("aria-sort") == "ascending"
            header.click()
            descending = [as_number(v, units) for v in page.column(table, index)]
            assert descending == sorted(ascending, reverse=True), (column, descending)
            assert header.get_attribute("aria-sort") == "descending"
        mechanism = table.locator("thead th").nth(names.index("mechanism"))
        mechanism.click()
        shown = page.column(table, names.index("mechanism"))
        assert shown == sorted(shown) and EVIL in shown


def test_rank_sorts_unranked_rows_last(open_page):
    page = open_page("suite-lm.html")
    table = page.page.locator("table.sortable")
    rank = table.locator("thead th").nth(0)
    rank.click()
    assert page.column(table, 0) == ["1", "2", "3", "—"]
    rank.click()
    assert page.column(table, 0) == ["3", "2", "1", "—"]
    names = headers(table)
    lower_better = table.locator("thead th").nth(names.index("perplexity ↓"))
    lower_better.click()
    assert page.column(table, names.index("mechanism"))[0] == EVIL  # the best perplexity


def test_index_table_sorts(open_page):
    page = open_page("index.html")
    table = page.page.locator("table.sortable")
    names = headers(table)
    rank = table.locator("thead th").nth(names.index("mean rank"))
    rank.click()
    rank.click()
    values = [float(v) for v in page.column(table, names.index("mean rank"))]
    assert values == sorted(values, reverse=True) and len(set(values)) > 1


def test_plots_render_with_points(open_page):
    page = open_page("suite-mqar.html")
    plots = page.page.locator("figure svg")
    assert plots.count() == 4 + 6  # two Pareto plots per table, one history line per mechanism
    for i in range(plots.count()):
        plot = plots.nth(i)
        box = plot.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50
        circles = plot.locator("circle")
        assert circles.count() >= 2
        inside = 0
        for c in range(circles.count()):
            point = circles.nth(c).bounding_box()
            assert point and point["width"] > 0
            inside += (
                box["x"] <= point["x"] <= box["x"] + box["width"]
                and box["y"] <= point["y"] <= box["y"] + box["height"]
            )
        assert inside == circles.count()
    assert page.page.locator("svg polyline.frontier").count() == 10
    labels = page.page.locator("figure svg text").all_text_contents()
    assert EVIL in labels


def test_heat_maps_render_a_coloured_cell_per_point(open_page):
    page = open_page("suite-needle.html")
    maps = page.page.locator("section.heatmaps svg.heat")
    assert maps.count() == 3
    captions = page.page.locator("section.heatmaps figcaption strong").all_inner_texts()
    assert captions == ["dense", "streaming", EVIL]  # best first, the evil name as text
    for i in range(maps.count()):
        heat = maps.nth(i)
        box = heat.bounding_box()
        assert box and box["width"] > 150 and box["height"] > 150
        cells = heat.locator("g.cell rect")
        assert cells.count() == len(NEEDLE_LENGTHS) * len(NEEDLE_DEPTHS)
        for c in range(cells.count()):
            cell = cells.nth(c).bounding_box()
            assert cell and cell["width"] > 20 and cell["height"] > 10
            assert box["x"] <= cell["x"] and cell["x"] + cell["width"] <= box["x"] + box["width"]
        fills = {
            cells.nth(c).evaluate("r => getComputedStyle(r).fill") for c in range(cells.count())
        }
        assert len(fills) > 1  # every mechanism's score changes over the grid
        values = heat.locator("g.cell text").all_text_contents()
        assert all(v == "—" or 0 <= int(v) <= 100 for v in values)
    middle = (
        maps.nth(1).locator("g.cell").nth(2 * len(NEEDLE_LENGTHS) + 2)
    )  # streaming, depth 50, length 512
    assert middle.locator("text").text_content() == "8"
    assert (
        middle.locator("title").text_content() == "streaming · 512 tokens · depth 50% · score 8.0"
    )


@pytest.mark.parametrize(
    "name", ["index.html", "suite-lm.html", "suite-mqar.html", "suite-needle.html"]
)
def test_phone_width_has_no_horizontal_overflow(open_page, name):
    page = open_page(name, PHONE)
    width = page.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    # a wide table scrolls inside its own wrapper instead of widening the page
    wrappers = page.page.evaluate("""Array.from(document.querySelectorAll('table')).map(t => {
        const w = t.parentElement; return [w.className, getComputedStyle(w).overflowX]; })""")
    assert wrappers and all(w == ["scroll", "auto"] for w in wrappers), wrappers
    for plot in page.page.locator("figure svg").all():
        box = plot.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]


def test_opens_offline_from_file(open_page, site):
    for name in site_pages(site):
        page = open_page(name, base=site.as_uri())
        assert EVIL in page.page.locator("body").inner_text()
        table = page.page.locator("table.sortable").first
        table.locator("thead th").nth(1).click()
        shown = page.column(table, 1)
        assert shown == sorted(shown)


def test_screenshots(open_page, tmp_path):
    shots = []
    for viewport, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
        for name in ("index.html", "suite-mqar.html", "suite-needle.html"):
            path = tmp_path / f"{Path(name).stem}-{label}.png"
            open_page(name, viewport).page.screenshot(path=str(path), full_page=True)
            assert path.stat().st_size > 10_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            shots.append(path)
    if os.environ.get("ATTNBENCH_SCREENSHOT_DIR"):
        out = Path(os.environ["ATTNBENCH_SCREENSHOT_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, out / shot.name)
