"""`pip install .` (not only -e) must ship every package folder: the packages list is explicit."""
from __future__ import annotations

import tomllib

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_folder_is_listed():
    setuptools = PYPROJECT["tool"]["setuptools"]
    roots = {folder: name for name, folder in setuptools["package-dir"].items()}
    found = set()
    for folder, name in roots.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *relative.parts]))
    assert found == set(setuptools["packages"])


def test_every_builtin_entry_point_names_a_module_that_exists():
    for group in ("attnbench.mechanisms", "attnbench.suites"):
        for name, target in PYPROJECT["project"]["entry-points"][group].items():
            module = target.split(":")[0].split(".")
            folder = {"mechanisms": "mechanisms", "suites": "suites"}[module[1]]
            path = REPO.joinpath(folder, *module[2:])
            assert path.with_suffix(".py").exists() or (path / "__init__.py").exists(), f"{group} {name}: {target}"
