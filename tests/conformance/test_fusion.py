"""Fusion conformance: every built-in passes, and each check catches the fault it exists for."""

from __future__ import annotations

from dataclasses import replace

import pytest
from torch import nn

from attnbench.conformance import check_mechanism
from attnbench.mechanism import FlopBreakdown, MechanismSpec
from attnbench.mechanisms import cross
from attnbench.registry import MECHANISMS
from tests.conftest import run_cli

BUILT_INS = ("cross", "coguided", "mutual", "ccam", "cue_bottleneck")


@pytest.mark.parametrize("name", BUILT_INS)
def test_every_fusion_built_in_passes_at_its_smoke_and_paper_settings(name):
    spec = MECHANISMS.get(name)
    for hparams in (spec.hparams("smoke"), {**spec.hparams("smoke"), "num_heads": 4}):
        report = check_mechanism(spec, hparams=hparams)
        assert report.passed, report.reason()
        assert [r.name for r in report.results] == [
            "shape_dtype",
            "masks_honoured",
            "inputs_used",
            "batch_independence",
            "gradients",
            "determinism",
            "flops",
        ]


@pytest.mark.parametrize(
    "name,hparams",
    [
        ("mutual", {"mask": "causal"}),
        ("cue_bottleneck", {"stage": "restored"}),
        ("ccam", {"frames": 3}),
    ],
)
def test_the_variants_pass_too(name, hparams):
    spec = MECHANISMS.get(name)
    report = check_mechanism(spec, hparams={**spec.hparams("smoke"), **hparams})
    assert report.passed, report.reason()


class ReadsPadding(nn.Module):
    """Averages every context token, padded or not."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, context, masks=None):
        return self.proj(x) + context.mean(1, keepdim=True)


class CountsPadding(nn.Module):
    """Reads only real tokens, but scales by the padded length (as a causal order over padded
    queries would)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, context, masks=None):
        real = (
            masks.context[..., None].to(context.dtype) if masks and masks.context is not None else 1
        )
        return self.proj(x) * x.shape[1] + (context * real).sum(1, keepdim=True)


class IgnoresImage(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, context, masks=None):
        return self.proj(x) + 0 * context.sum()


def _linear_flops(batch, q_len, kv_len, dim, **_):
    return FlopBreakdown(projections=2 * batch * q_len * dim * dim)


def _spec(name, module, flops=_linear_flops):
    return MechanismSpec(
        name=name,
        kind="fusion",
        description="test",
        paper="-",
        build=lambda dim, **h: module(dim),
        flops=flops,
        supports_causal=False,
    )


def _failed(report):
    return {r.name: r.detail for r in report.results if not r.passed}


def test_a_module_that_reads_padding_fails_masks_honoured():
    failed = _failed(check_mechanism(_spec("t_padding", ReadsPadding), hparams={}))
    assert set(failed) == {"masks_honoured"} and "padded context tokens" in failed["masks_honoured"]


def test_a_module_whose_real_outputs_depend_on_the_amount_of_padding_fails_masks_honoured():
    failed = _failed(check_mechanism(_spec("t_counts", CountsPadding), hparams={}))
    assert "masks_honoured" in failed and "how much padding" in failed["masks_honoured"]


def test_a_module_that_ignores_the_image_fails_inputs_used():
    failed = _failed(check_mechanism(_spec("t_blind", IgnoresImage), hparams={}))
    assert "inputs_used" in failed and "context" in failed["inputs_used"]


def test_wrong_flops_fail_and_name_the_shape():
    wrong = replace(
        cross.SPEC, name="t_wrong", flops=lambda *a, **h: cross.flops(*a, **h).scaled(2)
    )
    failed = _failed(check_mechanism(wrong, hparams={"num_heads": 4}))
    assert set(failed) == {"flops"} and "Lq 7, Lk 33" in failed["flops"]


def test_attnbench_check_reports_fusion_mechanisms():
    result = run_cli("check", "ccam", "--hparam", "frames=2", "--json")
    assert result.returncode == 0, result.stderr
    assert '"masks_honoured"' in result.stdout and '"frames": 2' in result.stdout
