"""From timings to the figures a cell stores: latency, achieved TFLOP/s, peak memory, speedups,
goals.

Names are `<contender>_<phase>_<unit>` with contender kernel, sdpa or flex and phase fwd (forward)
or fwdbwd (forward + backward). TFLOP/s use each contender's own effective FLOPs: the kernel and
FlexAttention count the pattern's allowed pairs, dense SDPA the causal triangle. The issue's goal
for a block-sparse kernel is a speedup over dense SDPA of at least 0.8 / density; `goal_*_vs_sdpa`
is the measured speedup over that target (1 or more meets it).
"""

from __future__ import annotations

import math
from typing import Any

from attnbench.suites.kernels.workloads import Workload

GOAL_EFFICIENCY = 0.8
PRIMARY = "speedup_fwd_vs_sdpa"


def figures(
    workload: Workload, timings: dict[str, dict[str, Any]], peak_tflops: float | None
) -> dict[str, float]:
    out: dict[str, float] = {}
    if math.isfinite(workload.density):
        out["density"] = workload.density
    for contender in workload.contenders:
        timing = timings.get(contender.name)
        if timing is None:
            continue
        both = contender.flops_forward + contender.flops_backward
        for phase, seconds, flops in (
            ("fwd", timing["fwd_s"], contender.flops_forward),
            ("fwdbwd", timing["fwdbwd_s"], both),
        ):
            if seconds is not None:
                out[f"{contender.name}_{phase}_ms"] = seconds * 1e3
                out[f"{contender.name}_{phase}_tflops"] = flops / seconds / 1e12
        if timing["peak_bytes"] is not None:
            out[f"{contender.name}_peak_bytes"] = float(timing["peak_bytes"])
    for baseline in ("sdpa", "flex"):
        for phase in ("fwd", "fwdbwd"):
            mine, theirs = out.get(f"kernel_{phase}_ms"), out.get(f"{baseline}_{phase}_ms")
            if mine and theirs:
                out[f"speedup_{phase}_vs_{baseline}"] = theirs / mine
    if "density" in out:
        for phase in ("fwd", "fwdbwd"):
            if f"speedup_{phase}_vs_sdpa" in out:
                out[f"goal_{phase}_vs_sdpa"] = (
                    out[f"speedup_{phase}_vs_sdpa"] * out["density"] / GOAL_EFFICIENCY
                )
    if peak_tflops:
        for phase in ("fwd", "fwdbwd"):
            if f"kernel_{phase}_tflops" in out:
                out[f"kernel_{phase}_peak_fraction"] = out[f"kernel_{phase}_tflops"] / peak_tflops
    return out
