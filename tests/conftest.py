"""Shared test helpers: fake plug-in distributions on sys.path and running the CLI in-process."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def make_distribution(site: Path, name: str, modules: dict[str, str], mechanisms: dict[str, str] = (),
                      suites: dict[str, str] = ()) -> Path:
    """Write an installed-looking distribution (dist-info with entry points) and its modules into `site`."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = []
    for group, table in (("attnbench.mechanisms", dict(mechanisms)), ("attnbench.suites", dict(suites))):
        if table:
            lines.append(f"[{group}]")
            lines.extend(f"{key} = {value}" for key, value in table.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    return site


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real console script in a fresh process, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "attnbench", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=600)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'results.db'}"
