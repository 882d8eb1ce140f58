"""Sliding-window attention — local attention as in Longformer (Beltagy et al., 2020) and Mistral.

Each query attends only to the `window` most recent tokens (itself included); bidirectionally,
to tokens less than `window` positions away on either side. The reference is dense SDPA with a
band mask (a FlexAttention-style mask_mod), so it is obviously correct; the declared FLOPs are
the work a banded kernel really does: every query scores `min(window, L)` keys (causal) or
`min(2 window - 1, L)` keys (bidirectional), the same convention as `mha`, which it equals when
the window covers the sequence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.kernels.dispatch import use_kernel
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import (
    QKVProjection,
    check_heads,
    projection_flops,
    window_mask_mod,
)


class SlidingWindowAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        window: int = 512,
        num_heads: int = 8,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if window < 1:
            raise ConfigError(f"window={window} must be a positive number of tokens")
        self.window = window
        self.causal = causal
        self.mask_mod = window_mask_mod(window, causal)
        self.proj = QKVProjection(dim, num_heads, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj.split(x)
        if use_kernel(
            "sliding_window", q
        ):  # kernels/sparse_patterns.py: only the tiles the band touches
            from attnbench.kernels.sparse_patterns import window_attention

            return self.proj.merge(window_attention(q, k, v, self.window, self.causal))
        positions = torch.arange(x.shape[1], device=x.device)
        mask = self.mask_mod(None, None, positions[:, None], positions[None, :])
        return self.proj.merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def keys_per_query(seq_len: int, window: int, causal: bool) -> int:
    return min(window if causal else 2 * window - 1, seq_len)


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    window: int = 512,
    num_heads: int = 8,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    keys = keys_per_query(seq_len, window, causal)
    return FlopBreakdown(
        attention=4 * batch * seq_len * keys * dim,
        projections=projection_flops(batch, seq_len, dim),
    )


def cache(
    seq_len: int, dim: int, bytes_per_element: int = 2, window: int = 512, **_: object
) -> CacheCost:
    """Only the last `window` keys and values are kept (evicting), and all of them are read."""
    kept = 2 * min(window, seq_len) * dim * bytes_per_element
    return CacheCost(kv_stored=kept, kv_read_per_token=kept)


def build(dim: int, causal: bool = True, **hparams: object) -> SlidingWindowAttention:
    return SlidingWindowAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="sliding_window",
    kind="sequence",
    description="Local attention to the last `window` tokens (band mask).",
    paper="Beltagy et al., Longformer: The Long-Document Transformer, arXiv:2004.05150",
    build=build,
    flops=flops,
    flops_exact=False,
    cache=cache,
    defaults={"window": 512, "num_heads": 8},
    # MECHANISMS.md suggests 64 for smoke runs; the CPU smoke tasks are only 32 tokens long, where
    # 64 would make this mechanism identical to mha, so smoke uses half that length.
    profile_defaults={"smoke": {"window": 16}},
)
