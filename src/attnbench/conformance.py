"""Conformance: the integrity guard every mechanism passes before it is benchmarked.

A mechanism that leaks the future scores perfectly on recall tasks by cheating, one whose
declared FLOPs are wrong is compared on a false budget, and one that silently ignores a
parameter wastes its budget. Each check here is run on random inputs at small sizes, including
batch 1 and lengths that are no multiple of any block size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from attnbench.cell import canonical_json
from attnbench.errors import AttnbenchError
from attnbench.mechanism import MechanismSpec

LENGTHS = (1, 7, 33)
LEAK_LENGTH = 33
LEAK_TOLERANCE = 1e-9


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str = ""


@dataclass
class ConformanceReport:
    mechanism: str
    hparams: dict[str, Any]
    dim: int
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def reason(self) -> str:
        """The failures in one line, for errors and for the cell's record."""
        return "; ".join(f"{r.name}: {r.detail}" for r in self.results if not r.passed)

    def as_dict(self) -> dict[str, Any]:
        return {"mechanism": self.mechanism, "passed": self.passed, "dim": self.dim, "hparams": self.hparams,
                "checks": [{"name": r.name, "passed": r.passed, "detail": r.detail} for r in self.results]}


def check_width(hparams: Mapping[str, Any], preferred: int = 64) -> int:
    """A model width the hyper-parameters allow: `preferred` unless the head count does not divide it."""
    heads = int(hparams.get("num_heads", 1) or 1)
    return preferred if preferred % heads == 0 else heads * 8


def build_seeded(spec: MechanismSpec, size: int, hparams: Mapping[str, Any], seed: int,
                 dtype: torch.dtype = torch.float32, **options: Any) -> torch.nn.Module:
    """The mechanism built (`spec.build(size, **options, **hparams)`) under `seed`, without touching the
    caller's random state: every kind's checks compare modules built this way."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.build(size, **options, **hparams).to(dtype)


def _build(spec: MechanismSpec, dim: int, hparams: Mapping[str, Any], causal: bool, seed: int,
           dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    return build_seeded(spec, dim, hparams, seed, dtype, causal=causal)


def _inputs(batch: int, length: int, dim: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(batch, length, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def output_mismatch(x: torch.Tensor, out: torch.Tensor, where: str = "") -> CheckResult | None:
    """The shape_dtype failure of one call, if any: a mechanism returns its input's shape and dtype, finite."""
    if out.shape != x.shape or out.dtype != x.dtype:
        return CheckResult("shape_dtype", False, f"input {tuple(x.shape)} {x.dtype} gave output "
                                                 f"{tuple(out.shape)} {out.dtype}")
    if not torch.isfinite(out).all():
        return CheckResult("shape_dtype", False, f"non-finite output for input {tuple(x.shape)} {x.dtype}{where}")
    return None


def _shapes(spec, dim, hparams, causal, seed) -> CheckResult:
    for dtype in (torch.float32, torch.float64):
        module = _build(spec, dim, hparams, causal, seed, dtype)
        for batch in (1, 2):
            for length in LENGTHS:
                x = _inputs(batch, length, dim, seed, dtype)
                with torch.no_grad():
                    out = module(x)
                failure = output_mismatch(x, out)
                if failure:
                    return failure
    return CheckResult("shape_dtype", True, f"batch 1-2, lengths {', '.join(map(str, LENGTHS))}, float32/64")


def _causal_leak(spec, dim, hparams, seed) -> CheckResult:
    """Perturb every suffix x[:, t+1:] in turn; outputs at positions <= t must not move."""
    module = _build(spec, dim, hparams, True, seed, torch.float64)
    x = _inputs(1, LEAK_LENGTH, dim, seed, torch.float64)
    noise = _inputs(1, LEAK_LENGTH, dim, seed + 1, torch.float64)
    with torch.no_grad():
        base = module(x)
        for t in range(LEAK_LENGTH - 1):
            changed = torch.cat([x[:, : t + 1], noise[:, t + 1:]], dim=1)
            moved = (module(changed)[:, : t + 1] - base[:, : t + 1]).abs()
            limit = LEAK_TOLERANCE * (1 + base[:, : t + 1].abs())
            if (moved > limit).any():
                first = int((moved > limit).any(-1).nonzero()[0, 1])
                return CheckResult("causal_leak", False, f"output at position {first} changed when tokens after "
                                                         f"position {t} changed (max {float(moved.max()):.2e})")
    return CheckResult("causal_leak", True, f"every position of a length-{LEAK_LENGTH} input")


