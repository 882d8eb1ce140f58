"""`attnbench export` and `attnbench import`: results as one flat file, and back."""

from __future__ import annotations

import click

from attnbench.cli.options import db_option, open_for_reading, writing


@click.command("export")
@click.argument("out")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv", "json"]),
    default=None,
    help="Default: from OUT's extension.",
)
@db_option
def export_command(out: str, fmt: str | None, db: str | None) -> int:
    """Write every run, cell and metric to one file (a row per cell and metric).

    \b
    attnbench export results/baseline.parquet
    attnbench export cells.csv --db sqlite:///other.db
    """
    from attnbench.store.transfer import export_file

    store = open_for_reading(db)
    with writing(out, "export to"):
        count = export_file(store, out, fmt)
    click.echo(f"exported {count} cells to {out}")
    return 0


@click.command("import")
@click.argument("source")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv", "json"]),
    default=None,
    help="Default: from SOURCE's extension.",
)
@db_option
def import_command(source: str, fmt: str | None, db: str | None) -> int:
    """Add the runs of an exported file to a database (runs it already holds are skipped).

    \b
    attnbench import results/baseline.parquet --db sqlite:///baseline.db
    """
    from attnbench.store.database import Store
    from attnbench.store.transfer import import_frame, read_file

    frame = read_file(source, fmt)  # every column checked before a database is created or touched
    runs, cells = import_frame(Store.open(db), frame)
    click.echo(f"imported {runs} runs and {cells} cells from {source}")
    return 0
