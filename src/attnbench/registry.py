"""Entry-point discovery of mechanisms and suites: names first, import on use.

The built-ins are found exactly as a third-party package's plug-ins are: through the
`attnbench.mechanisms` and `attnbench.suites` entry-point groups. Listing reads package
metadata only, so `attnbench list` never imports torch; a plug-in is imported the first time it
is used, and one that fails to import is reported by name without taking the others down.
The two `Registry` objects below are the only global state in attnbench.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Generic, TypeVar

from attnbench.errors import PluginLoadError, UnknownNameError

T = TypeVar("T")

MECHANISM_GROUP = "attnbench.mechanisms"
SUITE_GROUP = "attnbench.suites"


@dataclass(frozen=True)
class PluginEntry:
    """What package metadata says about one plug-in, before anything is imported."""

    name: str
    target: str
    distribution: str | None
    version: str | None

    @property
    def module(self) -> str:
        return self.target.split(":", 1)[0]

    @property
    def attribute(self) -> str:
        return self.target.split(":", 1)[1] if ":" in self.target else ""

    def probe(self) -> tuple[dict[str, Any], str | None]:
        """Read the plug-in's module without running it: (what its source states, error line).

        Finds the module and parses its source, which catches a missing module or a syntax
        error; errors raised only when the module runs show up when it is loaded. What it
        states: the module docstring's first line, and the literal keyword arguments (kind,
        description, paper, defaults, ...) of the call assigned to the entry point's attribute.
        """
        try:
            found = importlib.util.find_spec(self.module)
        except (ImportError, ValueError) as exc:
            return {}, f"{type(exc).__name__}: {exc}"
        if found is None:
            return {}, f"ModuleNotFoundError: no module named {self.module!r}"
        if not found.origin or not found.origin.endswith(".py"):
            return {}, None
        try:
            with open(found.origin, encoding="utf-8") as source:
                tree = ast.parse(source.read(), found.origin)
        except (OSError, SyntaxError, ValueError) as exc:
            return {}, f"{type(exc).__name__}: {exc}"
        stated = _literal_keywords(tree, self.attribute)
        docstring = ast.get_docstring(tree)
        if docstring:
            stated.setdefault("summary", docstring.strip().splitlines()[0])
        return stated, None


def _literal_keywords(tree: ast.Module, attribute: str) -> dict[str, Any]:
    """Keyword arguments written as literals in `attribute = SomeSpec(...)` at module level."""
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and any(isinstance(t, ast.Name) and t.id == attribute for t in node.targets)
        ):
            found = {}
            for keyword in node.value.keywords:
                try:
                    found[keyword.arg] = ast.literal_eval(keyword.value)
                except ValueError:
                    continue
            return found
    return {}


def _entry_from(ep: metadata.EntryPoint) -> PluginEntry:
    dist = getattr(ep, "dist", None)
    return PluginEntry(
        ep.name, ep.value, dist.metadata["Name"] if dist else None, dist.version if dist else None
    )


class Registry(Generic[T]):
    """One entry-point group. `validate(obj, name)` checks a loaded object and returns it."""

    def __init__(self, group: str, noun: str, validate: Callable[[Any, str], T]) -> None:
        self.group = group
        self.noun = noun
        self._validate = validate
        self._loaded: dict[str, T] = {}
        self._errors: dict[str, str] = {}
        self._local: dict[str, T] = {}

    def entries(self) -> dict[str, list[PluginEntry]]:
        """Every registered name with the entry points that claim it (two claims are a conflict)."""
        found: dict[str, list[PluginEntry]] = {}
        for ep in metadata.entry_points(group=self.group):
            entry = _entry_from(ep)
            claims = found.setdefault(ep.name, [])
            if entry not in claims:
                claims.append(entry)
        return found

    def names(self) -> list[str]:
        return sorted(set(self.entries()) | set(self._local))

    def register(self, obj: T, name: str | None = None) -> None:
        """Register an object in this process only (notebooks, tests); entry points are the
        lasting way."""
        key = name or obj.name
        self._local[key] = self._validate(obj, key)

    def unregister(self, name: str) -> None:
        self._local.pop(name, None)

    def get(self, name: str) -> T:
        if name in self._local:
            return self._local[name]
        if name in self._loaded:
            return self._loaded[name]
        if name in self._errors:
            raise PluginLoadError(self._errors[name])
        entries = self.entries()
        if name not in entries:
            raise UnknownNameError(self.unknown_message(name))
        claims = entries[name]
        if len(claims) > 1:
            owners = ", ".join(f"{c.target} ({c.distribution})" for c in claims)
            return self._fail(name, f"{self.noun} {name!r} is registered more than once: {owners}")
        try:
            obj = claims[0]
            loaded = metadata.EntryPoint(obj.name, obj.target, self.group).load()
        except Exception as exc:  # a broken plug-in must never take the CLI down
            return self._fail(
                name,
                f"{self.noun} {name!r} ({claims[0].target}) failed to import: "
                f"{type(exc).__name__}: {exc}",
            )
        try:
            self._loaded[name] = self._validate(loaded, name)
        except Exception as exc:
            return self._fail(
                name, f"{self.noun} {name!r} ({claims[0].target}) is not a valid plug-in: {exc}"
            )
        return self._loaded[name]

    def _fail(self, name: str, message: str):
        self._errors[name] = message
        raise PluginLoadError(message)

    def load_all(self) -> tuple[dict[str, T], dict[str, str]]:
        """Import every plug-in: (loaded by name, error line by name)."""
        loaded: dict[str, T] = {}
        errors: dict[str, str] = {}
        for name in self.names():
            try:
                loaded[name] = self.get(name)
            except PluginLoadError as exc:
                errors[name] = str(exc)
        return loaded, errors

    def unknown_message(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        available = ", ".join(names) or "none registered"
        return f"unknown {self.noun} {name!r}{hint} (available: {available})"


def validator(module: str, class_name: str) -> Callable[[Any, str], Any]:
    """A check that a loaded plug-in is an instance of `module.class_name` registered under its
    own name."""

    def validate(obj: Any, name: str) -> Any:
        expected = getattr(importlib.import_module(module), class_name)
        if not isinstance(obj, expected):
            raise TypeError(f"expected an {module}.{class_name}, got {type(obj).__name__}")
        if obj.name != name:
            raise TypeError(f"it is named {obj.name!r}, not {name!r}")
        return obj

    return validate


validate_mechanism = validator("attnbench.mechanism", "MechanismSpec")
validate_suite = validator("attnbench.suite", "Suite")
MECHANISMS: Registry = Registry(MECHANISM_GROUP, "mechanism", validate_mechanism)
SUITES: Registry = Registry(SUITE_GROUP, "suite", validate_suite)
