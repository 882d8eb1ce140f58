"""Wall time of `attnbench --help` and `attnbench list mechanisms` (they must not import torch).

    python benchmarks/cli_startup.py [--repeats 10]

Prints the median and min over repeats, with `python -c pass` as the interpreter's floor.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def timed(command: list[str], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    executable = shutil.which("attnbench") or sys.exit(
        "attnbench is not on PATH; pip install -e . first"
    )
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "attnbench --help": [executable, "--help"],
        "attnbench list mechanisms": [executable, "list", "mechanisms"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    for label, command in commands.items():
        samples = timed(command, args.repeats)
        print(
            f"{label:32s} median {statistics.median(samples) * 1000:7.1f} ms   min"
            f" {min(samples) * 1000:7.1f} ms"
        )


if __name__ == "__main__":
    main()
