"""Run every kernel through Triton's interpreter on the CPU.

TRITON_INTERPRET is read when `@triton.jit` decorates a kernel, so it is set here, before any test of
this folder imports one; a kernel module that something imported earlier in the session (compiled for
a GPU that is not there) is reloaded so that it is decorated again, for the interpreter.
"""
from __future__ import annotations

import importlib
import os
import sys

import pytest

os.environ["TRITON_INTERPRET"] = "1"

KERNEL_MODULES = ("attnbench.kernels.block_sparse", "attnbench.kernels.lightning", "attnbench.kernels.sparse_patterns",
                  "attnbench.suites.kernels.pairs", "attnbench.suites.kernels.workloads")


def _compiled_for_gpu() -> bool:
    """Whether a kernel module was imported before TRITON_INTERPRET was set."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # no Triton: the kernel tests skip themselves
        return False

    kernels = [getattr(sys.modules.get(name), attr, None) for name, attr in
               (("attnbench.kernels.block_sparse", "_forward"), ("attnbench.kernels.lightning", "_decayed_causal"))]
    return any(k is not None and not isinstance(k, InterpretedFunction) for k in kernels)


if _compiled_for_gpu():
    for _name in KERNEL_MODULES:  # in dependency order, so each reload sees its reloaded imports
        if _name in sys.modules:
            importlib.reload(sys.modules[_name])


@pytest.fixture(autouse=True)
def _fixed_seed():
    import torch

    torch.manual_seed(0)
