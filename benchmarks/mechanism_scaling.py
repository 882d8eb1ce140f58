"""Forward+backward time and peak memory of every sequence mechanism as the length grows, on CPU.

    python benchmarks/mechanism_scaling.py [--lengths 512 2048 8192] [--dim 256] [--repeats 3]
                                           [--mechanism mha --mechanism linear ...] [--markdown
                                           FILE]

Each mechanism runs with its paper defaults (the `paper` profile) at batch 1, width `--dim`. Every
(mechanism, length) point runs in a fresh Python process, so no allocator cache or earlier point
hides memory. Memory is the peak resident set size during the first forward+backward pass above the
level before it (the kernel's high-water mark, reset just before), so linear and quadratic growth
show in measured bytes; time is the median of `--repeats` passes after that one. The last column is
the growth exponent fitted between the two longest lengths: log(m2/m1)/log(L2/L1), about 1 for
linear memory and 2 for quadratic. A mechanism that takes longer than `--max-seconds` at one length
is not run at longer ones.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import subprocess
import sys
import time

import torch

from attnbench.registry import MECHANISMS
from attnbench.run.memory import PeakMemory


def measure(spec, length: int, dim: int, repeats: int) -> tuple[float, int]:
    hparams = spec.hparams("paper")
    torch.manual_seed(0)
    module = spec.build(dim, causal=True, **hparams)
    x = torch.randn(1, length, dim, requires_grad=True)

    def step() -> None:
        module(x).sum().backward()
        module.zero_grad(set_to_none=True)
        x.grad = None

    # Memory of the first pass, in a process that has done nothing else: a warm-up first would leave
    # its freed memory in the allocator, and the measured pass would reuse it and read as nearly 0.
    gc.collect()
    probe = PeakMemory("cpu")
    probe.reset()
    before = probe.read() or 0
    step()
    peak = (probe.read() or 0) - before
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(peak, 0)


def measure_in_fresh_process(name: str, length: int, dim: int, repeats: int) -> tuple[float, int]:
    """One point in its own interpreter (one thread), so each peak is that point's alone."""
    command = [
        sys.executable,
        __file__,
        "--one",
        name,
        str(length),
        "--dim",
        str(dim),
        "--repeats",
        str(repeats),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["seconds"], result["peak_bytes"]


def growth_exponent(by_length: dict[int, tuple[float, int]]) -> str:
    measured = sorted((n, peak) for n, (_, peak) in by_length.items() if peak > 0)
    if len(measured) < 2:
        return "—"
    (n1, m1), (n2, m2) = measured[-2:]
    return f"{math.log(m2 / m1) / math.log(n2 / n1):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mechanism", action="append", default=None)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--markdown", default=None, help="Also write the table to this file.")
    parser.add_argument("--one", nargs=2, metavar=("MECHANISM", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        torch.set_num_threads(1)
        seconds, peak = measure(
            MECHANISMS.get(args.one[0]), int(args.one[1]), args.dim, args.repeats
        )
        print(json.dumps({"seconds": seconds, "peak_bytes": peak}))
        return
    names = args.mechanism or sorted(
        n for n, s in MECHANISMS.load_all()[0].items() if s.kind == "sequence"
    )
    results: dict[str, dict[int, tuple[float, int]]] = {}
    for name in names:
        results[name] = {}
        for length in args.lengths:
            seconds, peak = measure_in_fresh_process(name, length, args.dim, args.repeats)
            results[name][length] = (seconds, peak)
            print(
                f"{name:16s} L={length:6d}  {seconds * 1000:10.1f} ms  peak"
                f" +{peak / 2**20:8.1f} MiB",
                flush=True,
            )
            if seconds > args.max_seconds:
                break
    base = results.get("mha", {})
    header = (
        "| mechanism | "
        + " | ".join(f"L={n} ms (x mha) | L={n} MiB" for n in args.lengths)
        + " | memory exponent |"
    )
    lines = [header, "|" + "---|" * (2 + 2 * len(args.lengths))]
    for name, by_length in results.items():
        cells = []
        for length in args.lengths:
            if length not in by_length:
                cells += ["not run", "not run"]
                continue
            seconds, peak = by_length[length]
            ratio = f" ({seconds / base[length][0]:.2f}x)" if length in base else ""
            cells += [f"{seconds * 1000:.0f}{ratio}", f"{peak / 2**20:.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {growth_exponent(by_length)} |")
    table = "\n".join(lines)
    print(
        f"\nbatch 1, width {args.dim}, paper defaults, 1 thread, forward+backward, one process per"
        " point\n"
    )
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(table + "\n")


if __name__ == "__main__":
    main()
