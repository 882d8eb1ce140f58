"""Run configuration files: `attnbench run --config FILE.toml` keeps a run's options under version
control.

    suite = "long-context"
    mechanisms = ["mha", "linear"]
    seeds = 2
    budget = 2e12          # budget_kind defaults to "flops"
    profile = "smoke"
    backend = "native"     # or "lm-eval" (suites that offer it: longbench)

    [hparams]              # --hparam KEY=VALUE
    window = 64

    [settings]             # --set KEY=VALUE
    lengths = [128, 256]

Options given on the command line win over the file. Every key and type is checked, and a file
that cannot be read, is not TOML or holds an unknown key is one clear line naming the file.
"""

from __future__ import annotations

import difflib
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from attnbench.errors import ConfigError
from attnbench.suite import BACKENDS
from attnbench.values import is_whole

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

BUDGET_KINDS = ("flops", "steps", "seconds", "tokens")
MAX_BYTES = 1 << 20  # a run configuration is a page of settings, not a data file
MAX_SEEDS = 1000  # attnbench.run.planning.MAX_SEEDS, without importing the planner


@dataclass(frozen=True)
class RunConfig:
    """Every `attnbench run` option a file may set; None means "not set here"."""

    suite: str | None = None
    mechanisms: tuple[str, ...] = ()
    seeds: int | None = None
    budget: float | None = None
    budget_kind: str | None = None
    profile: str | None = None
    model: str | None = None
    backend: str | None = None
    device: str | None = None
    db: str | None = None
    jobs: int | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


_STRINGS = ("suite", "profile", "model", "device", "db")
_POSITIVE_INTS = ("seeds", "jobs")


def load_run_config(path: str | Path) -> RunConfig:
    """The validated contents of a TOML run configuration."""
    where = str(path)
    file = Path(path)
    if file.exists() and not file.is_file():  # a folder; a FIFO or device would block or never end
        raise ConfigError(f"--config {where}: not a regular file")
    try:
        if file.stat().st_size > MAX_BYTES:
            raise ConfigError(
                f"--config {where}: {file.stat().st_size:,} bytes; a run configuration is at most "
                f"{MAX_BYTES:,}"
            )
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {where}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {where}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(
            f"--config {where}: nested too deeply to be a run configuration"
        ) from None
    return parse_run_config(raw, where)


def parse_run_config(raw: dict[str, Any], where: str = "config") -> RunConfig:
    known = [f.name for f in fields(RunConfig)]
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else f" (keys: {', '.join(known)})"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        values[key] = _checked(key, value, where)
    return RunConfig(**values)


def _checked(key: str, value: Any, where: str) -> Any:
    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key} = {value!r} is not {expected}")

    if key in _STRINGS:
        if not isinstance(value, str) or not value:
            raise wrong("a non-empty string")
        return value
    if key == "mechanisms":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise wrong("a list of mechanism names")
        return tuple(value)
    if key in _POSITIVE_INTS:
        if not is_whole(value, 1):
            raise wrong("a positive integer")
        if key == "seeds" and value > MAX_SEEDS:
            raise wrong(f"at most {MAX_SEEDS}")
        return value
    if key == "budget":
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise wrong("a positive number")
        return float(value)
    if key == "budget_kind":
        if value not in BUDGET_KINDS:
            raise wrong(f"one of {', '.join(BUDGET_KINDS)}")
        return value
    if key == "backend":
        if value not in BACKENDS:
            raise wrong(f"one of {', '.join(BACKENDS)}")
        return value
    if not isinstance(value, dict):  # hparams, settings
        raise wrong(f"a table ([{key}] with KEY = VALUE lines)")
    return dict(value)
