"""Budgets: validation, and the training loop stopping within one step of the budget."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnbench.budget import Budget, BudgetMeter
from attnbench.errors import ConfigError
from attnbench.toolkit.training import NonFiniteLossError, train_under_budget, warmup_cosine


@pytest.mark.parametrize(
    "kind,value",
    [
        ("flops", 0),
        ("flops", -1),
        ("steps", 2.5),
        ("seconds", math.inf),
        ("tokens", math.nan),
        ("joules", 10),
        ("flops", True),
    ],
)
def test_invalid_budgets_are_refused(kind, value):
    with pytest.raises(ConfigError):
        Budget(kind, value)


@pytest.mark.parametrize("text", ["abc", "", "-3", "0", "nan"])
def test_parse_refuses_non_positive_numbers(text):
    with pytest.raises(ConfigError, match="budget"):
        Budget.parse("flops", text)


def test_parse_accepts_scientific_notation():
    assert Budget.parse("flops", "2e11") == Budget("flops", 2e11)


def tiny_problem(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    return model, optimizer, (lambda step: (x, y)), torch.nn.functional.mse_loss


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["flops", "steps", "tokens"]),
    value=st.integers(1, 5000),
    per_step=st.integers(1, 700),
)
def test_loop_stops_at_most_one_step_past_the_budget(kind, value, per_step):
    model, optimizer, batches, loss = tiny_problem()
    budget = Budget(kind, value)
    result = train_under_budget(
        model, batches, loss, optimizer, budget, flops_per_step=per_step, tokens_per_step=per_step
    )
    meter = result.meter
    step_cost = 1 if kind == "steps" else per_step
    assert meter.used() >= value
    assert meter.used() - step_cost < value  # the last step started before the budget was spent
    assert meter.steps == math.ceil(value / step_cost)
    assert meter.flops == meter.steps * per_step and meter.tokens == meter.steps * per_step


def test_seconds_budget_counts_training_time_only():
    model, optimizer, batches, loss = tiny_problem()
    result = train_under_budget(model, batches, loss, optimizer, Budget("seconds", 0.05), 1, 1)
    assert 0.05 <= result.meter.seconds
    assert result.meter.planned_steps() is None


def test_non_finite_loss_fails_the_run():
    model, optimizer, _, loss = tiny_problem()
    bad = (torch.full((8, 4), math.nan), torch.zeros(8, 1))
    with pytest.raises(NonFiniteLossError, match="non-finite"):
        train_under_budget(model, lambda step: bad, loss, optimizer, Budget("steps", 100), 1, 1)


def test_meter_planned_steps():
    meter = BudgetMeter(Budget("flops", 1000), flops_per_step=300, tokens_per_step=10)
    assert meter.planned_steps() == 4
    assert BudgetMeter(Budget("tokens", 25), 1, 10).planned_steps() == 3


def test_schedule_warms_up_then_decays_to_zero():
    assert warmup_cosine(0, 1000) < warmup_cosine(50, 1000) <= 1.0
    assert warmup_cosine(99, 1000) == pytest.approx(1.0)
    assert warmup_cosine(999, 1000) == pytest.approx(0.0, abs=1e-4)
    assert warmup_cosine(5000, None) == 1.0
