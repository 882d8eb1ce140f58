"""The budgeted training loop shared by every suite that trains from scratch.

It stops when the budget is spent (checked before each step, so at most one step past it),
times only training steps with the device synchronised when the budget is in seconds, and
fails loudly on a non-finite loss instead of training on garbage.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from attnbench.budget import Budget, BudgetMeter
from attnbench.cell import CellOutcome

FINITE_CHECK_EVERY = 25  # steps between loss reads; each read syncs an accelerator


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the cell fails with this reason."""


@dataclass
class TrainResult:
    meter: BudgetMeter
    losses: list[tuple[int, float]] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        return self.losses[-1][1] if self.losses else math.nan


PARTS = ("attention", "selection", "projections")


def placed_mechanism_costs(forward_flops: dict[str, float]) -> dict[str, float]:
    """Cost columns from a model's forward FLOPs on one example (`mechanism_<part>` keys): the
    mechanism's FLOPs summed over every place it sits in the network."""
    return {f"flops_{part}": forward_flops[f"mechanism_{part}"] for part in PARTS}


def trained_outcome(
    result: TrainResult,
    model: torch.nn.Module,
    metrics: dict[str, float],
    costs: dict[str, float],
    details: dict[str, object],
) -> CellOutcome:
    """The outcome of a cell trained under its budget: the suite's metrics and details, with what
    the meter counted, the model's size, the final and the last twenty training losses."""
    return CellOutcome(
        metrics={**metrics, "final_train_loss": result.final_loss},
        costs=costs,
        budget_used=result.meter.used(),
        flops=result.meter.flops,
        steps=result.meter.steps,
        params=sum(p.numel() for p in model.parameters()),
        details={"used": result.meter.as_dict(), **details, "losses": result.losses[-20:]},
    )


def adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with the fused update (one kernel for all parameters): on a small CPU model the
    per-parameter update loop is a tenth of the step."""
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)


def warmup_cosine(
    step: int, planned: int | None, warmup_fraction: float = 0.1, max_warmup: int = 100
) -> float:
    """LR multiplier: linear warm-up, then cosine decay to zero over the planned steps (flat if
    unknown)."""
    warmup = min(max_warmup, max(1, int(warmup_fraction * (planned or 10 * max_warmup))))
    if step < warmup:
        return (step + 1) / warmup
    if planned is None or planned <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (planned - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_under_budget(
    model: torch.nn.Module,
    next_batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    budget: Budget,
    flops_per_step: int,
    tokens_per_step: int,
    on_step: Callable[[int, int | None], None] = lambda step, total: None,
    lr_multiplier: Callable[[int, int | None], float] = warmup_cosine,
) -> TrainResult:
    """Train until `budget` is spent; `next_batch(step)` gives `(inputs, targets)` on the model's
    device."""
    meter = BudgetMeter(budget, flops_per_step, tokens_per_step)
    planned = meter.planned_steps()
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    device = next(model.parameters()).device
    timed_sync = budget.kind == "seconds"
    result = TrainResult(meter)
    finite = torch.ones((), dtype=torch.bool, device=device)
    model.train()
    while not meter.spent():
        if timed_sync:
            _synchronize(device)
        started = time.perf_counter()
        factor = lr_multiplier(meter.steps, planned)
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * factor
        inputs, targets = next_batch(meter.steps)
        loss = loss_fn(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if timed_sync:
            _synchronize(device)
        meter.record_step(time.perf_counter() - started)
        finite &= torch.isfinite(loss.detach())
        if meter.steps % FINITE_CHECK_EVERY == 0 or meter.spent():
            _check_finite(finite, loss, meter.steps, result)
        on_step(meter.steps, planned)
    return result


def _check_finite(finite: torch.Tensor, loss: torch.Tensor, step: int, result: TrainResult) -> None:
    if not bool(finite):
        raise NonFiniteLossError(f"training loss became non-finite by step {step}")
    result.losses.append((step, float(loss.detach())))
