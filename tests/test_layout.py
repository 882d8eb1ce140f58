"""Python run from the checkout root (`python -m pytest`, `python -m attnbench`, any script there)
puts the root first on sys.path, so a top-level folder that is a package would hide an installed
package of the same name: transformers 5 imports Hugging Face's `kernels`, and a
`kernels/__init__.py` in the root broke it. The package lives under src/ and no top-level folder is
a regular package, so an installed one always wins."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

from tests.conftest import REPO, make_distribution

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def top_level_folders() -> list[str]:
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True
    )
    return sorted(
        {Path(line).parts[0] for line in tracked.stdout.splitlines() if len(Path(line).parts) > 1}
    )


def resolve_from_root(names: list[str], env: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Where each name resolves when Python runs in the checkout root ('' first on sys.path, as
    with -m)."""
    script = (
        "import importlib.util, json, sys\nout = {}\nfor name in sys.argv[1:]:\n    spec ="
        " importlib.util.find_spec(name)\n    out[name] = [] if spec is None else [spec.origin or"
        " '', *(spec.submodule_search_locations or [])]\nprint(json.dumps(out))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *names],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout)


def inside_checkout(locations: list[str]) -> list[str]:
    root = REPO.resolve()
    return [
        where
        for where in locations
        if where
        and Path(where).resolve().is_relative_to(root)
        and not Path(where).resolve().is_relative_to(root / ".venv")
    ]


def test_no_top_level_folder_is_a_regular_package():
    packages = [name for name in top_level_folders() if (REPO / name / "__init__.py").exists()]
    assert packages == [], (
        "a top-level folder with an __init__.py hides any installed package of its name"
    )


def test_installed_distributions_win_over_top_level_folders():
    """With every extra installed (the dev extra holds them all), each installed import name that
    matches a top-level folder resolves to the installed package, not to the folder."""
    installed = metadata.packages_distributions()
    clashing = [name for name in top_level_folders() if name in installed]
    resolved = resolve_from_root(clashing) if clashing else {}
    hidden = {
        name: inside_checkout(where) for name, where in resolved.items() if inside_checkout(where)
    }
    assert hidden == {}


def test_any_package_named_like_a_top_level_folder_wins(tmp_path):
    """Not only today's dependencies: a regular package with each folder's name, installed later, is
    the one imported from the root."""
    names = [name for name in top_level_folders() if name.isidentifier()]
    site = make_distribution(tmp_path / "site", "shadows", modules={})
    for name in names:
        (site / name).mkdir()
        (site / name / "__init__.py").write_text("")
    resolved = resolve_from_root(names, env={"PYTHONPATH": str(site), "PATH": ""})
    assert {name: where[0] for name, where in resolved.items()} == {
        name: str(site / name / "__init__.py") for name in names
    }


def test_the_dev_extra_installs_every_other_extra():
    """So that `pip install -e '.[dev]'`, which the tests run under, has every extra's packages
    installed."""

    def names(requirements: list[str]) -> set[str]:
        return {
            req.split(";")[0]
            .split("[")[0]
            .split("=")[0]
            .split(">")[0]
            .split("<")[0]
            .strip()
            .lower()
            for req in requirements
        }

    extras = PYPROJECT["project"]["optional-dependencies"]
    wanted = set().union(*(names(reqs) for extra, reqs in extras.items() if extra != "dev"))
    assert wanted - names(extras["dev"]) == set()


@pytest.mark.parametrize(
    "name", ["attnbench", "attnbench.mechanisms", "attnbench.suites", "attnbench.kernels"]
)
def test_the_package_resolves_to_src(name):
    (where,) = resolve_from_root([name]).values()
    assert Path(where[0]).resolve().is_relative_to((REPO / "src" / "attnbench").resolve())
