"""The README is the front door: its commands must parse and CI must run its test command."""

from __future__ import annotations

import re
import shlex

import click
import pytest

from attnbench.cli import cli
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def readme_blocks() -> list[str]:
    return re.findall(r"```\n(.*?)```", README, flags=re.S)


def attnbench_lines() -> list[str]:
    lines = []
    for block in readme_blocks():
        for line in block.splitlines():
            command = shlex.join(shlex.split(line, comments=True))
            if command.startswith("attnbench "):
                lines.append(command)
    return lines


def test_ci_runs_exactly_the_readme_test_command():
    test_command = next(b.strip() for b in readme_blocks() if "pytest" in b)
    ci_lines = [
        line
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert test_command in ci_lines


def test_readme_setup_runs_long_context_smoke_then_leaderboard():
    setup = next(
        b.strip()
        for b in readme_blocks()
        if "attnbench run --suite long-context --profile smoke" in b
    )
    assert setup.endswith("attnbench leaderboard") and "pip install torch==2.13.0" in setup
    assert "-m mha -m sliding_window -m linear" in setup


@pytest.mark.parametrize("line", attnbench_lines())
def test_every_readme_command_parses(line):
    args = shlex.split(line)[1:]
    if args == ["--version"]:
        return
    command = cli.get_command(click.Context(cli), args[0])
    assert command is not None, f"README names an unknown command: {line}"
    command.make_context(args[0], args[1:])  # raises a UsageError on an unknown option or choice
