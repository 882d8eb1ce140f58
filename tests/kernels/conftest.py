"""The kernel tests run through Triton's interpreter: tests/conftest.py sets TRITON_INTERPRET=1
before anything imports triton, since triton decorates its own and our `@triton.jit` functions at
import.
"""

from __future__ import annotations

import os

import pytest

assert os.environ.get("TRITON_INTERPRET") == "1", (
    "tests/conftest.py sets TRITON_INTERPRET=1 for the kernel tests"
)


@pytest.fixture(autouse=True)
def _fixed_seed():
    import torch

    torch.manual_seed(0)
