"""The tree is the architecture: dependencies point one way, and this test reads every import of the
package (function-local and TYPE_CHECKING ones included) to keep it so.

    cli -> run, views -> conformance, store, toolkit -> suites' and mechanisms' contracts
    suites -> toolkit + mechanisms + kernels + contracts, never another suite
    mechanisms -> contracts + kernels + their own private helpers (`mechanisms._*`), never a sibling
    kernels -> contracts + their own modules, never a mechanism
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

SOURCE = REPO / "src"
# Lower layers never import higher ones. A package's modules share its layer.
LAYERS = {
    "attnbench": 0,
    "attnbench._version": 0,
    "attnbench.budget": 0,
    "attnbench.cell": 0,
    "attnbench.errors": 0,
    "attnbench.extras": 0,
    "attnbench.mechanism": 0,
    "attnbench.registry": 0,
    "attnbench.suite": 0,
    "attnbench.values": 0,
    "attnbench.kernels": 1,
    "attnbench.mechanisms": 2,
    "attnbench.toolkit": 3,
    "attnbench.conformance": 3,
    "attnbench.store": 3,
    "attnbench.suites": 4,
    "attnbench.run": 5,
    "attnbench.views": 5,
    "attnbench.results": 5,
    "attnbench.testing": 5,
    "attnbench.cli": 6,
    "attnbench.__main__": 6,
}


def modules() -> dict[str, Path]:
    found = {}
    for path in (SOURCE / "attnbench").rglob("*.py"):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules()


def resolve(name: str) -> str | None:
    """The module an import names: the longest known prefix (`attnbench.store.database.Store` ->
    its module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Every attnbench module `module` imports, wherever the import statement stands."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}".rstrip(".")
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = resolve(name) if name.startswith("attnbench") else None
            if target and target != module:
                found.add(target)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def layer(module: str) -> int:
    while module not in LAYERS:
        module = module.rpartition(".")[0]
    return LAYERS[module]


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer():
    assert all(layer(module) is not None for module in MODULES)


def test_no_import_cycles():
    assert cycles() == []


def test_no_module_imports_a_higher_layer():
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if layer(target) > layer(module)
    )
    assert upward == []


def suite_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "suites" else None


def test_no_suite_imports_another_suite():
    crossing = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if suite_of(module) and suite_of(target) and suite_of(module) != suite_of(target)
    )
    assert crossing == []


@pytest.mark.parametrize("package", ["mechanisms", "kernels"])
def test_mechanisms_import_no_sibling_and_kernels_no_mechanism(package):
    def sibling(module: str, target: str) -> bool:
        return (
            target.startswith("attnbench.mechanisms.")
            and not target.split(".")[2].startswith("_")
            and target != module
        )

    broken = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module.startswith(f"attnbench.{package}.")
        for target in targets
        if (
            package == "mechanisms"
            and not module.split(".")[2].startswith("_")
            and sibling(module, target)
        )
        or (package == "kernels" and target.startswith("attnbench.mechanisms"))
    )
    assert broken == []


def test_suites_use_no_private_module_of_the_mechanisms():
    private = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if suite_of(module)
        for target in targets
        if target.startswith("attnbench.mechanisms._")
    )
    assert private == []
