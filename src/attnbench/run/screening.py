"""Screening a plan: each (mechanism, hyper-parameters) checked once before any cell runs, here or,
under `--isolate` and the cell limits, in a fresh worker process of its own (a plug-in that
segfaults, hangs or exhausts memory in its check is refused, not fatal)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from attnbench.cell import canonical_json
from attnbench.conformance import check_mechanism
from attnbench.conformance.common import CheckResult, ConformanceReport, headline
from attnbench.errors import AttnbenchError
from attnbench.run.isolation import CellLimits, WorkerPool


class NonconformingError(AttnbenchError):
    """A mechanism asked for by name failed conformance; `--allow-nonconforming` overrides."""


@dataclass(frozen=True)
class CheckJob:
    """One mechanism's conformance check as a worker-process job (`attnbench.run.isolation`): under
    `--isolate` and the cell limits a plug-in that segfaults, hangs or exhausts memory in its check
    is refused, not fatal.
    """

    subject: tuple[
        str, tuple[tuple[str, Any], ...]
    ]  # (mechanism name, its hyper-parameters as items)

    def run(self, device: str, on_step: Callable[[int, int | None], None]) -> ConformanceReport:
        from attnbench.registry import MECHANISMS

        name, hparams = self.subject
        try:
            spec = MECHANISMS.get(name)
        except AttnbenchError as exc:
            return self.failed(exc, "")
        return check_mechanism(spec, hparams=dict(hparams))

    def failed(self, exc: BaseException, prefix: str) -> ConformanceReport:
        return self._refused("conformance", prefix + headline(exc))

    def lost(
        self, status: str, error: str, wall_seconds: float, started_at: Any
    ) -> ConformanceReport:
        return self._refused(
            "isolation",
            (
                f"the check's {error.splitlines()[0]}"
                if status == "failed"
                else f"the check {error.splitlines()[0]}"
            ),
        )

    def plugins(self) -> tuple[str | None, str | None]:
        return None, self.subject[0]

    def _refused(self, check: str, detail: str) -> ConformanceReport:
        name, hparams = self.subject
        report = ConformanceReport(name, dict(hparams), 0)
        report.results.append(CheckResult(check, False, detail))
        return report


def screen_plan(
    plan: Any,
    requested: set[str],
    allow_nonconforming: bool = False,
    isolated: bool = False,
    limits: Any = None,
    jobs: int = 1,
) -> Any:
    """Check each (mechanism, hyper-parameters) of a plan once and mark its cells.

    A failure refuses the run when the mechanism was asked for by name, drops its cells with a
    note when it was only picked up as a default, and with `allow_nonconforming` runs it with
    the failure recorded on every cell. `isolated` runs each check in a fresh process under the
    cells' `limits` (`attnbench.run.isolation.CellLimits`), as `--isolate` runs the cells.
    """
    keys = list(
        dict.fromkeys((cell.mechanism, canonical_json(dict(cell.hparams))) for cell in plan.cells)
    )
    hparams = {
        (cell.mechanism, canonical_json(dict(cell.hparams))): dict(cell.hparams)
        for cell in plan.cells
    }
    verdicts = _check_all(keys, hparams, isolated, limits, jobs)
    kept = []
    for key in keys:
        report = verdicts[key]
        if not report.passed and not allow_nonconforming:
            message = (
                f"mechanism {key[0]!r} fails conformance: {report.reason()} "
                f"(see `attnbench check {key[0]}`; --allow-nonconforming runs it anyway)"
            )
            if key[0] in requested:
                raise NonconformingError(message)
            plan.notes.append("skipped " + message)
    for cell in plan.cells:
        report = verdicts[(cell.mechanism, canonical_json(dict(cell.hparams)))]
        if report.passed:
            kept.append(replace(cell, conformance="passed"))
        elif allow_nonconforming:
            kept.append(replace(cell, conformance="failed: " + report.reason()))
    plan.cells = kept
    plan.mechanisms = sorted({c.mechanism for c in kept})
    if not kept:
        raise NonconformingError(
            "no mechanism in this run passes conformance: " + "; ".join(plan.notes)
        )
    return plan


def _check_all(
    keys: list[tuple[str, str]], hparams: dict, isolated: bool, limits: Any, jobs: int
) -> dict[tuple[str, str], ConformanceReport]:
    """A report per key: here, one after another, or each in a fresh worker process under the
    limits."""
    job_list = [
        CheckJob((name, tuple(sorted(hparams[(name, text)].items())))) for name, text in keys
    ]
    if not isolated:
        return {key: job.run("cpu", lambda step, planned: None) for key, job in zip(keys, job_list)}
    reports: dict[tuple[str, str], ConformanceReport] = {}

    def finished(report: ConformanceReport) -> None:
        reports[(report.mechanism, canonical_json(report.hparams))] = report

    WorkerPool(
        "cpu", max(1, min(jobs, len(job_list))), fresh=True, limits=limits or CellLimits()
    ).run(job_list, lambda subject, index: None, finished, lambda: False)
    return reports
