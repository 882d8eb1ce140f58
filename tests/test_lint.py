"""The formatter and the linter configured in pyproject.toml ([tool.ruff]: line length 100) pass on
the whole tree, so that `.ci/run`, which runs exactly the README's test command, checks them too."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "command", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"]
)
def test_ruff_passes(command):
    result = ruff(*command)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
