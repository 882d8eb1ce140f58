"""Conformance: the integrity guard every mechanism passes before it is benchmarked.

A mechanism that leaks the future scores perfectly on recall tasks by cheating, one whose
declared FLOPs are wrong is compared on a false budget, and one that silently ignores a
parameter wastes its budget. Each check here is run on random inputs at small sizes, including
batch 1 and lengths that are no multiple of any block size.
"""

from __future__ import annotations

from typing import Any, Mapping

from attnbench.conformance.common import CheckResult, ConformanceReport, check_width, run_checks
from attnbench.conformance.feature_map import CHANNELS, feature_map_checks
from attnbench.conformance.fusion import fusion_checks
from attnbench.conformance.pretrained import HIDDEN, pretrained_checks
from attnbench.conformance.sequence import sequence_checks
from attnbench.mechanism import MechanismSpec

__all__ = ["CheckResult", "ConformanceReport", "check_mechanism"]


def check_mechanism(
    spec: MechanismSpec,
    hparams: Mapping[str, Any] | None = None,
    dim: int | None = None,
    profile: str | None = "smoke",
    seed: int = 0,
) -> ConformanceReport:
    """Run every check of the mechanism's kind; a check that raises fails with the exception as
    its detail."""
    params = dict(hparams) if hparams is not None else spec.hparams(profile)
    if spec.kind == "pretrained":
        return run_checks(
            ConformanceReport(spec.name, params, HIDDEN), pretrained_checks(spec, params, seed)
        )
    if spec.kind == "feature_map":
        channels = (dim,) if dim else CHANNELS
        return run_checks(
            ConformanceReport(spec.name, params, max(channels)),
            feature_map_checks(spec, params, channels, seed),
        )
    width = dim or check_width(params)
    if spec.kind == "fusion":
        return run_checks(
            ConformanceReport(spec.name, params, width), fusion_checks(spec, params, width, seed)
        )
    return run_checks(
        ConformanceReport(spec.name, params, width), sequence_checks(spec, params, width, seed)
    )
