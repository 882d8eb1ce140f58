"""`pip install .` (not only -e) must ship every module, template and built-in plug-in the entry
points name."""

from __future__ import annotations

from fnmatch import fnmatch

import tomllib

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SOURCE = REPO / "src"


def test_packages_are_found_under_src_with_their_templates():
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert setuptools["packages"]["find"]["where"] == ["src"]
    templates = [
        f"templates/{p.name}" for p in (SOURCE / "attnbench" / "views" / "templates").iterdir()
    ]
    patterns = setuptools["package-data"]["attnbench.views"]
    assert templates and all(any(fnmatch(t, pattern) for pattern in patterns) for t in templates)


def test_every_builtin_entry_point_names_a_module_that_exists():
    for group in ("attnbench.mechanisms", "attnbench.suites"):
        for name, target in PYPROJECT["project"]["entry-points"][group].items():
            path = SOURCE.joinpath(*target.split(":")[0].split("."))
            assert path.with_suffix(".py").exists() or (path / "__init__.py").exists(), (
                f"{group} {name}: {target}"
            )
