"""The GPU a kernel figure was measured on: name, clocks, and its dense bf16 peak to judge TFLOP/s
against.

Clocks come from nvidia-smi (current and maximum SM and memory clocks, power limit), because the
same board at a capped clock gives different figures; torch's device properties add the SM count and
memory. The dense bf16 tensor-core peaks are NVIDIA's datasheet figures without sparsity, matched on
the device name, most specific name first; an unknown board has no peak rather than a guessed one.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

# Datasheet dense BF16 TFLOP/s (the "with sparsity" figures are twice these).
PEAK_BF16_TFLOPS = (
    ("H200 NVL", 835.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H800", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
)

SMI_FIELDS = (
    "clocks.sm",
    "clocks.max.sm",
    "clocks.mem",
    "clocks.max.mem",
    "power.limit",
    "driver_version",
)


def peak_bf16_tflops(name: str) -> float | None:
    for key, peak in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return peak
    return None


def nvidia_smi(index: int) -> dict[str, str]:
    """The SMI_FIELDS of GPU `index` as reported, or {} without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        line = subprocess.run(
            [
                "nvidia-smi",
                f"--query-gpu={','.join(SMI_FIELDS)}",
                "--format=csv,noheader,nounits",
                "-i",
                str(index),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    values = [value.strip() for value in line.strip().split(",")]
    return dict(zip(SMI_FIELDS, values)) if len(values) == len(SMI_FIELDS) else {}


def describe(device: str) -> dict[str, Any]:
    """Name, properties, clocks and bf16 peak of `device` (a CPU gets its name and no peak)."""
    import torch

    from attnbench.toolkit.devices import device_name

    if not device.startswith("cuda"):
        return {"name": device_name(device), "peak_bf16_tflops": None}
    index = torch.device(device).index
    index = torch.cuda.current_device() if index is None else index
    props = torch.cuda.get_device_properties(index)
    info: dict[str, Any] = {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "sm_count": props.multi_processor_count,
        "memory_bytes": props.total_memory,
        "peak_bf16_tflops": peak_bf16_tflops(props.name),
    }
    clock = getattr(props, "clock_rate", None)  # kHz, where this torch exposes it
    if clock:
        info["clock_rate_khz"] = clock
    info.update({f"smi_{key.replace('.', '_')}": value for key, value in nvidia_smi(index).items()})
    return info
