"""Gaussian Adaptive Attention — "Gaussian Adaptive Attention is All You Need: Robust Contextual
Representations Across Multiple Modalities" (Ioannides, Chadha, Elkins; 2024; arXiv:2401.11143;
code gioannides/Gaussian-Adaptive-Attention, PyPI gaussian-adaptive-attention).

GAAM re-weights features by how typical they are. Along the normalised axis (here the sequence,
so it is a token mixer) it takes the mean m and variance v of x; each head owns G Gaussians with
a learnable mean offset delta_i and variance scale c_i, y_i = (x - (m + delta_i)) / sqrt(v + eps),
g_i = exp(-y_i^2 / (2 c_i^2)) / sqrt(2 pi c_i^2); the weights prod_i g_i are normalised over the
axis and out = x * weights. It has 2G parameters a head and no projections. Heads here are equal
groups of feature channels: the official code chunks the normalised axis itself, which along the
sequence would move head boundaries with the sequence length.

Causal variant (the official module sees the whole axis at once): every statistic is a running
one. m_t and v_t are the mean and unbiased variance of x_{<=t}, so token t's density is exactly the
official one for the prefix ending at t; its weight is that density over the running normaliser
sum_{s<=t} g_s, each g_s as computed when token s arrived. A token's weight is thus fixed on
arrival and nothing after t is read; earlier densities are not re-evaluated under later statistics
(that would need every past x and O(L^2 D) work). Bidirectionally the statistics and normaliser
span the whole sequence and this is the official module. The factor prod_i (2 pi c_i^2)^(-1/2) is
the same for every token and cancels in the normalisation. A one-token prefix has variance eps.

FLOPs (exact: FlopCounterMode counts matmuls only): the one matmul sums the G Gaussians' exponents
y_i^2 / (2 c_i^2), 2 B L D G; statistics, exp and normalisation are elementwise (uncounted, like
the softmax of `mha`). O(L D G) time; decoding keeps no KV cache, only per channel the running
mean, sum of squared deviations and normaliser.
"""
from __future__ import annotations

import torch
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import check_heads

EPS = 1e-8  # the official default, added to the variance
MAX_EXPONENT = 80.0  # exp(-80) is a normal number in float32 and bfloat16


def running_statistics(x: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance (+ EPS) along the last axis of x (..., L): of each prefix when
    causal, else of the whole sequence once ((..., 1)). A prefix of one token has variance EPS."""
    count = torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype)
    total, total_sq = x.cumsum(-1), x.square().cumsum(-1)
    if not causal:
        count, total, total_sq = count[-1:], total[..., -1:], total_sq[..., -1:]
    mean = total / count
    var = (total_sq - count * mean.square()).clamp_min(0) / (count - 1).clamp_min(1)
    return mean, var + EPS


class GaussianAdaptiveAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int = 4, num_gaussians: int = 5, causal: bool = True) -> None:
        super().__init__()
        self.head_dim = check_heads(dim, num_heads)
        if num_gaussians < 1:
            raise ConfigError(f"num_gaussians={num_gaussians} must be >= 1")
        self.causal = causal
        self.mean_offset = nn.Parameter(torch.zeros(num_heads, num_gaussians))  # delta_i
        self.scale = nn.Parameter(torch.randn(num_heads, num_gaussians).exp())  # c_i, as the official init

    def mixture(self, x: torch.Tensor) -> torch.Tensor:
        """prod_i g_i of every token under the running (causal) or whole-sequence statistics, (D, B, L),
        without the factor prod_i (2 pi c_i^2)^(-1/2), which is the same for every token and cancels."""
        x = x.permute(2, 0, 1)  # (D, B, L): the sequences of each feature channel
        # Statistics and densities are shift-invariant; shifting by the first token (in every prefix)
        # keeps the running sums of squares well conditioned.
        x = x - x[..., :1]
        mean, var = running_statistics(x, self.causal)
        delta = self.mean_offset.repeat_interleave(self.head_dim, dim=0)  # (D, G): each channel's head
        c2 = self.scale.repeat_interleave(self.head_dim, dim=0).square()
        y = ((x - mean)[..., None] - delta[:, None, None]) / var.sqrt()[..., None]  # (D, B, L, G)
        exponent = (y.square().flatten(1, 2) @ (0.5 / c2)[..., None]).view(x.shape)  # sum_i y_i^2 / (2 c_i^2)
        # Where the official code lets a far outlier's density underflow to 0 (and divides by its eps
        # clamp), the cap keeps every density positive, so a lone or all-outlier prefix stays defined.
        return torch.exp(-exponent.clamp_max(MAX_EXPONENT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.mixture(x)
        # Causal: a token's weight is fixed on arrival, normalised over itself and the past.
        normaliser = g.cumsum(-1) if self.causal else g.sum(-1, keepdim=True)
        return x * (g / normaliser).permute(1, 2, 0)


def flops(batch: int, seq_len: int, dim: int, num_heads: int = 4, num_gaussians: int = 5, causal: bool = True,
          **_: object) -> FlopBreakdown:
    check_heads(dim, num_heads)
    return FlopBreakdown(attention=2 * batch * seq_len * dim * num_gaussians)


def cache(seq_len: int, dim: int, bytes_per_element: int = 2, **_: object) -> CacheCost:
    """No KV cache: per channel the running mean, sum of squared deviations and log-normaliser."""
    state = 3 * dim * bytes_per_element
    return CacheCost(kv_stored=0, kv_read_per_token=state, state=state)


def build(dim: int, causal: bool = True, **hparams: object) -> GaussianAdaptiveAttention:
    return GaussianAdaptiveAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="gaam",
    kind="sequence",
    description="Gaussian Adaptive Attention: tokens re-weighted by a learned Gaussian density of the sequence.",
    paper="Ioannides et al., Gaussian Adaptive Attention is All You Need, 2024, arXiv:2401.11143",
    build=build,
    flops=flops,
    cache=cache,
    # The official README's example: 4 heads of 5 Gaussians each. Works as well with MQAR's one head.
    defaults={"num_heads": 4, "num_gaussians": 5},
)
