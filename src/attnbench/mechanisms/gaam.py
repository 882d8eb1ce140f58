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

The sum of the G Gaussians' exponents sum_i y_i^2 / (2 c_i^2) is a quadratic in x - mean, so it is
computed in closed form from three per-head constants of the parameters: O(L D) time, whatever G.

FLOPs: 0, exactly what FlopCounterMode counts. GAAM has no projection and no matmul; its statistics,
densities and normalisation are elementwise, which the FLOP convention leaves uncounted (as it does
the softmax of `mha`). Under a FLOP budget its model pays only for the backbone around it (the LM
head), so it trains for more steps than attention; its real cost shows in wall time and in the
scaling benchmark. Decoding keeps no KV cache, only per channel the running mean, sum of squared
deviations and normaliser.
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
    """Mean and reciprocal of (unbiased variance + EPS) along the sequence of x (B, L, D): of each
    prefix when causal, else of the whole sequence once ((B, 1, D)). A prefix of one token has
    variance EPS.
    """
    count = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)[:, None]
    total, total_sq = x.cumsum(1), x.square().cumsum(1)
    if not causal:
        count, total, total_sq = count[-1:], total[:, -1:], total_sq[:, -1:]
    mean = total * count.reciprocal()
    var = (total_sq - count * mean.square()).clamp_min(0) * (count - 1).clamp_min(1).reciprocal()
    return mean, (var + EPS).reciprocal()


class GaussianAdaptiveAttention(nn.Module):
    def __init__(
        self, dim: int, num_heads: int = 4, num_gaussians: int = 5, causal: bool = True
    ) -> None:
        super().__init__()
        self.head_dim = check_heads(dim, num_heads)
        if num_gaussians < 1:
            raise ConfigError(f"num_gaussians={num_gaussians} must be >= 1")
        self.causal = causal
        self.mean_offset = nn.Parameter(torch.zeros(num_heads, num_gaussians))  # delta_i
        self.scale = nn.Parameter(
            torch.randn(num_heads, num_gaussians).exp()
        )  # c_i, as the official init

    def mixture(self, x: torch.Tensor) -> torch.Tensor:
        """prod_i g_i of every token under the running (causal) or whole-sequence statistics, (B, L,
        D), without the factor prod_i (2 pi c_i^2)^(-1/2), which is the same for every token and
        cancels.
        """
        # Statistics and densities are shift-invariant; shifting by the first token (in every
        # prefix) keeps the running sums of squares well conditioned.
        x = x - x[:, :1]
        mean, inv_var = running_statistics(x, self.causal)
        # sum_i (u - e_i)^2 w_i with u = (x - mean)/s, e_i = delta_i/s, w_i = 1/(2 c_i^2), summed in
        # closed form: W (u - mu/s)^2 + V/s^2 with W = sum w_i, mu = sum w_i delta_i / W and V = sum
        # w_i delta_i^2 - W mu^2 >= 0 (Cauchy-Schwarz). Both terms are non-negative, so no
        # cancellation, and the work is O(B L D), not O(B L D G): no (B, L, D, G) tensor is ever
        # built.
        w = 0.5 / self.scale.square()  # (H, G)
        total = w.sum(-1)
        mu = (w * self.mean_offset).sum(-1) / total
        spread = ((w * self.mean_offset.square()).sum(-1) - total * mu.square()).clamp_min(0)
        total, mu, spread = (
            t.repeat_interleave(self.head_dim) for t in (total, mu, spread)
        )  # (D,): per channel
        exponent = (total * ((x - mean) - mu).square() + spread) * inv_var
        # Where the official code lets a far outlier's density underflow to 0 (and divides by its
        # eps clamp), the cap keeps every density positive, so a lone or all-outlier prefix stays
        # defined.
        return torch.exp(-exponent.clamp_max(MAX_EXPONENT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.mixture(x)
        # Causal: a token's weight is fixed on arrival, normalised over itself and the past.
        normaliser = g.cumsum(1) if self.causal else g.sum(1, keepdim=True)
        # A division, not x * g * (1 / normaliser): the normaliser may be as small as exp(-80),
        # whose reciprocal squared (in the backward pass) overflows float32.
        return x * (g / normaliser)


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 4,
    num_gaussians: int = 5,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    if num_gaussians < 1:
        raise ConfigError(f"num_gaussians={num_gaussians} must be >= 1")
    return FlopBreakdown()


def cache(seq_len: int, dim: int, bytes_per_element: int = 2, **_: object) -> CacheCost:
    """No KV cache: per channel the running mean, sum of squared deviations and log-normaliser."""
    state = 3 * dim * bytes_per_element
    return CacheCost(kv_stored=0, kv_read_per_token=state, state=state)


def build(dim: int, causal: bool = True, **hparams: object) -> GaussianAdaptiveAttention:
    return GaussianAdaptiveAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="gaam",
    kind="sequence",
    description=(
        "Gaussian Adaptive Attention: tokens re-weighted by a learned Gaussian density of the"
        " sequence."
    ),
    paper="Ioannides et al., Gaussian Adaptive Attention is All You Need, 2024, arXiv:2401.11143",
    build=build,
    flops=flops,
    cache=cache,
    # The official README's example: 4 heads of 5 Gaussians each. Works as well with MQAR's one
    # head.
    defaults={"num_heads": 4, "num_gaussians": 5},
)
