"""`attnbench check` for the pretrained kind: the built-ins pass, a leaky or wrong mechanism is
caught."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("transformers")

from attnbench.conformance import check_mechanism
from attnbench.mechanism import MechanismSpec
from attnbench.mechanisms import dense
from attnbench.testing import assert_conforms


def pretrained_spec(name: str, attention) -> MechanismSpec:
    return MechanismSpec(
        name=name,
        kind="pretrained",
        description="",
        paper="",
        build=lambda: attention,
        flops=dense.flops,
        cache=dense.cache,
    )


def bidirectional(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Ignores causality: every query sees the whole prompt."""
    return dense.build()(module, query, key, value, None, scaling=scaling, is_causal=False)


def overscaled(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    return dense.build()(
        module, query, key, value, attention_mask, scaling=2 * scaling, dropout=dropout, **kwargs
    )


def failed(spec) -> dict[str, str]:
    return {r.name: r.detail for r in check_mechanism(spec).results if not r.passed}


@pytest.mark.parametrize("name", ["dense", "streaming"])
def test_builtins_conform(name):
    report = assert_conforms(name)
    assert {r.name for r in report.results} >= {
        "shape_dtype",
        "causal_leak",
        "determinism",
        "reference",
        "flops",
    }


def test_a_mechanism_that_sees_the_future_is_caught():
    assert (
        "logits at position 0 changed"
        in failed(pretrained_spec("peeking", bidirectional))["causal_leak"]
    )


def test_a_dense_that_is_not_the_models_sdpa_is_caught():
    assert "exceeds 1e-05" in failed(pretrained_spec("dense", overscaled))["reference"]


def test_without_transformers_the_check_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    assert (
        "pip install 'attnbench[pretrained]'"
        in failed(pretrained_spec("dense", overscaled))["transformers"]
    )
