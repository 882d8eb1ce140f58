"""`attnbench bench`: measured kernel benchmarks; parses and prints, `attnbench.run.benchmark` does
the work.

Kept free of torch at import time, like the rest of the CLI.
"""

from __future__ import annotations

import os

import click

from attnbench.cli.options import db_option

EXIT_BAD_INPUT = 2


@click.group("bench")
def bench() -> None:
    """Benchmark kernels on this machine's GPU; the figures go to the store like any run.

    \b
    attnbench bench kernels                           L = 1K..128K, every kernel, bf16
    attnbench bench kernels -m moba -L 32768 -L 131072
    """


@bench.command("kernels")
@click.option(
    "--mechanism",
    "-m",
    "mechanisms",
    multiple=True,
    help="Only these mechanisms (default: moba, sliding_window, dma, lightning, linear).",
)
@click.option(
    "--length",
    "-L",
    "lengths",
    multiple=True,
    type=int,
    help="Only these sequence lengths (default: all).",
)
@click.option("--device", default="cuda", show_default=True, help="The CUDA device to measure on.")
@click.option(
    "--interpret",
    is_flag=True,
    help=(
        "Without a GPU: run the smoke profile through Triton's interpreter on the CPU (toy shapes;"
        " checks the pipeline, the figures mean nothing)."
    ),
)
@click.option(
    "--export",
    "export_path",
    default=None,
    metavar="FILE.parquet",
    help="Also write this run's cells to a Parquet file (e.g. results/kernels-h100.parquet).",
)
@db_option
def kernels_command(mechanisms, lengths, device, interpret, export_path, db) -> int:
    """Kernel vs SDPA (flash) and FlexAttention: forward and forward+backward latency, TFLOP/s, peak
    memory.

    Stored as suite `kernels` (see `attnbench leaderboard --suite kernels`), with the device name,
    clocks and dense bf16 peak in each cell's details. Exits 2 without a CUDA GPU unless --interpret
    is given.
    """
    if interpret:
        # Read when the kernels are decorated, so it must be set before they are imported.
        os.environ["TRITON_INTERPRET"] = "1"
    import torch

    from attnbench.run.benchmark import (
        NEEDS_GPU,
        export_run,
        plan_benchmark,
        run_benchmark,
        summary_rows,
    )

    if not interpret and not torch.cuda.is_available():
        click.echo(f"attnbench: error: {NEEDS_GPU}", err=True)
        return EXIT_BAD_INPUT
    from attnbench.store.database import Store
    from attnbench.views.console import RichReporter, print_plan

    plan = plan_benchmark(
        tuple(mechanisms),
        tuple(lengths),
        "cpu" if interpret else device,
        "smoke" if interpret else "paper",
    )
    store = Store.open(db)
    print_plan(plan, store.url)
    reporter = RichReporter()
    with reporter:
        summary = run_benchmark(plan, store, reporter=reporter)
    rows = summary_rows(summary)
    titles = list(rows[0]) if rows else []
    for row in [dict(zip(titles, titles)), *rows]:
        click.echo("  ".join(f"{row.get(t, ''):>11}" for t in titles))
    if export_path:
        cells = export_run(store, summary.run_id, export_path)
        click.echo(f"wrote {cells} cells to {export_path}")
    return 0 if summary.ok else 1
