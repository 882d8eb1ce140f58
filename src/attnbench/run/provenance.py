"""Where a result came from: code version, machine, libraries and the exact command."""

from __future__ import annotations

import platform
import shlex
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import attnbench
from attnbench.toolkit.devices import device_name


def git_state(path: Path) -> tuple[str | None, bool | None]:
    """(sha, dirty) of the git checkout holding `path`, or (None, None) outside one."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return sha, dirty


def library_versions() -> dict[str, str]:
    """Every installed distribution and its version: a result can move when any dependency's release
    does, and the versions say which one did (constraints.txt pins them for the tests)."""
    versions = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(name.lower(), dist.version)
    return dict(sorted(versions.items()))


def collect(device: str, argv: list[str] | None = None) -> dict[str, Any]:
    """The provenance columns of a run."""
    import torch

    sha, dirty = git_state(Path(attnbench.__file__).resolve().parent)
    argv = list(sys.argv if argv is None else argv)
    if argv:
        argv[0] = Path(argv[0]).name
    return {
        "command": shlex.join(argv),
        "git_sha": sha,
        "git_dirty": dirty,
        "host": socket.gethostname(),
        "device": device_name(device),
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "attnbench_version": attnbench.__version__,
        "versions": library_versions(),
    }
