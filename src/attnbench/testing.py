"""Helpers for plug-in authors' own test suites.

from attnbench.testing import assert_conforms

def test_my_mechanism_conforms():
    assert_conforms(MY_SPEC)             # or assert_conforms("my_mechanism")
"""

from __future__ import annotations

from typing import Any, Mapping

from attnbench.conformance import ConformanceReport, check_mechanism
from attnbench.mechanism import MechanismSpec


def assert_conforms(
    spec: MechanismSpec | str,
    hparams: Mapping[str, Any] | None = None,
    dim: int | None = None,
    profile: str | None = "smoke",
) -> ConformanceReport:
    """Fail with every failed check named when the mechanism does not conform; return the report."""
    if isinstance(spec, str):
        from attnbench.registry import MECHANISMS

        spec = MECHANISMS.get(spec)
    report = check_mechanism(spec, hparams=hparams, dim=dim, profile=profile)
    if not report.passed:
        raise AssertionError(f"mechanism {spec.name!r} does not conform: {report.reason()}")
    return report
