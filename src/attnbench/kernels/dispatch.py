"""Choosing between a mechanism's Triton kernel and its PyTorch reference, and recording the choice.

A mechanism asks `use_kernel(name, tensor)` on every forward call. The answer depends on where the
tensor lives and on `ATTNBENCH_KERNELS`: `auto` (the default) takes the kernel on CUDA when Triton
imports, `off` always takes the reference (an A/B switch), `on` takes the kernel wherever Triton can
run it, which includes the CPU under Triton's interpreter (TRITON_INTERPRET=1; used by the tests).
Under a torch dispatch mode such as FlopCounterMode the reference runs, since a mode cannot see into
a Triton kernel (its FLOPs would vanish from the count). The runner wraps each cell in
`recording()`, so every cell stores which implementation each mechanism really ran: a GPU figure
from the reference must never pass for a kernel figure.

Importing this module imports neither torch nor triton.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, Iterator

from attnbench.errors import ConfigError

TRITON, REFERENCE = "triton", "reference"
MODES = ("auto", "on", "off")
KERNEL_DTYPES = (
    "torch.float16",
    "torch.bfloat16",
    "torch.float32",
)  # float64 and the rest: the reference
# Widest head row (head width x element size) the kernels' tiles fit in a GPU's shared memory: 256
# in 16-bit, 128 in float32. Compiled for sm_90, the block-sparse dQ kernel needs 256 KiB for
# float32 heads of 256 even unpipelined (227 KiB available), so wider heads take the reference
# rather than fail to launch.
MAX_ROW_BYTES = 512

# The open `recording()` blocks, innermost last: scoped to this thread/task, never a module-level
# list.
_RECORDINGS: ContextVar[tuple[dict[str, str], ...]] = ContextVar(
    "attnbench_kernel_recordings", default=()
)


def mode() -> str:
    value = os.environ.get("ATTNBENCH_KERNELS", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ConfigError(f"ATTNBENCH_KERNELS={value!r} must be one of {', '.join(MODES)}")
    return value


@lru_cache(maxsize=1)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreting() -> bool:
    """Triton's interpreter runs kernels on CPU tensors; it is read when a kernel is decorated."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def use_kernel(name: str, tensor: Any) -> bool:
    """Whether mechanism `name` should run its kernel on `tensor`; the answer is recorded."""
    chosen = mode()
    if (
        chosen == "off"
        or str(tensor.dtype) not in KERNEL_DTYPES
        or tensor.shape[-1] * tensor.element_size() > MAX_ROW_BYTES
        or not triton_available()
        or _dispatch_mode_active()
    ):
        kernel = False
    elif tensor.is_cuda:
        kernel = True
    else:
        kernel = chosen == "on" and interpreting()
    record(name, TRITON if kernel else REFERENCE)
    return kernel


def _dispatch_mode_active() -> bool:
    """FlopCounterMode (the conformance FLOP check) and other dispatch modes see through PyTorch ops
    but not into a Triton kernel, so under one the reference runs."""
    from torch.utils._python_dispatch import is_in_torch_dispatch_mode

    return is_in_torch_dispatch_mode()


def record(name: str, implementation: str) -> None:
    for used in _RECORDINGS.get():
        previous = used.get(name)
        # A cell that ran both (e.g. a kernel for training, the reference for an odd shape) says so.
        used[name] = implementation if previous in (None, implementation) else "mixed"


@contextmanager
def recording() -> Iterator[dict[str, str]]:
    """Collect {mechanism: implementation} for every call made inside the block."""
    used: dict[str, str] = {}
    token = _RECORDINGS.set((*_RECORDINGS.get(), used))
    try:
        yield used
    finally:
        _RECORDINGS.reset(token)
