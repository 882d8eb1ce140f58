"""The local Ray instance a run starts listens on the loopback address only, and none of its
processes outlives the run, even when the run is killed with SIGKILL (Ray's dashboard and
runtime-env agents did)."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from tests.support.faulty_plugins import distribution  # noqa: E402


def listening(processes: list) -> dict[int, list[str]]:
    found = {}
    for process in processes:
        try:
            found[process.pid] = [
                c.laddr.ip
                for c in process.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN
            ]
        except psutil.Error:
            continue
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or (
        ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback
    )


def test_the_local_instance_listens_on_loopback_and_dies_with_a_killed_run(tmp_path):
    env = distribution(tmp_path / "site")
    db = tmp_path / "r.db"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "attnbench",
            "run",
            "--suite",
            "faulty",
            "-m",
            "ident",
            "--seeds",
            "2",
            "--set",
            "faults=hang,hang",
            "--executor",
            "ray",
            "--db",
            str(db),
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    parent = psutil.Process(run.pid)
    deadline = time.monotonic() + 180
    family: list = []
    while time.monotonic() < deadline:
        family = parent.children(recursive=True)
        names = " ".join(p.name() for p in family if p.is_running())
        if (
            "raylet" in names
            and sum("_run_cell" in " ".join(p.cmdline()) for p in family if p.is_running()) >= 2
        ):
            break
        time.sleep(0.5)
    else:
        run.kill()
        pytest.fail("the Ray instance never ran the cells: " + run.stderr.read().decode()[-2000:])
    time.sleep(2.0)  # the agents start a moment after the raylet
    family = parent.children(recursive=True)
    addresses = listening([parent, *family])
    assert any(addresses.values())
    assert all(is_loopback(a) for found in addresses.values() for a in found), addresses
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            break
        time.sleep(0.5)
    assert alive == [], [" ".join(p.cmdline())[:80] for p in alive]
