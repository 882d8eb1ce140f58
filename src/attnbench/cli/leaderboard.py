"""`attnbench leaderboard`: the ranking tables, in the terminal, as JSON or Markdown, and the
static site."""

from __future__ import annotations

import click

from attnbench.cli.options import db_option, open_for_reading, writing
from attnbench.errors import UnknownNameError


@click.command("leaderboard")
@click.option("--suite", "-s", default=None, help="Only this suite.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "markdown"]),
    default="table",
    show_default=True,
)
@click.option(
    "--html",
    "html_dir",
    default=None,
    metavar="DIR",
    help="Also render the static, self-contained HTML site into DIR.",
)
@db_option
def leaderboard_command(suite: str | None, fmt: str, html_dir: str | None, db: str | None) -> int:
    """Rank mechanisms: primary metric mean and 95% interval over seeds, with costs.

    Suites that score over context lengths and depths (needle) also get a length x depth grid per
    mechanism.

    \b
    attnbench leaderboard
    attnbench leaderboard --suite mqar --format json
    attnbench leaderboard --html site/
    """
    from attnbench import results
    from attnbench.views import grid, leaderboard

    store = open_for_reading(db)
    cells = (
        results.load(store, decode=False)
        if html_dir
        else results.load(store, columns=results.RANKING_COLUMNS, latest_only=True)
    )
    if suite is not None and suite not in set(cells["suite"]):
        from attnbench.registry import SUITES

        if suite not in SUITES.names():
            raise UnknownNameError(SUITES.unknown_message(suite))
    if html_dir:
        from attnbench.views.site import render_site

        with writing(html_dir, "--html"):
            written = render_site(
                cells if suite is None else cells[cells["suite"] == suite],
                results.load_runs(store),
                html_dir,
            )
        click.echo(f"wrote {len(written)} pages to {html_dir} (open {written[0]})", err=True)
    rows = leaderboard.build(cells, suite=suite)
    grids = grid.grids(cells, suite=suite, rows=rows)
    if fmt == "json":
        click.echo(grid.leaderboard_json(rows, grids))
    elif fmt == "markdown":
        click.echo(grid.leaderboard_markdown(rows, grids))
    else:
        from attnbench.views.console import print_leaderboard

        print_leaderboard(rows, grids)
    return 0
