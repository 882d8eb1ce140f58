"""Compute budgets: the quantity every comparison in attnbench is matched on.

FLOPs are the default because they are machine-independent: a CPU smoke run and a GPU paper run
speak the same unit. Seconds follow AlgoPerf: only training steps are timed, with the device
synchronised, and evaluation pauses the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from attnbench.errors import ConfigError

BUDGET_KINDS = ("flops", "steps", "seconds", "tokens")
_WHOLE_KINDS = ("steps", "tokens")


@dataclass(frozen=True)
class Budget:
    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in BUDGET_KINDS:
            raise ConfigError(f"budget kind {self.kind!r} is not one of {', '.join(BUDGET_KINDS)}")
        value = self.value
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ConfigError(f"budget {value!r} must be a positive finite number of {self.kind}")
        if self.kind in _WHOLE_KINDS and float(value) != int(value):
            raise ConfigError(f"budget {value!r} must be a whole number of {self.kind}")
        object.__setattr__(self, "value", float(value))

    @classmethod
    def parse(cls, kind: str, text: str | float) -> Budget:
        """A budget from user input such as `2e11`; a clear error for anything that is not a
        positive number."""
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise ConfigError(
                f"budget {text!r} is not a number; expected a positive number of {kind}, e.g. 2e11"
            ) from None
        return cls(kind, value)

    def label(self) -> str:
        return f"{self.value:.3g} {self.kind}"

    def as_dict(self) -> dict[str, float | str]:
        return {"kind": self.kind, "value": self.value}


@dataclass
class BudgetMeter:
    """Counts what a cell's training has used, in every unit, and says when the budget is spent.

    The loop asks `spent()` before each step, so training stops at most one step past its budget.
    """

    budget: Budget
    flops_per_step: int
    tokens_per_step: int
    steps: int = 0
    flops: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def record_step(self, seconds: float) -> None:
        self.steps += 1
        self.flops += self.flops_per_step
        self.tokens += self.tokens_per_step
        self.seconds += seconds

    def used(self) -> float:
        return float(getattr(self, self.budget.kind))

    def spent(self) -> bool:
        return self.used() >= self.budget.value

    def planned_steps(self) -> int | None:
        """Steps the budget allows, when that is known up front (not for seconds)."""
        per_step = {"steps": 1, "flops": self.flops_per_step, "tokens": self.tokens_per_step}.get(
            self.budget.kind
        )
        if per_step is None:
            return None
        return max(1, math.ceil(self.budget.value / per_step))

    def as_dict(self) -> dict[str, float]:
        return {
            "steps": self.steps,
            "flops": self.flops,
            "tokens": self.tokens,
            "seconds": self.seconds,
        }
