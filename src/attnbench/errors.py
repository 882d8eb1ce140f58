"""Our own exception types: the CLI turns each into one clear line and exit status 2."""

from __future__ import annotations


class AttnbenchError(Exception):
    """Base class for errors caused by the user's input, reported without a traceback."""


class ConfigError(AttnbenchError, ValueError):
    """A configuration that cannot exist (bad budget, impossible MQAR layout, unknown option)."""


class UnknownNameError(AttnbenchError, KeyError):
    """A mechanism, suite or group name that no plug-in registers."""

    def __str__(self) -> str:  # KeyError quotes its message; we want the plain line
        return str(self.args[0]) if self.args else ""


class PluginLoadError(AttnbenchError):
    """A registered plug-in whose import failed."""


class StoreError(AttnbenchError):
    """A database that cannot be opened or has an incompatible schema."""


class SkipCell(AttnbenchError):
    """Raised by a suite's `run_cell` when the cell cannot run here (no model given, no data on this
    machine): the runner stores the cell as `skipped` with this reason rather than `failed`."""