def _batch_independence(spec, dim, hparams, causal, seed) -> CheckResult:
    module = _build(spec, dim, hparams, causal, seed, torch.float64)
    x = _inputs(2, 9, dim, seed, torch.float64)
    with torch.no_grad():
        alone = module(x[:1])
        together = module(torch.cat([x[:1], _inputs(1, 9, dim, seed + 7, torch.float64)]))[:1]
    if not torch.allclose(alone, together, rtol=1e-9, atol=1e-9):
        return CheckResult("batch_independence", False, "an example's output depends on another example")
    return CheckResult("batch_independence", True)


def _gradients(spec, dim, hparams, causal, seed) -> CheckResult:
    module = _build(spec, dim, hparams, causal, seed)
    module(_inputs(2, LEAK_LENGTH, dim, seed)).square().sum().backward()
    missing = [name for name, p in module.named_parameters()
               if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))]
    if missing:
        return CheckResult("gradients", False, f"no gradient reaches {', '.join(missing)}")
    return CheckResult("gradients", True, f"{sum(1 for _ in module.parameters())} parameters")


def _determinism(spec, dim, hparams, causal, seed) -> CheckResult:
    outputs = []
    for _ in range(2):
        module = _build(spec, dim, hparams, causal, seed)
        with torch.no_grad():
            outputs.append(module(_inputs(2, 17, dim, seed)))
    if not torch.equal(*outputs):
        return CheckResult("determinism", False, "the same seed gave different modules or outputs")
    return CheckResult("determinism", True)


def _flops(spec, dim, hparams, causal, seed) -> CheckResult:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    module = _build(spec, dim, hparams, causal, seed)
    batch, length = 2, LEAK_LENGTH
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(_inputs(batch, length, dim, seed))
    measured = counter.get_total_flops()
    declared = spec.flops(batch, length, dim, causal=causal, **hparams)
    return flops_verdict(spec, declared.total, measured)



def flops_verdict(spec, declared: int, measured: int) -> CheckResult:
    """Dense mechanisms must declare exactly what FlopCounterMode measures; sparse ones declare their
    effective work, reported beside the dense reference's."""
    if spec.flops_exact:
        if declared != measured:
            return CheckResult("flops", False, f"declared {declared:,} but FlopCounterMode measured {measured:,}")
        return CheckResult("flops", True, f"declared = measured = {measured:,}")
    if declared <= 0:
        return CheckResult("flops", False, f"declared effective FLOPs {declared} must be positive")
    return CheckResult("flops", True, f"effective {declared:,} vs dense reference {measured:,} "
                                      f"(ratio {declared / max(measured, 1):.3f})")


def _cache(spec, dim, hparams) -> CheckResult:
    if spec.cache is None:
        return CheckResult("cache", True, "no cache cost declared")
    cost = spec.cache(LEAK_LENGTH, dim, **hparams)
    values = cost.as_dict()
    if any(not isinstance(v, int) or v < 0 for v in values.values()):
        return CheckResult("cache", False, f"cache costs must be non-negative integers, got {values}")
    return CheckResult("cache", True, ", ".join(f"{k}={v:,}" for k, v in values.items()))


def check_mechanism(spec: MechanismSpec, hparams: Mapping[str, Any] | None = None, dim: int | None = None,
                    profile: str | None = "smoke", seed: int = 0) -> ConformanceReport:
    """Run every check; a check that raises fails with the exception as its detail."""
    params = dict(hparams) if hparams is not None else spec.hparams(profile)
    if spec.kind == "pretrained":
        from attnbench.conformance_pretrained import HIDDEN, pretrained_checks

        return _run_checks(ConformanceReport(spec.name, params, HIDDEN), pretrained_checks(spec, params, seed))
    if spec.kind == "feature_map":
        from attnbench.conformance_feature_map import CHANNELS, feature_map_checks

        channels = (dim,) if dim else CHANNELS
        return _run_checks(ConformanceReport(spec.name, params, max(channels)),
                           feature_map_checks(spec, params, channels, seed))
    if spec.kind == "fusion":
        from attnbench.conformance_fusion import fusion_checks

        width = dim or check_width(params)
        return _run_checks(ConformanceReport(spec.name, params, width), fusion_checks(spec, params, width, seed))
    width = dim or check_width(params)
    report = ConformanceReport(spec.name, params, width)
    causal = spec.supports_causal
    checks = [
        ("shape_dtype", lambda: _shapes(spec, width, params, causal, seed)),
        ("causal_leak", lambda: _causal_leak(spec, width, params, seed) if causal else
            CheckResult("causal_leak", True, "bidirectional mechanism: not applicable")),
        ("batch_independence", lambda: _batch_independence(spec, width, params, causal, seed)),
        ("gradients", lambda: _gradients(spec, width, params, causal, seed)),
        ("determinism", lambda: _determinism(spec, width, params, causal, seed)),
        ("flops", lambda: _flops(spec, width, params, causal, seed)),
        ("cache", lambda: _cache(spec, width, params)),
    ]
    if causal and spec.supports_bidirectional:
        checks.append(("bidirectional", lambda: _shapes(spec, width, params, False, seed)))
    return _run_checks(report, checks)


