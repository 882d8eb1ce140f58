"""Gaussian Adaptive Attention: the official formula, its causal running form, declared costs."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.mechanisms import gaam

EPS = 1e-8


def official_mixture(
    x: torch.Tensor, mean_offset: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """The official GaussianAdaptiveAttention's un-normalised prod_i g_i along the sequence of (B,
    L, D), written out head by head and Gaussian by Gaussian (heads are groups of channels). A
    single token, where torch.var is undefined, gets variance eps as in the module."""
    heads, gaussians = mean_offset.shape
    width = x.shape[-1] // heads
    parts = []
    for h in range(heads):
        chunk = x[..., h * width : (h + 1) * width]
        mean = chunk.mean(1, keepdim=True)
        var = chunk.var(1, keepdim=True, correction=1 if x.shape[1] > 1 else 0) + EPS
        mixture = torch.ones_like(chunk)
        for i in range(gaussians):
            y = (chunk - (mean + mean_offset[h, i])) / var.sqrt()
            c = scale[h, i]
            mixture = mixture * torch.exp(-(y**2) / (2 * c**2)) / torch.sqrt(2 * math.pi * c**2)
        parts.append(mixture)
    return torch.cat(parts, dim=-1)


def module_with(
    dim: int, num_heads: int, num_gaussians: int, causal: bool, seed: int
) -> gaam.GaussianAdaptiveAttention:
    """Learned-looking parameters in a range where the official eps clamp on the normaliser never
    engages."""
    generator = torch.Generator().manual_seed(seed)
    module = gaam.build(dim, causal=causal, num_heads=num_heads, num_gaussians=num_gaussians)
    with torch.no_grad():
        module.mean_offset.copy_(0.3 * torch.randn(num_heads, num_gaussians, generator=generator))
        module.scale.copy_(1.5 + torch.rand(num_heads, num_gaussians, generator=generator))
    return module


@pytest.mark.parametrize("num_heads,num_gaussians", [(1, 1), (4, 5), (2, 3)])
def test_bidirectional_is_the_official_module(num_heads, num_gaussians):
    module = module_with(16, num_heads, num_gaussians, causal=False, seed=num_heads)
    x = torch.randn(2, 11, 16, generator=torch.Generator().manual_seed(0))
    mixture = official_mixture(x, module.mean_offset.detach(), module.scale.detach())
    expected = x * mixture / mixture.sum(1, keepdim=True).clamp(min=EPS)
    torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("num_heads,num_gaussians", [(1, 1), (4, 5)])
def test_causal_weight_is_the_prefix_density_over_the_running_normaliser(num_heads, num_gaussians):
    module = module_with(16, num_heads, num_gaussians, causal=True, seed=7)
    x = torch.randn(2, 10, 16, generator=torch.Generator().manual_seed(1))
    offsets, scales = module.mean_offset.detach(), module.scale.detach()
    # g_s: the official density of token s on the prefix that ends at s (t = 0 is a single token)
    arrivals = torch.stack(
        [official_mixture(x[:, : s + 1], offsets, scales)[:, s] for s in range(1, 10)], dim=1
    )
    out = module(x)
    torch.testing.assert_close(out[:, 0], x[:, 0], rtol=1e-6, atol=1e-6)
    expected = x[:, 1:] * arrivals / arrivals.cumsum(1)
    torch.testing.assert_close(out[:, 1:], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("causal", [True, False])
def test_zero_offset_unit_scale_weights_are_the_standard_gaussian_of_the_standardised_input(causal):
    module = gaam.build(8, causal=causal, num_heads=1, num_gaussians=1)
    with torch.no_grad():
        module.mean_offset.zero_()
        module.scale.fill_(1.0)
    x = torch.randn(3, 9, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    module = module.double()
    ends = (
        range(9) if causal else [8] * 9
    )  # the statistics of the prefix ending at t, or of everything
    y = torch.stack(
        [
            (x[:, t] - x[:, : e + 1].mean(1))
            / (x[:, : e + 1].var(1, correction=min(e, 1)) + EPS).sqrt()
            for t, e in enumerate(ends)
        ],
        dim=1,
    )
    density = torch.distributions.Normal(0.0, 1.0).log_prob(y).exp()
    torch.testing.assert_close(module.mixture(x), density * math.sqrt(2 * math.pi))
    normaliser = density.cumsum(1) if causal else density.sum(1, keepdim=True)
    weights = density / normaliser
    torch.testing.assert_close(module(x), x * weights, rtol=1e-10, atol=1e-12)
    if not causal:  # a proper normalised weighting over the sequence
        torch.testing.assert_close(weights.sum(1), torch.ones(3, 8, dtype=torch.float64))


def test_causal_weights_are_a_distribution_over_each_prefix():
    module = module_with(8, 2, 3, causal=True, seed=3)
    g = module.mixture(torch.randn(2, 12, 8, generator=torch.Generator().manual_seed(3))).permute(
        2, 0, 1
    )
    weights_seen_at_t = g[..., None, :] / g.cumsum(-1)[..., :, None]  # (D, B, t, s)
    upto_t = torch.ones(12, 12, dtype=torch.bool).tril()
    torch.testing.assert_close((weights_seen_at_t * upto_t).sum(-1), torch.ones(8, 2, 12))
    assert (g > 0).all() and (g <= 1).all()


def test_far_outliers_stay_finite_and_normalised():
    module = gaam.build(8, causal=False, num_heads=2, num_gaussians=2)
    with torch.no_grad():
        module.mean_offset.fill_(1e4)
    x = torch.randn(2, 6, 8)
    g = module.mixture(x).permute(2, 0, 1)  # (D, B, L)
    weights = g / g.sum(-1, keepdim=True)
    assert torch.isfinite(module(x)).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(8, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("causal", [True, False])
def test_a_lone_token_carries_all_the_weight(dtype, causal):
    torch.manual_seed(5)
    module = gaam.build(64, causal=causal).to(dtype)
    x = torch.randn(1, 1, 64, dtype=dtype)
    torch.testing.assert_close(module(x), x)


@pytest.mark.parametrize("num_heads,num_gaussians", [(1, 1), (4, 5), (2, 3)])
@pytest.mark.parametrize("causal", [True, False])
def test_declared_flops_equal_flop_counter(num_heads, num_gaussians, causal):
    torch.manual_seed(6)
    batch, length, dim = 2, 17, 32
    module = gaam.build(dim, causal=causal, num_heads=num_heads, num_gaussians=num_gaussians)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.randn(batch, length, dim))
    declared = gaam.flops(
        batch, length, dim, causal=causal, num_heads=num_heads, num_gaussians=num_gaussians
    )
    assert declared.total == counter.get_total_flops() == 0  # elementwise only
    assert declared.selection == declared.projections == 0 and gaam.SPEC.flops_exact


def test_cache_is_a_fixed_state_of_three_numbers_per_channel():
    short, long = (
        gaam.cache(10, 64, bytes_per_element=2),
        gaam.cache(10_000, 64, bytes_per_element=2),
    )
    assert short == long
    assert (
        short.kv_stored == 0
        and short.state == 3 * 64 * 2
        and short.kv_read_per_token == short.state
    )


@pytest.mark.parametrize(
    "hparams,name", [({"num_heads": 5}, "num_heads=5"), ({"num_gaussians": 0}, "num_gaussians=0")]
)
def test_impossible_hyper_parameters_are_clear_errors(hparams, name):
    with pytest.raises(ConfigError, match=name):
        gaam.build(32, **hparams)


def test_gradients_stay_finite_when_the_first_density_is_capped():
    """Once an offset leaves zero, a one-token prefix (variance EPS) has its density at the exp(-80)
    cap, so the normaliser at t = 0 is ~1e-35; the backward pass must not square its reciprocal
    (MQAR training went NaN at step 25 when it did)."""
    module = gaam.build(64, causal=True, num_heads=1, num_gaussians=5)
    with torch.no_grad():
        module.mean_offset.fill_(-1e-3)
    x = torch.randn(4, 32, 64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    assert module.mixture(x.detach())[:, 0].max() < 1e-30  # the cap, as in training
    module(x).square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())
