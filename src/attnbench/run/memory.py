"""Peak memory of one cell: allocator peak on CUDA, peak resident set size on the CPU.

On Linux the kernel's RSS high-water mark can be reset per process (writing 5 to
/proc/self/clear_refs), which gives a per-cell CPU figure; elsewhere the process-wide peak from
getrusage is the best available and is labelled as such.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


class PeakMemory:
    def __init__(self, device: str) -> None:
        self.device = device
        self.kind = "cuda_max_allocated" if device.startswith("cuda") else "rss_peak"

    def reset(self) -> None:
        if self.kind == "cuda_max_allocated":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.kind = "rss_peak_process"

    def read(self) -> int | None:
        if self.kind == "cuda_max_allocated":
            import torch

            return int(torch.cuda.max_memory_allocated(self.device))
        if self.kind == "rss_peak":
            try:
                for line in Path("/proc/self/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
            except OSError:
                pass
            self.kind = "rss_peak_process"
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
