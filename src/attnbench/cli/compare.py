"""`attnbench compare`: the CI gate, current results against a baseline."""

from __future__ import annotations

import json

import click

from attnbench.cli.options import open_for_reading, writing


@click.command("compare")
@click.option(
    "--baseline",
    required=True,
    help="Database URL or path, or an exported .parquet/.csv/.json file.",
)
@click.option(
    "--db",
    default=None,
    help="The current results (default: $ATTNBENCH_DB or results/attnbench.db).",
)
@click.option(
    "--tolerance",
    type=float,
    default=0.02,
    show_default=True,
    help="Relative change a significant regression must exceed to fail.",
)
@click.option(
    "--markdown",
    "markdown_path",
    default=None,
    help="Also append a Markdown summary to this file (PR comment, CI summary).",
)
@click.option(
    "--allow-missing",
    is_flag=True,
    help=(
        "Pass when baseline cells have no match (or nothing matches); by default that fails the"
        " gate."
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def compare_command(
    baseline: str,
    db: str | None,
    tolerance: float,
    markdown_path: str | None,
    allow_missing: bool,
    as_json: bool,
) -> int:
    """Compare current results with a baseline; exit 1 on a significant regression beyond the
    tolerance, or when baseline cells have no match in the current results (a changed default
    changes every config hash).

    \b
    attnbench compare --baseline results/baseline.parquet
    attnbench compare --baseline sqlite:///main.db --tolerance 0.05
    attnbench compare --baseline results/baseline.parquet --markdown "$GITHUB_STEP_SUMMARY"
    attnbench compare --baseline results/baseline.parquet --allow-missing
    """
    from attnbench import results
    from attnbench.views.compare import (
        as_records,
        compare,
        load_source,
        outcome,
        to_markdown,
        unmatched,
    )

    base = load_source(baseline)
    current = results.load(open_for_reading(db))
    comparisons = compare(base, current, tolerance)
    missing = unmatched(base, current)
    if markdown_path:
        with writing(markdown_path, "--markdown"):
            with open(markdown_path, "a", encoding="utf-8") as out:
                out.write(to_markdown(comparisons, tolerance, missing, allow_missing))
    if as_json:
        click.echo(
            json.dumps(
                {"comparisons": as_records(comparisons), "unmatched": [vars(m) for m in missing]},
                indent=2,
            )
        )
    else:
        from attnbench.views.console import print_comparisons, print_unmatched

        print_comparisons(comparisons, tolerance)
        print_unmatched(missing, allow_missing)
    return outcome(comparisons, missing, allow_missing)
