"""A cell: one suite x mechanism x task x budget x seed, the unit of work and of storage."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from attnbench.budget import Budget

STATUSES = ("done", "failed", "skipped", "timeout", "oom")

# Per mechanism layer, one sequence, at the task's length and width: forward FLOPs by part, and
# the decode-time memory (KV cache kept, bytes of it read per new token, recurrent state).
COST_COLUMNS = (
    "flops_attention",
    "flops_selection",
    "flops_projections",
    "kv_cache_bytes",
    "kv_read_bytes_per_token",
    "state_bytes",
)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class CellSpec:
    suite: str
    mechanism: str
    profile: str
    task: str
    task_config: Mapping[str, Any]
    hparams: Mapping[str, Any]
    budget: Budget
    seed: int
    suite_version: str = "1"
    primary_metric: str = "score"
    higher_is_better: bool = True
    conformance: str = (
        "unchecked"  # "passed", or "failed: <reason>" when run with --allow-nonconforming
    )

    def config(self) -> dict[str, Any]:
        """Everything but seed and budget that decides the result; seeds of one config are
        compared together."""
        return {
            "suite": self.suite,
            "suite_version": self.suite_version,
            "mechanism": self.mechanism,
            "profile": self.profile,
            "task": self.task,
            "task_config": dict(self.task_config),
            "hparams": dict(self.hparams),
        }

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.config()).encode()).hexdigest()[:16]

    @property
    def resume_key(self) -> tuple[str, str, float, int]:
        return (self.config_hash, self.budget.kind, self.budget.value, self.seed)

    def label(self) -> str:
        return f"{self.suite}/{self.task} {self.mechanism} seed={self.seed}"


@dataclass
class CellOutcome:
    """What a suite reports for a finished cell; the runner adds timing, memory and status."""

    metrics: dict[str, float]
    budget_used: float
    flops: float
    steps: int
    params: int
    details: dict[str, Any] = field(default_factory=dict)
    costs: dict[str, float] = field(
        default_factory=dict
    )  # keys of COST_COLUMNS, at the task's shape


@dataclass
class CellRecord:
    """A finished cell as the store writes it."""

    spec: CellSpec
    status: str
    outcome: CellOutcome | None = None
    error: str | None = None
    wall_seconds: float = 0.0
    peak_memory_bytes: int | None = None
    memory_kind: str | None = None
    started_at: Any = None
    finished_at: Any = None
