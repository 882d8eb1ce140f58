"""What `attnbench list` shows: plug-ins read from package metadata, imported only on request."""

from __future__ import annotations

from typing import Any

from attnbench.errors import PluginLoadError
from attnbench.registry import MECHANISMS, SUITES


def list_plugins(what: str, load: bool = False) -> list[dict[str, Any]]:
    """One row per registered name. Without `load` nothing is imported: status is `found`, kind,
    description, paper and defaults are read from the plug-in's source where it states them as
    literals, and the errors shown are those visible without running the module (missing module,
    syntax error). With `load` status is `ok` or the import error, and every field is exact."""
    registry = MECHANISMS if what == "mechanisms" else SUITES
    rows = []
    for name, claims in sorted(registry.entries().items()):
        entry = claims[0]
        row: dict[str, Any] = {
            "name": name,
            "target": entry.target,
            "distribution": entry.distribution,
            "version": entry.version,
            "status": "ok" if load else "found",
            "error": None,
        }
        if len(claims) > 1:
            row["status"] = "error"
            row["error"] = "registered more than once: " + ", ".join(c.target for c in claims)
        elif load:
            try:
                row.update(registry.get(name).summary())
            except PluginLoadError as exc:
                row["status"], row["error"] = "error", str(exc)
        else:
            stated, error = entry.probe()
            row["description"] = stated.get("description") or stated.get("summary")
            for key in ("kind", "paper", "defaults"):
                if key in stated:
                    row[key] = stated[key]
            if error:
                row["status"], row["error"] = "error", error
        rows.append(row)
    return rows


def list_groups() -> list[dict[str, Any]]:
    from attnbench.run.planning import groups

    return [{"name": name, "suites": members} for name, members in sorted(groups().items())]
