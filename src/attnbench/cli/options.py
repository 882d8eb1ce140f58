"""What several commands share: the --db option, KEY=VALUE values, option checks, opening a store to
read it, and writing a file the user named."""

from __future__ import annotations

import ast
import math
from contextlib import contextmanager
from typing import Iterator

import click

from attnbench.errors import ConfigError

MAX_SEEDS = (
    1000  # attnbench.run.planning.MAX_SEEDS, repeated so that parsing options imports nothing
)

db_option = click.option(
    "--db",
    default=None,
    help="SQLAlchemy URL or SQLite path (default: $ATTNBENCH_DB or results/attnbench.db).",
)


def parse_assignments(values: tuple[str, ...], option: str) -> dict:
    """KEY=VALUE pairs, each VALUE a Python literal (`4`, `0.1`, `[64, 128]`, `'text'`), true/false,
    or else text; whether it fits the setting is checked at planning against the setting's
    default."""
    parsed = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        if raw.strip().lower() in (
            "true",
            "false",
        ):  # as a shell user types a flag, not only Python's True
            parsed[key] = raw.strip().lower() == "true"
            continue
        try:
            parsed[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            parsed[key] = raw
    return parsed


def finite_seconds(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A click callback: seconds that are a finite number above 0 (nan and inf would enforce
    nothing)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(
            f"{value} is not a finite number of seconds above 0", ctx=ctx, param=param
        )
    return value


def memory_limit(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A click callback: `4G`, `512M` or bytes."""
    from attnbench.run.isolation import parse_bytes

    try:
        return None if value is None else parse_bytes(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def open_for_reading(db: str | None):
    """The store for a read command; a damaged SQLite file is read with a warning (what reads is
    shown)."""
    from attnbench.store.database import Store

    store = Store.open(db, create=False)
    if store.damage:
        click.echo(
            f"attnbench: warning: database {store.url} is damaged ({store.damage}); results may be "
            "missing or wrong",
            err=True,
        )
    return store


@contextmanager
def writing(path: str, what: str) -> Iterator[None]:
    """A file the user named, written: an OSError (a folder, /dev/full, no permission) is one
    line naming it."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot write it ({exc.strerror or exc})") from None
