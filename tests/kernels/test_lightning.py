"""The chunked lightning/linear kernel against the mechanisms' references, through Triton's
interpreter.

Tolerance (float32): |kernel - reference| <= 5e-5 + 1e-4 |reference| for outputs and for the
gradients of q, k and v. Lengths are not multiples of the kernel's chunk (16) nor of the reference's
blocks.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from attnbench.kernels.lightning import lightning_attention, linear_attention  # noqa: E402
from attnbench.mechanisms import lightning as reference  # noqa: E402
from attnbench.mechanisms.linear import (
    linear_attention_chunked,
    linear_attention_cumsum,
)  # noqa: E402

ATOL, RTOL = 5e-5, 1e-4
CHUNK = 16


def assert_same(out: torch.Tensor, expected: torch.Tensor, inputs: list[torch.Tensor]) -> None:
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=RTOL)
    grad = torch.randn_like(out)
    for name, a, b in zip(
        "qkv", torch.autograd.grad(out, inputs, grad), torch.autograd.grad(expected, inputs, grad)
    ):
        torch.testing.assert_close(
            a, b, atol=ATOL, rtol=RTOL, msg=lambda m, name=name: f"gradient of {name}: {m}"
        )


@pytest.mark.parametrize(
    "batch,length,value_dim,decay", [(1, 37, 16, True), (2, 50, 17, True), (1, 21, 8, False)]
)
def test_lightning_matches_the_reference(batch, length, value_dim, decay):
    """ALiBi decays (or none), values of another width than keys (the normaliser's extra column)."""
    heads, head_dim = 2, 16
    q, k = (torch.randn(batch, heads, length, head_dim, requires_grad=True) for _ in range(2))
    v = torch.randn(batch, heads, length, value_dim, requires_grad=True)
    slopes = reference.alibi_slopes(heads) if decay else torch.zeros(heads)
    assert_same(
        lightning_attention(q, k, v, slopes, CHUNK),
        reference.lightning_attention(q, k, v, slopes, 8),
        [q, k, v],
    )


def test_strong_decay_stays_finite_and_local():
    """A slope of 2 (lambda ~ 0.14) over long chunks must not overflow: the output is about q_t .
    k_t v_t."""
    q, k, v = (torch.randn(1, 1, 40, 16, requires_grad=True) for _ in range(3))
    slopes = torch.tensor([2.0])
    out = lightning_attention(q, k, v, slopes, CHUNK)
    assert torch.isfinite(out).all()
    assert_same(out, reference.lightning_attention(q, k, v, slopes, 40), [q, k, v])


@pytest.mark.parametrize("batch,length", [(1, 45), (2, 33)])
def test_linear_matches_chunked_and_cumsum_forms(batch, length):
    q, k, v = (torch.randn(batch, 2, length, 16, requires_grad=True) for _ in range(3))
    out = linear_attention(q, k, v, CHUNK)
    assert_same(out, linear_attention_chunked(q, k, v, 8), [q, k, v])
    torch.testing.assert_close(out, linear_attention_cumsum(q, k, v), atol=ATOL, rtol=RTOL)


def test_shapes_are_checked():
    q = torch.randn(1, 2, 8, 16)
    with pytest.raises(ValueError, match="one slope per head"):
        lightning_attention(q, q, q, torch.zeros(3))


def test_half_precision_runs_the_16_bit_path():
    """float16 in, float32 state: the GPU path's casts (bfloat16 is the same code, but Triton 3.9's
    interpreter multiplies bfloat16 dot operands as raw integers, so only float16 can be checked on
    a CPU)."""
    q, k, v = (torch.randn(1, 2, 37, 16) for _ in range(3))
    slopes = reference.alibi_slopes(2)
    half = [t.half().requires_grad_() for t in (q, k, v)]
    full = [t.clone().requires_grad_() for t in (q, k, v)]
    out = lightning_attention(*half, slopes, CHUNK)
    expected = reference.lightning_attention(*full, slopes, 8)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=2e-2)
    grad = torch.randn_like(expected)
    for a, b in zip(
        torch.autograd.grad(out, half, grad.half()), torch.autograd.grad(expected, full, grad)
    ):
        assert a.dtype == torch.float16
        torch.testing.assert_close(a.float(), b, atol=5e-2, rtol=2e-2)


def test_chunks_a_gpu_cannot_compile_are_refused():
    q = torch.randn(1, 2, 8, 16)
    for block_c in (8, 24):
        with pytest.raises(ValueError, match="power of two >= 16"):
            lightning_attention(q, q, q, torch.zeros(2), block_c)
