"""A value a user sets (`--hparam`, `--set`, a TOML file) checked against the default it replaces.

A default says what a setting is: `num_heads = 8` takes a whole number, `weight_decay = 0.1` a
finite number, `mlp = True` a boolean. Checking at planning turns `num_heads=abc`, `=nan`, `=1e400`
or `=[1]` into one line before any work, instead of a traceback from deep inside a model, or a cell
stored with `mlp = "maybe"`. A default of None leaves the type open (the mechanism or suite checks
it) but not finiteness.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_finite(item) for item in value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    return True


def expected_like(default: Any, value: Any) -> str | None:
    """What `value` should have been to replace `default` (e.g. "a whole number"), or None when
    it fits."""
    if not _finite(value):
        return "a finite number" if isinstance(value, float) else "finite numbers throughout"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "a whole number"
    if isinstance(default, float):
        return (
            None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
        )
    if isinstance(default, str):
        return None if isinstance(value, str) else "text"
    if isinstance(default, (list, tuple)):
        return None if isinstance(value, (list, tuple)) else "a list, e.g. [1, 2]"
    if isinstance(default, dict):
        return None if isinstance(value, dict) else "a table of KEY = VALUE"
    return None


def check_like(default: Any, value: Any, what: str) -> None:
    """Raise one `ConfigError` line naming `what` when `value` cannot replace `default`."""
    from attnbench.errors import ConfigError

    expected = expected_like(default, value)
    if expected:
        raise ConfigError(f"{what}={value!r} is not {expected} (its default is {default!r})")


# ---------------------------------------------------------------- the checks suites' settings make


def is_number(value: Any) -> bool:
    """A real number, numpy's included (not a bool, which Python counts as an int)."""
    return isinstance(value, Real) and not isinstance(value, bool)


def is_whole(value: Any, least: int | None = None) -> bool:
    """A whole number, numpy's included (not a bool), at least `least` when given."""
    return (
        isinstance(value, Integral)
        and not isinstance(value, bool)
        and (least is None or value >= least)
    )


def check_whole(what: str, value: Any, least: int = 1) -> None:
    """`what` must be a whole number >= `least` (one ConfigError line naming it otherwise)."""
    from attnbench.errors import ConfigError

    if not is_whole(value, least):
        raise ConfigError(f"{what}={value!r} must be an integer >= {least}")


def check_one_of(what: str, value: Any, allowed: tuple[str, ...]) -> None:
    from attnbench.errors import ConfigError

    if value not in allowed:
        raise ConfigError(f"{what}={value!r} is not one of {', '.join(allowed)}")


def check_split_sizes(what: str, value: Any, counts: str) -> None:
    """`what` must be three `counts` (train, val, test), train and test at least 1: the
    sizes of a synthetic stand-in for a suite's official splits."""
    from attnbench.errors import ConfigError

    if (
        not isinstance(value, tuple)
        or len(value) != 3
        or any(not is_whole(c, 0) for c in value)
        or value[0] < 1
        or value[2] < 1
    ):
        raise ConfigError(
            f"{what}={value!r} must be three {counts} (train, val, test), train and test at least 1"
        )
