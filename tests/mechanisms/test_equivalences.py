"""Each built-in against an independent formulation of the same computation."""

from __future__ import annotations

import pytest
import torch

from attnbench.mechanisms import linear, mha, sliding_window
from attnbench.mechanisms.linear import (
    linear_attention_chunked,
    linear_attention_cumsum,
)


@pytest.mark.parametrize("length,chunk", [(1, 4), (7, 4), (16, 4), (33, 8), (64, 64)])
def test_chunked_linear_attention_equals_cumsum_form(length, chunk):
    generator = torch.Generator().manual_seed(length)
    q, k, v = (
        torch.randn(2, 3, length, 8, generator=generator, dtype=torch.float64) for _ in range(3)
    )
    expected = linear_attention_cumsum(q, k, v)
    torch.testing.assert_close(
        linear_attention_chunked(q, k, v, chunk), expected, rtol=1e-10, atol=1e-10
    )


def test_bidirectional_linear_attention_is_the_last_causal_state_everywhere():
    torch.manual_seed(0)
    module = linear.build(16, causal=False, num_heads=2)
    x = torch.randn(1, 9, 16, dtype=torch.float64)
    module = module.double()
    q, k, v = module.proj.split(x)
    phi_q, phi_k = linear.feature_map(q), linear.feature_map(k)
    scores = phi_q @ phi_k.transpose(-1, -2)
    expected = module.proj.merge((scores / scores.sum(-1, keepdim=True)) @ v)
    torch.testing.assert_close(module(x), expected, rtol=1e-6, atol=1e-8)


def explicit_softmax_attention(q, k, v, allowed):
    scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ v


@pytest.mark.parametrize("window", [1, 3, 8, 100])
@pytest.mark.parametrize("causal", [True, False])
def test_sliding_window_equals_explicit_band_softmax(window, causal):
    torch.manual_seed(window)
    module = sliding_window.build(16, window=window, num_heads=2, causal=causal).double()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    q, k, v = module.proj.split(x)
    i = torch.arange(11)
    distance = i[:, None] - i[None, :]
    allowed = ((distance >= 0) & (distance < window)) if causal else distance.abs() < window
    expected = module.proj.merge(explicit_softmax_attention(q, k, v, allowed))
    torch.testing.assert_close(module(x), expected)


def test_wide_window_is_mha():
    torch.manual_seed(0)
    window = sliding_window.build(16, window=64, num_heads=2)
    dense = mha.build(16, num_heads=2)
    dense.load_state_dict(window.state_dict())
    x = torch.randn(2, 20, 16)
    torch.testing.assert_close(window(x), dense(x))


def test_heads_must_divide_width():
    from attnbench.errors import ConfigError

    with pytest.raises(ConfigError, match="num_heads=5"):
        mha.build(16, num_heads=5)
