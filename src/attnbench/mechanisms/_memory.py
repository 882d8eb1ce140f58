"""The neural memory `titans_mac` and `allmem` share: a two-layer MLP read M(q) = W2 SiLU(W1 q), and
the weighted sums of its surprise gradients that one chunk's unrolled update needs."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def memory_read(w1: torch.Tensor, w2: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """M(q) = W2 SiLU(W1 q) for (B, H, m, d), (B, H, d, m) weights and (B, H, n, d) inputs."""
    return F.silu(q @ w1.transpose(-1, -2)) @ w2.transpose(-1, -2)


def surprise_sums(
    w1: torch.Tensor, w2: torch.Tensor, k: torch.Tensor, v: torch.Tensor, weights: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """sum_j c_rj grad l(M; k_j, v_j) for each row c_r of `weights` (B, H, R, n): R gradients of
    W1, R of W2."""
    z = k @ w1.transpose(-1, -2)
    a = F.silu(z)
    error = 2 * (a @ w2.transpose(-1, -2) - v)  # dl/dM(k)
    gate = torch.sigmoid(z)
    error_z = (error @ w2) * gate * (1 + z * (1 - gate))  # back through W2 and SiLU
    rows = weights.shape[2]

    def weighted_sum(left: torch.Tensor, right: torch.Tensor) -> list[torch.Tensor]:
        # the R weightings side by side in one matmul: (n, R p)^T (n, q), then cut into R (p, q)
        # blocks
        stacked = torch.cat([w.unsqueeze(-1) * left for w in weights.unbind(2)], dim=-1)
        return list((stacked.transpose(-1, -2) @ right).chunk(rows, dim=-2))

    return weighted_sum(error_z, k), weighted_sum(error, a)
