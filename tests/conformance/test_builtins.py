"""Every built-in mechanism passes `attnbench check`, with its own defaults and as MQAR smoke
runs it."""

from __future__ import annotations

import pytest

from attnbench.registry import MECHANISMS, SUITES
from attnbench.run.planning import cell_hparams
from attnbench.testing import assert_conforms

BUILTINS = sorted(
    name for name, claims in MECHANISMS.entries().items() if claims[0].distribution == "attnbench"
)
SEQUENCE = [name for name in BUILTINS if MECHANISMS.get(name).kind == "sequence"]
ELEMENTWISE_ONLY = {
    "gaam",
    "none",
}  # no matmul at all: 0 FLOPs under FlopCounterMode's convention (see its docstring)


def test_the_catalogue_is_registered():
    assert {
        "mha",
        "sliding_window",
        "linear",
        "gqa",
        "mla",
        "moba",
        "dma",
        "moh",
        "gaam",
        "rcmha",
        "lightning",
        "nsa",
        "landmark",
        "cca",
        "hcam",
        "titans_mac",
        "allmem",
        "none",
        "se",
        "cbam",
        "coord",
        "bmta",
    } <= set(BUILTINS)


@pytest.mark.parametrize("name", BUILTINS)
def test_conforms_with_smoke_defaults(name):
    assert_conforms(name)


@pytest.mark.parametrize("name", SEQUENCE)
def test_conforms_as_mqar_smoke_runs_it(name):
    spec = MECHANISMS.get(name)
    assert_conforms(spec, hparams=cell_hparams(spec, SUITES.get("mqar"), "smoke", {}))


@pytest.mark.parametrize("name", BUILTINS)
def test_paper_defaults_build_and_declare_costs(name):
    spec = MECHANISMS.get(name)
    hparams = spec.hparams("paper")
    if (
        spec.kind == "feature_map"
    ):  # (batch, channels, height, width); no cache: a CNN block keeps nothing
        flops = spec.flops(1, 256, 16, 16, **hparams)
        assert spec.cache is None and spec.build(256, **hparams) is not None
        expected_zero = name in ELEMENTWISE_ONLY
        assert (flops.total == 0) if expected_zero else (flops.total == flops.attention > 0)
        return
    if (
        spec.kind == "fusion"
    ):  # (batch, query length, context length, width); no cache: nothing is decoded
        flops = spec.flops(1, 24, 196, 256, **hparams)
        assert spec.cache is None and spec.build(256, **hparams) is not None
        assert flops.total > 0 and flops.attention > 0
        return
    if (
        spec.kind == "pretrained"
    ):  # (batch, length, heads, head width); cache: (length, kv heads, head width)
        flops, cost_args = spec.flops(1, 128, 8, 32, causal=True, **hparams), (128, 8, 32)
    else:
        flops, cost_args = spec.flops(1, 128, 256, causal=True, **hparams), (128, 256)
    if name in ELEMENTWISE_ONLY:
        assert flops.total == 0
    else:
        assert flops.total > 0 and flops.attention > 0
    assert spec.cache is not None, f"{name} declares no cache costs"
    cost = spec.cache(*cost_args, **hparams)
    assert (
        min(cost.kv_stored, cost.kv_read_per_token, cost.state) >= 0
        and cost.kv_read_per_token + cost.state > 0
    )
