"""The Ray executor: the local executor's results for the same seeds, a retry for a cell whose
worker dies, a run that stops, and the one-line errors of a missing Ray, an unreachable cluster, a
missing GPU.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from attnbench.budget import Budget
from attnbench.cell import CellSpec
from attnbench.errors import ConfigError
from attnbench.run.execute import execute_cell
from attnbench.run.planning import RunRequest, plan_run
from attnbench.run.reporting import SilentReporter
from tests.conftest import make_distribution

ray = pytest.importorskip("ray")
from attnbench.run.ray_executor import _connected, run_with_ray  # noqa: E402

# Counts its attempts in a file (a killed process remembers nothing), sleeps, and kills its own
# worker process on the attempts listed in its task config. It must only ever run in a Ray worker.
CRASH_SUITE = """
import os
import signal
import time
from pathlib import Path

from attnbench.budget import Budget
from attnbench.cell import CellOutcome
from attnbench.suite import Suite, Task


class CrashSuite(Suite):
    name = "crash"
    description = "Sleeps, and kills the worker process running it on chosen attempts."
    accepts = ("sequence",)
    primary_metric = "score"

    def tasks(self, profile):
        return [Task("t", {})]

    def default_budget(self, profile, task):
        return Budget("steps", 1)

    def run_cell(self, cell, mechanism, ctx):
        attempts = Path(cell.task_config["attempts"])
        attempt = len(attempts.read_text()) if attempts.exists() else 0
        attempts.write_text("x" * (attempt + 1))
        time.sleep(cell.task_config["sleep"])
        if attempt in cell.task_config["die_on"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return CellOutcome(
            metrics={"score": float(attempt)}, budget_used=1, flops=0, steps=1, params=0
        )


SUITE = CrashSuite()
"""


class Recorder(SilentReporter):
    def __init__(self) -> None:
        self.started: list[int] = []

    def cell_started(self, cell, index, total):
        self.started.append(index)


def crash_cell(
    attempts_file: Path, die_on: list[int], sleep: float = 0.0, seed: int = 0
) -> CellSpec:
    return CellSpec(
        "crash",
        "mha",
        "smoke",
        "t",
        {"attempts": str(attempts_file), "die_on": die_on, "sleep": sleep},
        {},
        Budget("steps", 1),
        seed=seed,
    )


def attempts(attempts_file: Path) -> int:
    return len(attempts_file.read_text())


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One Ray session for the module, owned by the test: run_with_ray uses it and leaves it
    running."""
    site = make_distribution(
        tmp_path_factory.mktemp("site"),
        "crashplugin",
        modules={"crash_suite": CRASH_SUITE},
        suites={"crash": "crash_suite:SUITE"},
    )
    # Workers inherit the environment Ray starts with (a runtime_env would bar them from Ray's warm
    # pool).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
        )
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    yield
    ray.shutdown()


@pytest.mark.parametrize("via", ["argument", "RAY_ADDRESS"])
def test_an_address_where_nothing_listens_is_refused_in_one_line(monkeypatch, via):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{free.getsockname()[1]}"
    if via == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", address)
    with pytest.raises(ConfigError, match=f"cannot reach the Ray cluster at '{address}'") as caught:
        run_with_ray(
            [],
            "cpu",
            SilentReporter(),
            lambda record: None,
            address=address if via == "argument" else None,
        )
    assert "\n" not in str(caught.value)


def test_without_ray_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'attnbench\[ray\]'"):
        run_with_ray([], "cpu", SilentReporter(), lambda record: None)


def test_a_local_instance_without_a_gpu_refuses_cuda_cells_and_is_shut_down():
    calls = []
    fake = SimpleNamespace(
        is_initialized=lambda: False,
        init=lambda **options: calls.append("init"),
        cluster_resources=lambda: {"CPU": 2.0},
        shutdown=lambda: calls.append("shutdown"),
    )
    with pytest.raises(ConfigError, match="found no GPU"):
        with _connected(fake, None, on_gpu=True):
            pass
    assert calls == ["init", "shutdown"]


def test_same_metrics_as_the_local_executor_for_the_same_seeds(monkeypatch):
    """Runs first, before the module's session exists: run_with_ray starts its own instance and
    stops it."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cells = plan_run(
        RunRequest(
            suite="mqar",
            mechanisms=("mha", "linear"),
            seeds=2,
            budget_value=3,
            budget_kind="steps",
            task_settings={"num_train": 64, "num_test": 16},
        ),
        device="cpu",
    ).cells
    owned = not ray.is_initialized()
    reporter, records = Recorder(), []
    run_with_ray(cells, "cpu", reporter, records.append)
    assert sorted(reporter.started) == list(range(len(cells))) and len(records) == len(cells)
    assert not owned or not ray.is_initialized()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray task and each local worker process runs
    try:
        local = {(c.mechanism, c.seed): execute_cell(c, "cpu") for c in cells}
    finally:
        torch.set_num_threads(threads)
    assert {(r.spec.mechanism, r.spec.seed) for r in records} == set(local)
    for record in records:
        expected = local[record.spec.mechanism, record.spec.seed]
        assert record.status == expected.status == "done", record.error
        assert record.outcome.metrics == expected.outcome.metrics
        assert (
            record.outcome.flops == expected.outcome.flops
            and record.outcome.steps == expected.outcome.steps
        )
    assert len({r.outcome.metrics["final_train_loss"] for r in records}) == len(
        cells
    )  # seeds do differ


def test_a_dead_worker_costs_its_cell_one_retry_then_the_cell_is_recorded_failed(session, tmp_path):
    cells = [
        crash_cell(tmp_path / "once", die_on=[0]),
        crash_cell(tmp_path / "always", die_on=[0, 1, 2]),
        crash_cell(tmp_path / "never", die_on=[]),
    ]
    reporter, records = Recorder(), []
    run_with_ray(cells, "cpu", reporter, records.append)
    assert sorted(reporter.started) == [0, 1, 2] and len(records) == 3
    once, always, never = (next(r for r in records if r.spec == cell) for cell in cells)
    assert (
        once.status == "done"
        and once.outcome.metrics["score"] == 1.0
        and attempts(tmp_path / "once") == 2
    )
    assert never.status == "done" and attempts(tmp_path / "never") == 1
    assert (
        always.status == "failed" and always.outcome is None and attempts(tmp_path / "always") == 2
    )
    headline = always.error.splitlines()[0]
    assert (
        headline.startswith("Ray lost this cell's worker 2 times")
        and "WorkerCrashedError" in headline
    )
    assert always.finished_at is not None and always.wall_seconds > 0
    assert ray.is_initialized()  # the caller's session stays up


def test_a_stopping_run_lets_the_running_cells_finish_and_starts_no_more(session, tmp_path):
    files = [tmp_path / f"cell{seed}" for seed in range(4)]
    records = []
    run_with_ray(
        [crash_cell(file, die_on=[], sleep=3.0, seed=seed) for seed, file in enumerate(files)],
        "cpu",
        SilentReporter(),
        records.append,
        stopping=lambda: any(file.exists() for file in files),
    )
    ran = [seed for seed, file in enumerate(files) if file.exists()]
    assert 1 <= len(ran) <= 2  # two cores: the rest were still queued when the run began to stop
    assert sorted(r.spec.seed for r in records) == ran and all(r.status == "done" for r in records)
