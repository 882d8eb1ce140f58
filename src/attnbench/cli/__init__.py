"""The `attnbench` command: one module per command group, registered here; each parses, calls the
library and prints.

Kept free of torch at import time so that `attnbench --help` and `attnbench list` start fast.
Bad input becomes one line on stderr and exit status 2; a run with a failed cell exits 1.
"""

from __future__ import annotations

import sys

import click

from attnbench import __version__
from attnbench.cli.bench import bench
from attnbench.cli.check import check_command
from attnbench.cli.compare import compare_command
from attnbench.cli.data import data_command
from attnbench.cli.files import export_command, import_command
from attnbench.cli.history import history_command
from attnbench.cli.leaderboard import leaderboard_command
from attnbench.cli.plugins import list_command
from attnbench.cli.run import run_command
from attnbench.errors import AttnbenchError

EXIT_BAD_INPUT = 2
COMMANDS = (
    list_command,
    run_command,
    check_command,
    compare_command,
    history_command,
    export_command,
    import_command,
    leaderboard_command,
    data_command,
    bench,
)


def _fail(message: str) -> None:
    click.echo(f"attnbench: error: {message}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the status code."""
    try:
        result = cli.main(args=argv, prog_name="attnbench", standalone_mode=False)
    except click.exceptions.UsageError as exc:
        _fail(exc.format_message().replace("\n", " "))
        code = EXIT_BAD_INPUT
    except click.exceptions.Abort:
        code = 130
    except AttnbenchError as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        code = EXIT_BAD_INPUT
    else:
        code = result if isinstance(result, int) else 0
    if argv is None:
        sys.exit(code)
    return code


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, "--version", prog_name="attnbench", message="%(prog)s %(version)s"
)
def cli() -> None:
    """Budget-matched, reproducible benchmarking of attention mechanisms.

    \b
    attnbench list mechanisms                       what is registered
    attnbench run --suite long-context              run a suite or group
    attnbench leaderboard                           rank what the store holds
    """


for _command in COMMANDS:
    cli.add_command(_command)
