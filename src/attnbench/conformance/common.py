"""What every kind's checks share: a check's result, a mechanism's report, seeded builds and the
verdicts that more than one kind gives (output shape and dtype, declared FLOPs against measured)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

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
        return {
            "mechanism": self.mechanism,
            "passed": self.passed,
            "dim": self.dim,
            "hparams": self.hparams,
            "checks": [
                {"name": r.name, "passed": r.passed, "detail": r.detail} for r in self.results
            ],
        }


def check_width(hparams: Mapping[str, Any], preferred: int = 64) -> int:
    """A model width the hyper-parameters allow: `preferred` unless the head count does not
    divide it."""
    heads = int(hparams.get("num_heads", 1) or 1)
    return preferred if preferred % heads == 0 else heads * 8


def build_seeded(
    spec: MechanismSpec,
    size: int,
    hparams: Mapping[str, Any],
    seed: int,
    dtype: torch.dtype = torch.float32,
    **options: Any,
) -> torch.nn.Module:
    """The mechanism built (`spec.build(size, **options, **hparams)`) under `seed`, without touching
    the caller's random state: every kind's checks compare modules built this way."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.build(size, **options, **hparams).to(dtype)


def output_mismatch(x: torch.Tensor, out: torch.Tensor, where: str = "") -> CheckResult | None:
    """The shape_dtype failure of one call, if any: a mechanism returns its input's shape and
    dtype, finite."""
    if out.shape != x.shape or out.dtype != x.dtype:
        return CheckResult(
            "shape_dtype",
            False,
            f"input {tuple(x.shape)} {x.dtype} gave output {tuple(out.shape)} {out.dtype}",
        )
    if not torch.isfinite(out).all():
        return CheckResult(
            "shape_dtype", False, f"non-finite output for input {tuple(x.shape)} {x.dtype}{where}"
        )
    return None


def flops_verdict(spec, declared: int, measured: int) -> CheckResult:
    """Dense mechanisms must declare exactly what FlopCounterMode measures; sparse ones declare
    their effective work, reported beside the dense reference's."""
    if spec.flops_exact:
        if declared != measured:
            return CheckResult(
                "flops", False, f"declared {declared:,} but FlopCounterMode measured {measured:,}"
            )
        return CheckResult("flops", True, f"declared = measured = {measured:,}")
    if declared <= 0:
        return CheckResult("flops", False, f"declared effective FLOPs {declared} must be positive")
    return CheckResult(
        "flops",
        True,
        f"effective {declared:,} vs dense reference {measured:,} "
        f"(ratio {declared / max(measured, 1):.3f})",
    )


def run_checks(
    report: ConformanceReport, checks: list[tuple[str, Callable[[], CheckResult]]]
) -> ConformanceReport:
    for name, run in checks:
        try:
            result = run()
            report.results.append(CheckResult(name, result.passed, result.detail))
        except KeyboardInterrupt:
            raise
        except (
            BaseException
        ) as exc:  # a crash (SystemExit included) is a failed check, reported with its reason
            report.results.append(CheckResult(name, False, headline(exc)))
    return report


def headline(exc: BaseException) -> str:
    return (f"{type(exc).__name__}: {exc}".strip().splitlines() or [type(exc).__name__])[0]
