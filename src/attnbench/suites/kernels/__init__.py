"""The `kernels` suite: Triton kernel benchmarks against SDPA and FlexAttention (see suite.py)."""

from attnbench.suites.kernels.suite import SUITE

__all__ = ["SUITE"]
