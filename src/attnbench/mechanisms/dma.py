"""Dynamic Mask Attention — "Trainable Dynamic Mask Sparse Attention" (Shi et al., 2025,
arXiv:2508.02124).

DMA lets the content decide which keys are worth reading. From the values it derives one score per
key and key/value head, delta_j = A * softplus(dt_proj(v_j)), with A a learned scalar per head and
dt_proj a linear map of the token's values (all heads, as in the Doge model) to one number per head.
Each query keeps the `window` w keys of highest score among those it may see (its causal prefix; the
whole sequence when bidirectional), and attends with softmax(Q K^T / sqrt(d) + delta) over the kept
keys, so the score both picks the keys and biases their weights, and learns through the second role
(the selection is a top-k of detached scores, as in flash-sparse-attn's mask). The paper writes
exp(A softplus(.)); the Doge code drops the exp for numerical stability, and so do we. The score
depends on the key only, so the ranking is shared by all queries; only the prefix it is taken over
differs, which keeps selection causal: query t's keys depend on v_0..v_t alone. A query at t < w
keeps all t + 1 keys, and w >= L is attention with a per-key bias.

Doge's attention also normalises q and k and applies RoPE; those belong to its model, not to DMA,
and are left out. Doge initialises A from N(0, 0.02) (its _init_weights), not 0: at A = 0 the loss
does not depend on dt_proj, which would get no gradient. We do the same.

FLOPs (effective, what a sparse kernel does): query t reads min(w, t + 1) keys causally (min(w, L)
bidirectionally), 4 D each, about 4 B L w D; the scoring pass, dt_proj, costs 2 B L D H; plus the
four projections. The reference masks a dense L x L attention, so `flops_exact` is False.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.kernels.dispatch import use_kernel
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import QKVProjection, check_heads, projection_flops


def keep_mask(delta: torch.Tensor, window: int, causal: bool) -> torch.Tensor:
    """(B, H, L) key scores -> bool mask of the keys each query keeps: (B, H, L, L) causal, (B,
    H, 1, L) not."""
    length = delta.shape[-1]
    scores = delta.detach()[:, :, None, :]
    if causal:
        t = torch.arange(length, device=delta.device)
        allowed = t[:, None] >= t[None, :]
        scores = scores.masked_fill(~allowed, float("-inf"))
    chosen = scores.topk(min(window, length), dim=-1).indices
    keep = torch.zeros_like(scores, dtype=torch.bool).scatter(-1, chosen, True)
    # Query t < w - 1 "picks" some -inf future keys too; the causal mask drops them.
    return keep & allowed if causal else keep


class DynamicMaskAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        window: int = 2048,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if window < 1:
            raise ConfigError(f"window={window} must be a positive number of keys")
        self.window, self.causal = window, causal
        self.proj = QKVProjection(dim, num_heads, bias)
        self.A = nn.Parameter(torch.empty(num_heads).normal_(0.0, 0.02))
        self.dt_proj = nn.Linear(dim, num_heads, bias=bias)

    def key_scores(self, v: torch.Tensor) -> torch.Tensor:
        """(B, H, L, d) values -> (B, H, L) delta = A softplus(dt_proj(v))."""
        batch, _, length, _ = v.shape
        dt = self.dt_proj(v.transpose(1, 2).reshape(batch, length, -1))
        return (self.A * F.softplus(dt)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj.split(x)
        delta = self.key_scores(v)
        if use_kernel(
            "dma", q
        ):  # kernels/sparse_patterns.py: the same scores, kept keys by threshold
            from attnbench.kernels.sparse_patterns import dma_attention

            return self.proj.merge(dma_attention(q, k, v, delta, self.window, self.causal))
        keep = keep_mask(delta, self.window, self.causal)
        bias = delta[:, :, None, :].masked_fill(~keep, float("-inf"))
        return self.proj.merge(F.scaled_dot_product_attention(q, k, v, attn_mask=bias))


def keys_read(seq_len: int, window: int, causal: bool = True) -> int:
    """Keys read, summed over queries."""
    if not causal:
        return seq_len * min(window, seq_len)
    w = min(window, seq_len)
    return w * (w + 1) // 2 + (seq_len - w) * w


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    window: int = 2048,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    return FlopBreakdown(
        attention=4 * batch * dim * keys_read(seq_len, window, causal),
        selection=2 * batch * seq_len * dim * num_heads,
        projections=projection_flops(batch, seq_len, dim),
    )


def cache(
    seq_len: int,
    dim: int,
    bytes_per_element: int = 2,
    num_heads: int = 8,
    window: int = 2048,
    **_: object,
) -> CacheCost:
    """Every key and value and each key's H scores are kept; the next token reads all the scores, to
    rank them, and the w keys and values they pick."""
    scores = seq_len * num_heads * bytes_per_element
    return CacheCost(
        kv_stored=2 * seq_len * dim * bytes_per_element + scores,
        kv_read_per_token=2 * min(window, seq_len) * dim * bytes_per_element + scores,
    )


def build(dim: int, causal: bool = True, **hparams: object) -> DynamicMaskAttention:
    return DynamicMaskAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="dma",
    kind="sequence",
    description=(
        "Each query keeps the w past keys of highest learned value-based score, which also biases"
        " them."
    ),
    paper="Shi et al., Trainable Dynamic Mask Sparse Attention, arXiv:2508.02124",
    build=build,
    flops=flops,
    flops_exact=False,
    cache=cache,
    # Doge's window_size is 2048.
    defaults={"num_heads": 8, "window": 2048},
    # At 32 tokens a query keeps a quarter of the context once it has seen 8 keys.
    profile_defaults={"smoke": {"window": 8}},
)
