"""`kernels`: GPU benchmarks of the Triton kernels against PyTorch SDPA (flash) and FlexAttention.

One cell is one mechanism with a kernel at one length: forward and forward+backward latency,
achieved TFLOP/s on effective FLOPs and peak memory, for the kernel and for its baselines on the
same inputs (see workloads.py), with the device's name, clocks and dense bf16 peak in the cell's
details. The `paper` profile is the issue's grid: bf16, B = 1, H = 16, d = 128, L = 1K to 128K, MoBA
with blocks of 64 and top-8. It needs a CUDA GPU; elsewhere its cells are skipped with that reason.
The `smoke` profile runs the same code through Triton's interpreter on a CPU at toy shapes
(TRITON_INTERPRET=1, float32): its figures mean nothing, it only proves the pipeline from kernel to
store works. Torch is imported only when a cell runs, so listing suites stays cheap.
"""

from __future__ import annotations

from typing import Any

from attnbench.budget import Budget
from attnbench.cell import CellOutcome, CellSpec
from attnbench.errors import SkipCell
from attnbench.suite import CellContext, Suite, Task

MECHANISMS = ("moba", "sliding_window", "dma", "lightning", "linear")
PAPER_LENGTHS = tuple(1024 * 2**i for i in range(8))  # 1K .. 128K
DMA_MAX_LENGTH = 32 * 1024  # DMA's key choice (a top-w over every prefix) is an O(L^2) PyTorch pass
PAPER = {
    "batch": 1,
    "heads": 16,
    "head_dim": 128,
    "dtype": "bfloat16",
    "tile": 64,
    "target_seconds": 1.0,
    "max_reps": 50,
}
SMOKE = {
    "batch": 1,
    "heads": 2,
    "head_dim": 16,
    "dtype": "float32",
    "tile": 16,
    "target_seconds": 0.0,
    "max_reps": 1,
}
TASKS = {
    "paper": [{"seq_len": n, **PAPER} for n in PAPER_LENGTHS],
    "smoke": [{"seq_len": n, **SMOKE} for n in (40, 72)],
}


class KernelsSuite(Suite):
    name = "kernels"
    description = (
        "Triton kernels vs SDPA (flash) and FlexAttention: latency, TFLOP/s, memory, L = 1K-128K."
    )
    accepts = ("sequence",)
    groups = ()
    primary_metric = "speedup_fwd_vs_sdpa"
    higher_is_better = True
    profiles = ("smoke", "paper")
    version = "1"
    rank_per_task = True  # a task is one sequence length: speedups at 1K and 128K are not averaged

    def tasks(self, profile: str) -> list[Task]:
        self.check_profile(profile)
        return [Task(f"L{config['seq_len']}", dict(config)) for config in TASKS[profile]]

    def default_budget(self, profile: str, task: Task) -> Budget:
        """Timed repetitions per phase (forward, forward+backward) and contender, at most."""
        return Budget("steps", task.config["max_reps"])

    def default_seeds(self, profile: str) -> int:
        return 1  # one timing per cell; the repetitions inside it give the median

    def mechanism_overrides(self, profile: str) -> dict[str, Any]:
        return {
            "block_size": 64,
            "top_k": 8,
        }  # the acceptance point for MoBA (lightning: its chunk)

    def pairs_with(self, task: Task, mechanism: Any) -> tuple[bool, str | None]:
        if mechanism.name not in MECHANISMS:
            return (
                False,
                (
                    "kernels benchmarks only the mechanisms with a Triton kernel:"
                    f" {', '.join(MECHANISMS)}"
                ),
            )
        if mechanism.name == "dma" and task.config["seq_len"] > DMA_MAX_LENGTH:
            return (
                False,
                (
                    f"kernels runs dma up to L = {DMA_MAX_LENGTH}: choosing its keys, a top-w over"
                    " every prefix, is an O(L^2) PyTorch pass before the kernel"
                ),
            )
        return True, None

    def run_cell(self, cell: CellSpec, mechanism: Any, ctx: CellContext) -> CellOutcome:
        from attnbench.kernels.dispatch import interpreting, triton_available

        if not ctx.device.startswith("cuda") and not interpreting():
            raise SkipCell(
                "the kernels suite needs a CUDA GPU (on a CPU, TRITON_INTERPRET=1 runs its smoke"
                " profile)"
            )
        if not triton_available():
            raise SkipCell("the kernels suite needs Triton (pip install triton)")
        from attnbench.suites.kernels.measure import measure_cell

        return measure_cell(cell, ctx.device)


SUITE = KernelsSuite()
