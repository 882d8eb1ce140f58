"""`attnbench history`: one mechanism's primary metric over the commits the store has seen."""

from __future__ import annotations

import json

import click

from attnbench.cli.options import db_option, open_for_reading


@click.command("history")
@click.option("--suite", "-s", required=True)
@click.option("--mechanism", "-m", required=True)
@click.option("--profile", default=None, help="Default: the profile of the latest cell.")
@click.option("--budget", type=float, default=None, help="Default: the budget of the latest cell.")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def history_command(suite, mechanism, profile, budget, db, as_json) -> int:
    """The primary metric over the git history of runs: a sparkline and a point per commit.

    \b
    attnbench history --suite mqar --mechanism mha
    """
    from attnbench import results
    from attnbench.views.history import history, sparkline

    store = open_for_reading(db)
    metric, points, chosen = history(
        results.load(store), results.load_runs(store), suite, mechanism, profile, budget
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "suite": suite,
                    "mechanism": mechanism,
                    "metric": metric,
                    **chosen,
                    "points": [
                        {
                            "git_sha": p.git_sha,
                            "dirty": p.dirty,
                            "first_run": str(p.first_run),
                            "mean": p.mean,
                            "n_cells": p.n_cells,
                        }
                        for p in points
                    ],
                },
                indent=2,
            )
        )
        return 0
    from attnbench.views.console import print_history

    print_history(suite, mechanism, metric, chosen, points, sparkline([p.mean for p in points]))
    return 0
