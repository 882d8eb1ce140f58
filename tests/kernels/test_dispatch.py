"""Which implementation a mechanism runs, and that every cell records it.

On a CPU the mechanisms run their references (and say so); with ATTNBENCH_KERNELS=on and Triton's
interpreter they run their kernels, which must give the reference module's outputs and gradients
(float32; |kernel - reference| <= 5e-5 + 1e-4 |reference|, for the output and every parameter's and
the input's gradient).
"""

from __future__ import annotations

import json

import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from attnbench.budget import Budget
from attnbench.cell import CellOutcome
from attnbench.errors import ConfigError
from attnbench.kernels import dispatch
from attnbench.registry import MECHANISMS, SUITES
from attnbench.run.planning import RunRequest, plan_run
from attnbench.run.runner import run_plan
from attnbench.store.database import Store
from attnbench.store.schema import Cell
from attnbench.suite import Suite, Task

ATOL, RTOL = 5e-5, 1e-4
CASES = [
    ("moba", {"block_size": 8, "top_k": 3}),
    ("moba", {"block_size": 24, "top_k": 2, "key_conv": 3}),
    ("sliding_window", {"window": 16}),
    ("sliding_window", {"window": 9, "causal": False}),
    ("dma", {"window": 8}),
    ("dma", {"window": 8, "causal": False}),
    ("lightning", {"block_size": 8}),
    ("linear", {}),
]


def run_module(name: str, hparams: dict, x: torch.Tensor) -> tuple[torch.Tensor, list, dict]:
    torch.manual_seed(0)
    module = MECHANISMS.get(name).build(32, num_heads=2, **hparams)
    with dispatch.recording() as used:
        out = module(x)
    grads = torch.autograd.grad(out.square().sum(), [x, *module.parameters()], allow_unused=True)
    return out, list(grads), dict(used)


@pytest.mark.parametrize("name", sorted({name for name, _ in CASES}))
def test_on_a_cpu_the_reference_runs_and_is_recorded(name, monkeypatch):
    monkeypatch.delenv("ATTNBENCH_KERNELS", raising=False)
    assert run_module(name, {}, torch.randn(1, 20, 32, requires_grad=True))[2] == {
        name: dispatch.REFERENCE
    }


def test_off_forces_the_reference_and_a_bad_mode_is_refused(monkeypatch):
    monkeypatch.setenv("ATTNBENCH_KERNELS", "off")
    assert run_module("linear", {}, torch.randn(1, 8, 32, requires_grad=True))[2] == {
        "linear": dispatch.REFERENCE
    }
    monkeypatch.setenv("ATTNBENCH_KERNELS", "sometimes")
    with pytest.raises(ConfigError, match="ATTNBENCH_KERNELS"):
        run_module("linear", {}, torch.randn(1, 8, 32, requires_grad=True))


def test_a_block_that_ran_both_says_mixed():
    with dispatch.recording() as outer:
        dispatch.record("moba", dispatch.TRITON)
        with dispatch.recording() as inner:
            dispatch.record("moba", dispatch.REFERENCE)
    assert outer == {"moba": "mixed"} and inner == {"moba": dispatch.REFERENCE}


@pytest.mark.parametrize("name,hparams", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_the_kernel_path_equals_the_reference_module(name, hparams, monkeypatch):
    pytest.importorskip("triton")
    x = torch.randn(1, 70, 32, requires_grad=True)  # 70: two 64-token tiles, the second short
    monkeypatch.setenv("ATTNBENCH_KERNELS", "off")
    expected, expected_grads, _ = run_module(name, hparams, x)
    monkeypatch.setenv("ATTNBENCH_KERNELS", "on")
    out, grads, used = run_module(name, hparams, x)
    assert used == {name: dispatch.TRITON}
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=RTOL)
    for got, want in zip(grads, expected_grads):
        assert (got is None) == (want is None)
        if got is not None:
            torch.testing.assert_close(got, want, atol=ATOL, rtol=RTOL)


class ForwardSuite(Suite):
    """One forward call of the mechanism per cell: enough to see which implementation ran."""

    name = "forward_once"
    description = "calls the mechanism once"
    primary_metric = "score"

    def tasks(self, profile):
        return [Task("t", {"seq_len": 12})]

    def default_budget(self, profile, task):
        return Budget("steps", 1)

    def run_cell(self, cell, mechanism, ctx):
        module = mechanism.build(32, **cell.hparams)
        out = module(torch.randn(1, cell.task_config["seq_len"], 32))
        return CellOutcome(
            metrics={"score": float(out.detach().mean())}, budget_used=1, flops=0, steps=1, params=0
        )


@pytest.mark.parametrize("mode,implementation", [("auto", "reference"), ("on", "triton")])
def test_each_stored_cell_names_the_implementation_it_ran(
    mode, implementation, monkeypatch, tmp_path
):
    if mode == "on":
        pytest.importorskip("triton")
    monkeypatch.setenv("ATTNBENCH_KERNELS", mode)
    SUITES.register(ForwardSuite())
    try:
        plan = plan_run(
            RunRequest(suite="forward_once", mechanisms=("sliding_window", "mha"), seeds=1), "cpu"
        )
        store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
        assert run_plan(plan, store).ok
    finally:
        SUITES.unregister("forward_once")
    with Session(store.engine) as session:
        stored = {c.mechanism: c.details for c in session.scalars(select(Cell))}
    stored = {k: json.loads(v) if isinstance(v, str) else v for k, v in stored.items()}
    assert stored["sliding_window"]["implementation"] == {"sliding_window": implementation}
    assert (
        "implementation" not in stored["mha"]
    )  # a mechanism without a kernel has no choice to record


def test_flop_counting_sees_the_reference_even_where_kernels_are_on(monkeypatch):
    """FlopCounterMode cannot look into a Triton kernel, so under it the reference runs and is
    counted."""
    pytest.importorskip("triton")
    from torch.utils.flop_counter import FlopCounterMode

    monkeypatch.setenv("ATTNBENCH_KERNELS", "on")
    module = MECHANISMS.get("linear").build(32, num_heads=2)
    with dispatch.recording() as used, torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.randn(2, 16, 32))
    assert used == {"linear": dispatch.REFERENCE}
    assert counter.get_total_flops() == MECHANISMS.get("linear").flops(2, 16, 32, num_heads=2).total


def test_float64_always_takes_the_reference(monkeypatch):
    """The kernels compute in float32 at best; a float64 check (conformance runs one) gets the
    reference."""
    monkeypatch.setenv("ATTNBENCH_KERNELS", "on")
    module = MECHANISMS.get("sliding_window").build(32, num_heads=2, window=4).double()
    with dispatch.recording() as used:
        module(torch.randn(1, 8, 32, dtype=torch.float64))
    assert used == {"sliding_window": dispatch.REFERENCE}


def test_heads_too_wide_for_the_kernels_tiles_take_the_reference(monkeypatch):
    """A float32 head of 256 (a 1 KiB row) does not fit the block-sparse kernel's tiles in a GPU's
    shared memory; a bfloat16 one of 256, or a float32 one of 128, does."""
    monkeypatch.setenv("ATTNBENCH_KERNELS", "on")
    with dispatch.recording() as used:
        assert not dispatch.use_kernel("moba", torch.zeros(1, 1, 4, 256))
    assert used == {"moba": dispatch.REFERENCE}
    if dispatch.triton_available() and dispatch.interpreting():
        assert dispatch.use_kernel("moba", torch.zeros(1, 1, 4, 128))
        assert dispatch.use_kernel("moba", torch.zeros(1, 1, 4, 256, dtype=torch.bfloat16))
