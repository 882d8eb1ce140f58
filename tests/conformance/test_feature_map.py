"""The feature_map checks pass the built-ins and catch each kind of broken module."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from attnbench.cli import main
from attnbench.conformance import ConformanceReport, check_mechanism
from attnbench.mechanism import FlopBreakdown, MechanismSpec
from attnbench.mechanisms import se
from attnbench.testing import assert_conforms

NAMES = ["none", "se", "cbam", "coord", "bmta"]


@pytest.mark.parametrize("name", NAMES)
def test_builtins_conform(name):
    report = assert_conforms(name)
    assert [r.name for r in report.results] == [
        "shape_dtype",
        "batch_independence",
        "gradients",
        "determinism",
        "flops",
        "reported_values",
    ]
    assert report.dim == 64 and "16 channels" in next(
        r.detail for r in report.results if r.name == "flops"
    )


def test_one_channel_count_when_asked():
    report = check_mechanism(se.SPEC, dim=24)
    assert report.passed and report.dim == 24 and "24 channels" in report.results[4].detail


def test_bmta_reports_alpha():
    report = assert_conforms("bmta")
    assert report.results[-1].detail == "alpha=0.6225"


class BatchMixer(nn.Identity):
    """Subtracts the batch mean: image 0 depends on image 1."""

    def forward(self, x):
        return x - x.mean(0, keepdim=True)


class Shrinks(nn.Identity):
    """Pools away the spatial dimensions."""

    def forward(self, x):
        return x.mean((2, 3), keepdim=True)


class Forgets(se.SqueezeExcite):
    """Carries a parameter its forward never reads."""

    def __init__(self, channels):
        super().__init__(channels)
        self.forgotten = nn.Parameter(torch.ones(3))


class Noisy(se.SqueezeExcite):
    def forward(self, x):
        unseeded = torch.Generator()
        unseeded.seed()
        return super().forward(x) + 1e-3 * torch.rand(
            x.shape, generator=unseeded, dtype=torch.float64
        ).to(x.dtype)


class BadReport(se.SqueezeExcite):
    def reported_values(self):
        return {"alpha": float("nan")}


def broken(module, flops=se.flops) -> MechanismSpec:
    return MechanismSpec(
        name="broken",
        kind="feature_map",
        description="broken on purpose",
        paper="none",
        build=lambda channels, **_: module(channels),
        flops=flops,
        supports_causal=False,
    )


@pytest.mark.parametrize(
    "spec,check",
    [
        (broken(BatchMixer, flops=lambda *a, **k: FlopBreakdown()), "batch_independence"),
        (broken(Shrinks, flops=lambda *a, **k: FlopBreakdown()), "shape_dtype"),
        (broken(Forgets), "gradients"),
        (broken(Noisy), "determinism"),
        (broken(se.SqueezeExcite, flops=lambda *a, **k: FlopBreakdown(attention=1)), "flops"),
        (broken(BadReport), "reported_values"),
    ],
)
def test_each_defect_is_caught_by_its_check(spec, check):
    assert check in {r.name for r in check_mechanism(spec).results if not r.passed}


def test_check_without_names_covers_sequence_and_feature_map(monkeypatch, capsys):
    from attnbench import conformance
    from attnbench.mechanisms import dense, mha
    from attnbench.registry import MECHANISMS

    monkeypatch.setattr(
        MECHANISMS, "load_all", lambda: ({"se": se.SPEC, "mha": mha.SPEC, "dense": dense.SPEC}, {})
    )
    monkeypatch.setattr(
        conformance,
        "check_mechanism",
        lambda spec, hparams, profile: ConformanceReport(spec.name, dict(hparams), 0),
    )
    assert main(["check", "--json"]) == 0
    assert [r["mechanism"] for r in json.loads(capsys.readouterr().out)] == ["mha", "se"]
