"""The direct causal-leak test the mechanism files share: perturb every suffix, outputs before it
must not move."""

from __future__ import annotations

import torch


def assert_no_causal_leak(module: torch.nn.Module, x: torch.Tensor, **tolerance: float) -> None:
    """For every t, replacing x[:, t+1:] by fresh noise leaves module(x)[:, :t+1] unchanged."""
    base = module(x)
    for t in range(x.shape[1] - 1):
        changed = x.clone()
        changed[:, t + 1 :] = torch.randn_like(changed[:, t + 1 :])
        torch.testing.assert_close(module(changed)[:, : t + 1], base[:, : t + 1], **tolerance)
