"""Latency and peak memory of one contender, forward and forward+backward.

On CUDA each repetition is timed with events around the call alone (inputs exist beforehand,
gradients are dropped between repetitions) and the median is kept, so one slow launch or a clock
ramp does not move the figure. Repetitions adapt to the call's length: at least `min_reps`, then
more until about `target_seconds` of measurement or `max_reps`, so 1K and 128K both finish in
reasonable time. The first call of each phase is warm-up (Triton and torch.compile compile there);
for forward+backward that call also gives the peak memory: the CUDA allocator's high-water mark
above what was allocated before it (the inputs). On a CPU (Triton's interpreter, only to test this
code) wall time is used and memory is not measured.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch

from attnbench.suites.kernels.workloads import Contender


@dataclass(frozen=True)
class Repetitions:
    warmup: int = 1
    min_reps: int = 3
    max_reps: int = 50
    target_seconds: float = 1.0


def _clock(fn: Callable[[], object], cuda: bool) -> float:
    """Seconds one call takes."""
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def median_seconds(fn: Callable[[], object], cuda: bool, reps: Repetitions) -> tuple[float, int]:
    """The median time of one call, and how many calls were timed."""
    for _ in range(reps.warmup):
        fn()
    samples = [_clock(fn, cuda)]
    wanted = max(
        reps.min_reps, min(reps.max_reps, int(reps.target_seconds / max(samples[0], 1e-9)))
    )
    while len(samples) < wanted:
        samples.append(_clock(fn, cuda))
    return statistics.median(samples), len(samples)


def _drop_gradients(contender: Contender) -> None:
    for tensor in contender.inputs:
        tensor.grad = None


def _forward_backward(contender: Contender, grad: torch.Tensor) -> None:
    _drop_gradients(contender)
    contender.run().backward(grad)


def peak_bytes(fn: Callable[[], object], device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - before)


def measure(
    contender: Contender, device: str, reps: Repetitions, backward: bool = True
) -> dict[str, float | None]:
    """{'fwd_s', 'fwdbwd_s', 'peak_bytes', 'timed'} of one contender (`timed`: the most calls timed
    in one phase, at most `reps.max_reps`); backward=False leaves the forward+backward figures
    None."""
    cuda = device.startswith("cuda")
    with torch.no_grad():
        forward, timed = median_seconds(contender.run, cuda, reps)
    if not backward:
        return {"fwd_s": forward, "fwdbwd_s": None, "peak_bytes": None, "timed": timed}
    with torch.no_grad():
        grad = torch.randn_like(contender.run())
    # The contenders share their inputs: gradients a previous contender left on them would count as
    # already allocated and understate this one's peak by their size (three L x d tensors per head).
    _drop_gradients(contender)
    step = lambda: _forward_backward(contender, grad)  # noqa: E731
    peak = peak_bytes(step, device) if cuda else None
    # That call (or, on a CPU, the usual warm-up) compiled the backward: at 128K one dense call
    # takes seconds.
    both, more = median_seconds(step, cuda, replace(reps, warmup=0) if cuda else reps)
    _drop_gradients(contender)
    return {"fwd_s": forward, "fwdbwd_s": both, "peak_bytes": peak, "timed": max(timed, more)}
