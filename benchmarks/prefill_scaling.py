"""Prefill time and peak memory of the pretrained-kind mechanisms against `dense`, on CPU, as the
prompt grows.

    python benchmarks/prefill_scaling.py [--lengths 4096 16384 32768] [--mechanism dense --mechanism
    sale ...]
                                         [--threads 1] [--max-seconds 300] [--markdown FILE]

A small random Llama (hidden 256, 2 layers, 4 query and 4 key/value heads of 64, vocabulary 1000)
reads one prompt of random tokens in one forward pass without a cache, with each mechanism installed
at its paper defaults (the `paper` profile). `pine` is given 8 equal segments covering the middle
half of the prompt (without segments it is `dense`). Every (mechanism, length) point runs in a fresh
Python process, so no allocator cache or earlier point hides memory. Time is one prefill after a
warm-up on a 256-token prompt; memory is the peak resident set size during that prefill above the
level before it. `density` is the fraction of causal (query, key) pairs the last layer computed
(`last_stats`). A mechanism slower than `--max-seconds` at one length is not run at longer ones.

These are the PyTorch references on a CPU: the sparse prefills gather their blocks in Python loops,
and SALE's 4-bit estimate is emulated in floating point (it costs a dense Q K^T here), so the table
shows how work and memory scale, not the speed of the official kernels.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time

import torch

from attnbench.registry import MECHANISMS
from attnbench.run.memory import PeakMemory
from attnbench.toolkit.pretrained import install

NAMES = ("dense", "flexprefill", "tca", "sale", "pine")


def small_llama(max_length: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=1000,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=max_length,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.set_attn_implementation("sdpa")
    return model


def segments(length: int, count: int = 8) -> list[list[int]]:
    """`count` equal contiguous spans covering the middle half of the prompt."""
    start, size = length // 4, length // (2 * count)
    return [[start + i * size, start + (i + 1) * size] for i in range(count)]


def measure(name: str, length: int) -> dict:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    model = small_llama(max(length, 256))
    spec = MECHANISMS.get(name)
    hparams = spec.hparams("paper")
    extra = {}
    if name == "pine":
        extra["pine_segments"] = segments(length)
    attention = ALL_ATTENTION_FUNCTIONS[install(model, spec, hparams)]
    tokens = torch.randint(1000, (1, length), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        warm = tokens[:, :256]
        model(warm, use_cache=False, **({"pine_segments": segments(256)} if name == "pine" else {}))
        gc.collect()
        probe = PeakMemory("cpu")
        probe.reset()
        before = probe.read() or 0
        started = time.perf_counter()
        model(tokens, use_cache=False, **extra)
        seconds = time.perf_counter() - started
        peak = (probe.read() or 0) - before
    stats = getattr(attention, "last_stats", {}) or {}
    return {"seconds": seconds, "peak_bytes": max(peak, 0), "density": stats.get("density", 1.0)}


def measure_in_fresh_process(name: str, length: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--one", name, str(length), "--threads", str(threads)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[4096, 16384, 32768])
    parser.add_argument("--mechanism", action="append", default=None, choices=NAMES)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--markdown", default=None, help="Also write the table to this file.")
    parser.add_argument("--one", nargs=2, metavar=("MECHANISM", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return
    names = args.mechanism or list(NAMES)
    results: dict[str, dict[int, dict]] = {}
    for name in names:
        results[name] = {}
        for length in args.lengths:
            point = measure_in_fresh_process(name, length, args.threads)
            results[name][length] = point
            print(
                f"{name:12s} L={length:6d}  {point['seconds']:8.2f} s  peak"
                f" +{point['peak_bytes'] / 2**20:8.1f} MiB  density {point['density']:.3f}",
                flush=True,
            )
            if point["seconds"] > args.max_seconds:
                break
    base = results.get("dense", {})
    header = (
        "| mechanism | "
        + " | ".join(f"L={n}: s (x dense) | MiB | density" for n in args.lengths)
        + " |"
    )
    lines = [header, "|" + "---|" * (1 + 3 * len(args.lengths))]
    for name, by_length in results.items():
        cells = []
        for length in args.lengths:
            if length not in by_length:
                cells += ["not run"] * 3
                continue
            point = by_length[length]
            ratio = (
                f" ({point['seconds'] / base[length]['seconds']:.2f}x)" if length in base else ""
            )
            cells += [
                f"{point['seconds']:.2f}{ratio}",
                f"{point['peak_bytes'] / 2**20:.0f}",
                f"{point['density']:.3f}",
            ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(
        f"\nrandom Llama (hidden 256, 2 layers, 4 heads), paper defaults, {args.threads} thread(s),"
        " one prefill without a cache, one process per point\n"
    )
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(table + "\n")


if __name__ == "__main__":
    main()
