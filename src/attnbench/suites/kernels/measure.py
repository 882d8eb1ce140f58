"""One `kernels` cell: build the workload, time every contender, turn timings into stored figures.

A baseline that fails (FlexAttention's compiler, an out-of-memory dense run at 128K) is recorded in
the cell's details with its reason and its figures are simply absent; the kernel failing fails the
cell.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

from attnbench.cell import CellOutcome, CellSpec
from attnbench.kernels import dispatch
from attnbench.store.database import one_line
from attnbench.suites.kernels.device import describe
from attnbench.suites.kernels.metrics import figures
from attnbench.suites.kernels.timing import Repetitions, measure
from attnbench.suites.kernels.workloads import Shape, build_workload


def shape_of(config: dict[str, Any], device: str) -> Shape:
    return Shape(
        int(config["batch"]),
        int(config["heads"]),
        int(config["seq_len"]),
        int(config["head_dim"]),
        getattr(torch, config["dtype"]),
        device,
        int(config["tile"]),
    )


def measure_cell(cell: CellSpec, device: str) -> CellOutcome:
    # The device is made current for the whole cell: CUDA events record on the current device's
    # stream and Triton launches on the current device, so on `--device cuda:1` they would otherwise
    # time an idle GPU 0 and hand GPU 1's addresses to GPU 0.
    with torch.cuda.device(device) if device.startswith("cuda") else nullcontext():
        return _measure_cell(cell, device)


def _measure_cell(cell: CellSpec, device: str) -> CellOutcome:
    config = dict(cell.task_config)
    # A budget in steps (the default, or `--budget N --budget-kind steps`) caps the repetitions per
    # phase.
    cap = int(cell.budget.value) if cell.budget.kind == "steps" else int(config["max_reps"])
    reps = Repetitions(
        min_reps=min(3, cap), max_reps=cap, target_seconds=float(config["target_seconds"])
    )
    workload = build_workload(cell.mechanism, dict(cell.hparams), shape_of(config, device))
    dispatch.record(cell.mechanism, dispatch.TRITON)
    timings: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for contender in workload.contenders:
        # FlexAttention has no CPU backward; on a GPU every contender runs both phases.
        backward = device.startswith("cuda") or contender.name != "flex"
        try:
            timings[contender.name] = measure(contender, device, reps, backward)
        except Exception as exc:  # a baseline's failure is a result; the kernel's is the cell's
            if contender.name == "kernel":
                raise
            errors[contender.name] = one_line(exc)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    info = describe(device)
    metrics = figures(workload, timings, info.get("peak_bf16_tflops"))
    kernel = workload.contenders[0]
    details = {
        "device": info,
        "workload": workload.details,
        "baseline_errors": errors,
        "flops_forward": {c.name: c.flops_forward for c in workload.contenders},
        "flops_backward": {c.name: c.flops_backward for c in workload.contenders},
    }
    # The budget is repetitions per phase; what was used is the most any contender needed.
    repetitions = max(t["timed"] for t in timings.values())
    return CellOutcome(
        metrics=metrics,
        budget_used=float(repetitions),
        flops=kernel.flops_forward,
        steps=repetitions,
        params=0,
        details=details,
        costs={"flops_attention": kernel.flops_forward},
    )
