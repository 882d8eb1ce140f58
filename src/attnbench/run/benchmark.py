"""`attnbench bench kernels` as a library call: plan the `kernels` suite, run it into the store,
summarise. A run of the suite like any other, so it lives with the runner, not in the suite.

It is the suite run with the benchmark's choices (one seed, cells in this process so nothing
competes for the GPU, optionally fewer lengths or mechanisms), so its cells sit in the same store
and leaderboard as `attnbench run --suite kernels` would put them, and `export_run` writes just this
run as the Parquet file that travels with the figures.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from attnbench.errors import ConfigError
from attnbench.run.planning import Plan, RunRequest, plan_run
from attnbench.run.runner import RunSummary, run_plan
from attnbench.store.database import Store

NEEDS_GPU = (
    "`attnbench bench kernels` needs a CUDA GPU, and this machine has none; "
    "--interpret runs its toy-sized smoke profile through Triton's interpreter on the CPU instead"
)
COLUMNS = (
    ("mechanism", None),
    ("L", None),
    ("density", "density"),
    ("fwd ms", "kernel_fwd_ms"),
    ("fwd+bwd ms", "kernel_fwdbwd_ms"),
    ("fwd TFLOP/s", "kernel_fwd_tflops"),
    ("x SDPA fwd", "speedup_fwd_vs_sdpa"),
    ("x SDPA f+b", "speedup_fwdbwd_vs_sdpa"),
    ("x Flex fwd", "speedup_fwd_vs_flex"),
    ("x Flex f+b", "speedup_fwdbwd_vs_flex"),
    ("goal fwd", "goal_fwd_vs_sdpa"),
    ("peak MiB", "kernel_peak_bytes"),
)


def plan_benchmark(
    mechanisms: tuple[str, ...] = (),
    lengths: tuple[int, ...] = (),
    device: str = "cuda",
    profile: str = "paper",
) -> Plan:
    plan = plan_run(
        RunRequest(suite="kernels", mechanisms=mechanisms, seeds=1, profile=profile), device
    )
    if lengths:
        known = sorted({c.task_config["seq_len"] for c in plan.cells})
        missing = sorted(set(lengths) - set(known))
        if missing:
            raise ConfigError(
                f"--length {missing[0]} is not a length of the {profile} profile "
                f"(lengths: {', '.join(map(str, known))})"
            )
        plan.cells = [c for c in plan.cells if c.task_config["seq_len"] in lengths]
    return plan


def run_benchmark(
    plan: Plan, store: Store, argv: list[str] | None = None, reporter: Any = None
) -> RunSummary:
    return run_plan(plan, store, reporter=reporter, argv=argv, jobs=1)


def summary_rows(summary: RunSummary) -> list[dict[str, str]]:
    """One printable row per cell: its key figures, or its status and reason."""
    rows = []
    for record in summary.records:
        row = {"mechanism": record.spec.mechanism, "L": str(record.spec.task_config["seq_len"])}
        metrics = record.outcome.metrics if record.outcome else {}
        for title, key in COLUMNS[2:]:
            value = metrics.get(key)
            if key == "kernel_peak_bytes" and value is not None:
                value = value / 2**20
            row[title] = "-" if value is None or not math.isfinite(value) else f"{value:.3g}"
        reason = (record.error or "").splitlines()[0] if record.error else ""
        row["status"] = f"{record.status}: {reason}" if reason else record.status
        rows.append(row)
    return rows


def export_run(store: Store, run_id: int, path: str | Path) -> int:
    """Write the cells of run `run_id` (with their provenance: device, clocks in the details) to
    a file."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from attnbench.store.schema import Run
    from attnbench.store.transfer import export_frame, format_of

    with Session(store.engine) as session:
        uid = session.execute(select(Run.uid).where(Run.id == run_id)).scalar_one()
    frame = export_frame(store)
    frame = frame[frame["run_uid"] == uid]
    path = Path(path)
    if format_of(path, None) != "parquet":
        raise ConfigError(f"{path}: the benchmark exports Parquet; name the file .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return int(frame["cell_uid"].nunique())
