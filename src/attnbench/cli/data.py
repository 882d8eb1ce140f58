"""`attnbench data`: check a data set on disk, or fetch it."""

from __future__ import annotations

import click


@click.command("data")
@click.argument("dataset", type=click.Choice(["eurosat"]))
@click.option(
    "--root", required=True, metavar="DIR", help="The folder that holds the data, or will."
)
@click.option(
    "--bands",
    type=click.Choice(["rgb", "all"]),
    default="rgb",
    show_default=True,
    help="rgb: torchvision's RGB JPEGs; all: torchgeo's 13-band GeoTIFFs.",
)
@click.option("--download", is_flag=True, help="Download, check (md5) and unpack what is missing.")
def data_command(dataset: str, root: str, bands: str, download: bool) -> int:
    """Check a data set on disk: what is there (images per class and split), or exactly how to get
    it.

    Exits 0 when the data is there and every image reads, 1 when it is missing (the steps to get it
    are printed), 2 when a copy is damaged (a missing class folder, a corrupt image) or a download
    fails.

    \b
    attnbench data eurosat --root data/
    attnbench data eurosat --root data/ --bands all --download
    """
    from attnbench.suites.eurosat import data

    if download:
        for path in data.download(root, bands):
            click.echo(f"have {path}", err=True)
    elif not data.layout(root, bands).exists():
        click.echo(data.how_to_get(root, bands))
        return 1
    click.echo(data.describe(data.inventory(root, bands)))
    return 0