def _run_checks(report: ConformanceReport, checks: list[tuple[str, Callable[[], CheckResult]]]) -> ConformanceReport:
    for name, run in checks:
        try:
            result = run()
            report.results.append(CheckResult(name, result.passed, result.detail))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a crash (SystemExit included) is a failed check, reported with its reason
            report.results.append(CheckResult(name, False, _headline(exc)))
    return report


def _headline(exc: BaseException) -> str:
    return (f"{type(exc).__name__}: {exc}".strip().splitlines() or [type(exc).__name__])[0]


@dataclass(frozen=True)
class CheckJob:
    """One mechanism's conformance check as a worker-process job (`attnbench.isolation`): under `--isolate` and
    the cell limits a plug-in that segfaults, hangs or exhausts memory in its check is refused, not fatal."""

    subject: tuple[str, tuple[tuple[str, Any], ...]]  # (mechanism name, its hyper-parameters as items)

    def run(self, device: str, on_step: Callable[[int, int | None], None]) -> ConformanceReport:
        from attnbench.registry import MECHANISMS

        name, hparams = self.subject
        try:
            spec = MECHANISMS.get(name)
        except AttnbenchError as exc:
            return self.failed(exc, "")
        return check_mechanism(spec, hparams=dict(hparams))

    def failed(self, exc: BaseException, prefix: str) -> ConformanceReport:
        return self._refused("conformance", prefix + _headline(exc))

    def lost(self, status: str, error: str, wall_seconds: float, started_at: Any) -> ConformanceReport:
        return self._refused("isolation", f"the check's {error.splitlines()[0]}" if status == "failed"
                             else f"the check {error.splitlines()[0]}")

    def plugins(self) -> tuple[str | None, str | None]:
        return None, self.subject[0]

    def _refused(self, check: str, detail: str) -> ConformanceReport:
        name, hparams = self.subject
        report = ConformanceReport(name, dict(hparams), 0)
        report.results.append(CheckResult(check, False, detail))
        return report


class NonconformingError(AttnbenchError):
    """A mechanism asked for by name failed conformance; `--allow-nonconforming` overrides."""


def screen_plan(plan: Any, requested: set[str], allow_nonconforming: bool = False, isolated: bool = False,
                limits: Any = None, jobs: int = 1) -> Any:
    """Check each (mechanism, hyper-parameters) of a plan once and mark its cells.

    A failure refuses the run when the mechanism was asked for by name, drops its cells with a
    note when it was only picked up as a default, and with `allow_nonconforming` runs it with
    the failure recorded on every cell. `isolated` runs each check in a fresh process under the
    cells' `limits` (`attnbench.isolation.CellLimits`), as `--isolate` runs the cells.
    """
    from dataclasses import replace

    keys = list(dict.fromkeys((cell.mechanism, canonical_json(dict(cell.hparams))) for cell in plan.cells))
    hparams = {(cell.mechanism, canonical_json(dict(cell.hparams))): dict(cell.hparams) for cell in plan.cells}
    verdicts = _check_all(keys, hparams, isolated, limits, jobs)
    kept = []
    for key in keys:
        report = verdicts[key]
        if not report.passed and not allow_nonconforming:
            message = (f"mechanism {key[0]!r} fails conformance: {report.reason()} "
                       f"(see `attnbench check {key[0]}`; --allow-nonconforming runs it anyway)")
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
        raise NonconformingError("no mechanism in this run passes conformance: " + "; ".join(plan.notes))
    return plan


def _check_all(keys: list[tuple[str, str]], hparams: dict, isolated: bool, limits: Any,
               jobs: int) -> dict[tuple[str, str], ConformanceReport]:
    """A report per key: here, one after another, or each in a fresh worker process under the limits."""
    job_list = [CheckJob((name, tuple(sorted(hparams[(name, text)].items())))) for name, text in keys]
    if not isolated:
        return {key: job.run("cpu", lambda step, planned: None) for key, job in zip(keys, job_list)}
    from attnbench.isolation import CellLimits, WorkerPool

    reports: dict[tuple[str, str], ConformanceReport] = {}

    def finished(report: ConformanceReport) -> None:
        reports[(report.mechanism, canonical_json(report.hparams))] = report

    WorkerPool("cpu", max(1, min(jobs, len(job_list))), fresh=True, limits=limits or CellLimits()).run(
        job_list, lambda subject, index: None, finished, lambda: False)
    return reports
