"""Plug-ins for the crash, isolation and Ctrl-C tests: a suite whose cells take a moment and, for
chosen seeds, segfault, hang, run out of memory, diverge or kill their own process; and `ident`, a
mechanism that conforms in milliseconds.

Cells of these tests run in other processes (the CLI, its workers), which find plug-ins only through
entry points: `distribution(site)` writes one naming this module.
"""

from __future__ import annotations

import ctypes
import os
import random
import signal
import time
from pathlib import Path

import torch
from torch import nn

from attnbench.mechanism import FlopBreakdown, MechanismSpec
from attnbench.suite import Task
from tests.support.fake_suite import EchoSuite

HUGE = 64 * 2**30  # bytes no test machine grants under a --memory-limit


class FaultySuite(EchoSuite):
    """Echo's scores after sleeping `sleep` seconds (a range: drawn per cell, reproducibly); seed i
    does `faults[i]` of the comma-separated `faults` setting instead, e.g. `--set
    faults=ok,segv,hang`: ok, segv, hang, memoryerror, torch_oom, nan_loss, sigkill, systemexit (a
    plug-in calling sys.exit), unstorable (NUL in its error text and NaN in its details: PostgreSQL
    refuses both as given) or longmetric (a metric name longer than the store holds). With
    `pid_dir`, each cell first writes the id of its process to `pid_dir/SEED.pid`."""

    name = "faulty"
    description = (
        "Echo after a short sleep; chosen seeds crash, hang, run out of memory or diverge."
    )
    groups = ()

    def tasks(self, profile):
        return [
            Task(label, {"offset": offset, "sleep": [0.1, 0.3], "faults": "", "pid_dir": ""})
            for label, offset in (("t1", 0.0), ("t2", 0.5))
        ]

    def run_cell(self, cell, mechanism, ctx):
        faults = cell.task_config["faults"].split(",") if cell.task_config["faults"] else []
        fault = faults[cell.seed] if cell.seed < len(faults) else "ok"
        if cell.task_config["pid_dir"]:  # who runs me, for a test that kills it from outside
            (Path(cell.task_config["pid_dir"]) / f"{cell.seed}.pid").write_text(str(os.getpid()))
        low, high = cell.task_config["sleep"]
        time.sleep(random.Random(f"{cell.task}-{cell.seed}").uniform(low, high))
        if fault == "segv":
            ctypes.string_at(0)
        elif fault == "hang":
            time.sleep(3600)
        elif fault == "memoryerror":
            bytearray(HUGE)
        elif fault == "torch_oom":
            torch.empty(HUGE, dtype=torch.uint8)
        elif fault == "nan_loss":
            diverge(cell.budget)
        elif fault == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif fault == "systemexit":
            raise SystemExit(3)
        elif fault == "unstorable":
            raise RuntimeError("bad byte \x00 in a message")
        outcome = super().run_cell(cell, mechanism, ctx)
        if fault == "longmetric":
            outcome.metrics["m" * 200] = 1.0
        outcome.details["nan"] = float(
            "nan"
        )  # JSON without NaN: every done cell's details pass through the store
        outcome.details["pid"] = os.getpid()  # which process ran the cell
        return outcome


def diverge(budget) -> None:
    """The shared training loop on a loss that is NaN from the first step: it raises
    NonFiniteLossError."""
    from attnbench.toolkit.training import train_under_budget

    model = nn.Linear(2, 1)
    batch = torch.ones(4, 2), torch.ones(4, 1)
    train_under_budget(
        model,
        lambda step: batch,
        lambda out, y: (out - y).sum() * float("nan"),
        torch.optim.SGD(model.parameters(), lr=0.1),
        budget,
        flops_per_step=1,
        tokens_per_step=1,
    )


class Scale(nn.Module):
    """x times one learned scalar: causal, batch-independent, 0 FLOPs as FlopCounterMode counts
    them."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class Broken(Scale):
    """Scale whose forward does `fault`: segv, hang or exit (sys.exit inside the conformance
    check)."""

    def __init__(self, fault: str) -> None:
        super().__init__()
        self.fault = fault

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fault == "segv":
            ctypes.string_at(0)
        elif self.fault == "hang":
            time.sleep(3600)
        elif self.fault == "exit":
            raise SystemExit(4)
        return super().forward(x)


def broken(fault: str) -> MechanismSpec:
    return MechanismSpec(
        name=f"broken_{fault}",
        kind="sequence",
        description=f"its forward does {fault}",
        paper="none",
        build=lambda dim, causal=True, **_: Broken(fault),
        flops=lambda *args, **kwargs: FlopBreakdown(),
    )


SUITE = FaultySuite()
IDENT = MechanismSpec(
    name="ident",
    kind="sequence",
    description="x times a scalar: conforms in milliseconds",
    paper="none",
    build=lambda dim, causal=True, **_: Scale(),
    flops=lambda *args, **kwargs: FlopBreakdown(),
)
BROKEN_SEGV, BROKEN_HANG, BROKEN_EXIT = broken("segv"), broken("hang"), broken("exit")


def distribution(site: Path) -> dict[str, str]:
    """Register `faulty` and `ident` in `site`; the environment a subprocess needs to find them."""
    from tests.conftest import REPO, make_distribution

    module = "tests.support.faulty_plugins"
    make_distribution(
        site,
        "faultyplugins",
        modules={},
        mechanisms={
            "ident": f"{module}:IDENT",
            "broken_segv": f"{module}:BROKEN_SEGV",
            "broken_hang": f"{module}:BROKEN_HANG",
            "broken_exit": f"{module}:BROKEN_EXIT",
        },
        suites={"faulty": f"{module}:SUITE"},
    )
    return {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
