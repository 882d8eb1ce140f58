"""`attnbench list`: what is registered, read from package metadata (or imported with --load)."""

from __future__ import annotations

import json

import click


@click.command("list")
@click.argument("what", type=click.Choice(["mechanisms", "suites", "groups"]))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--load",
    is_flag=True,
    help="Import every plug-in to show its kind and details (imports torch).",
)
def list_command(what: str, as_json: bool, load: bool) -> int:
    """List registered mechanisms, suites or suite groups.

    \b
    attnbench list mechanisms
    attnbench list suites --load --json
    """
    from attnbench.views.listing import list_groups, list_plugins

    rows = list_groups() if what == "groups" else list_plugins(what, load)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    from attnbench.views.console import print_rows

    print_rows(what, rows)
    return 0
