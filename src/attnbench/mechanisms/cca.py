"""Core Context Aware attention — "Core Context Aware Transformers for Long Context Language
Modeling" (Chen, You, Zhang, Li, Li, Wang and Tan, ICML 2025, arXiv:2412.12465).

Most of a long context is redundant for any one query, so CCA-Attention reads the distant past
through a few *core tokens* and only the recent past in full. Globality-pooling: the tokens are cut
into groups of `group_size` g; the query of a group's last token scores the group's keys,
s_i = softmax(q_{ig} K_{G_i}^T / sqrt(d)), and the group is merged into the core token
c_i = s_i X_{G_i}, whose key and value are c_i W_K and c_i W_V. Locality-preserved: each query also
reads the raw tokens of its neighbourhood, the last `window` s tokens. The two are fused in one
softmax over [core keys; local keys] (the paper's differentiable fusion), sharing W_Q, W_K, W_V.

Causality and coverage: the local window of query t starts at w_t = g floor(max(t - s + 1, 0) / g),
i.e. the last s tokens rounded back to a group boundary, and t reads the core tokens of exactly
the groups before w_t. Every past token is then seen once, raw or pooled; a core token is read
only after its group is complete, and the current, unfinished group is always read raw. With
g = 1 each core token is its own key, so CCA is causal softmax attention for any window.

FLOPs (effective, what a block-sparse kernel does): query t scores w_t / g + (t - w_t + 1) keys,
4 D FLOPs each (Q K^T and A V over all heads); selection is the pooling, 6 g D per group (scores
and the pooled key and value); plus the four projections. The reference instead runs one dense
masked SDPA over L x (floor(L / g) + L) keys, so `flops_exact` is False.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import QKVProjection, check_heads, projection_flops


def window_start(t: int | torch.Tensor, group_size: int, window: int) -> int | torch.Tensor:
    """w_t for an int or a tensor of positions: the last `window` tokens, rounded back to a group
    start."""
    ahead = t - window + 1
    ahead = ahead.clamp(min=0) if isinstance(ahead, torch.Tensor) else max(ahead, 0)
    return group_size * (ahead // group_size)


def cca_mask_mod(group_size: int, window: int, num_core: int):
    """FlexAttention-style mask over the keys [core tokens c_0..c_{m-1}; raw tokens 0..L-1]."""

    def mask_mod(b, h, q_idx, kv_idx):
        start = window_start(q_idx, group_size, window)
        is_core = kv_idx < num_core
        core_done = (kv_idx + 1) * group_size <= start  # the whole group lies before the window
        raw = kv_idx - num_core
        return torch.where(is_core, core_done, (raw >= start) & (raw <= q_idx))

    return mask_mod


def globality_pooling(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, group_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Core keys and values of the complete groups, (B, H, m, d) each, m = floor(L / g).

    The paper pools the inputs, c_i = s_i X_{G_i}, then projects; since s_i sums to 1 and the
    projection is affine, pooling the keys and values with s_i is the same and cheaper.
    """
    batch, heads, length, head_dim = k.shape
    m = length // group_size
    k_groups = k[:, :, : m * group_size].reshape(batch, heads, m, group_size, head_dim)
    v_groups = v[:, :, : m * group_size].reshape(batch, heads, m, group_size, head_dim)
    q_last = q[:, :, group_size - 1 : m * group_size : group_size].unsqueeze(-2)  # (B, H, m, 1, d)
    significance = torch.softmax(q_last @ k_groups.transpose(-1, -2) / head_dim**0.5, dim=-1)
    return (significance @ k_groups).squeeze(-2), (significance @ v_groups).squeeze(-2)


class CoreContextAwareAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        group_size: int = 16,
        window: int = 1024,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if group_size < 1:
            raise ConfigError(f"group_size={group_size} must be a positive number of tokens")
        if window < 1:
            raise ConfigError(f"window={window} must be a positive number of tokens")
        if not causal:
            raise ConfigError(
                "cca is causal only: core tokens are pooled by each group's last query"
            )
        self.group_size = group_size
        self.window = window
        self.proj = QKVProjection(dim, num_heads, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj.split(x)
        core_k, core_v = globality_pooling(q, k, v, self.group_size)
        length, num_core = x.shape[1], core_k.shape[2]
        mask_mod = cca_mask_mod(self.group_size, self.window, num_core)
        mask = mask_mod(
            None,
            None,
            torch.arange(length, device=x.device)[:, None],
            torch.arange(num_core + length, device=x.device)[None, :],
        )
        out = F.scaled_dot_product_attention(
            q, torch.cat([core_k, k], dim=2), torch.cat([core_v, v], dim=2), attn_mask=mask
        )
        return self.proj.merge(out)


def keys_read(seq_len: int, group_size: int, window: int) -> int:
    """Sum over queries t < L of w_t / g + (t - w_t + 1), in closed form."""
    starts = max(seq_len - window + 1, 0)  # how many queries have t - s + 1 = 0, 1, 2, ...
    full, rest = divmod(starts, group_size)
    start_sum = group_size * (group_size * full * (full - 1) // 2 + rest * full)  # sum of w_t
    return seq_len * (seq_len + 1) // 2 - start_sum + start_sum // group_size


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    group_size: int = 16,
    window: int = 1024,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    pooled = (seq_len // group_size) * group_size
    return FlopBreakdown(
        attention=4 * batch * dim * keys_read(seq_len, group_size, window),
        selection=6 * batch * pooled * dim,
        projections=projection_flops(batch, seq_len, dim),
    )


def cache(
    seq_len: int,
    dim: int,
    bytes_per_element: int = 2,
    group_size: int = 16,
    window: int = 1024,
    **_: object,
) -> CacheCost:
    """Evicting: the core tokens of the groups before the window and the window's raw tokens, all
    read."""
    start = window_start(max(seq_len - 1, 0), group_size, window)
    kept = 2 * (start // group_size + seq_len - start) * dim * bytes_per_element
    return CacheCost(kv_stored=kept, kv_read_per_token=kept)


def build(dim: int, causal: bool = True, **hparams: object) -> CoreContextAwareAttention:
    return CoreContextAwareAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="cca",
    kind="sequence",
    description=(
        "Core tokens pooled per group by the group's last query, fused with a local window."
    ),
    paper=(
        "Chen et al., Core Context Aware Transformers for Long Context Language Modeling, ICML"
        " 2025, arXiv:2412.12465"
    ),
    build=build,
    flops=flops,
    flops_exact=False,
    cache=cache,
    supports_bidirectional=False,
    # The paper's LLaMA-2 experiments: groups of 16 tokens and a local window of 1024.
    defaults={"num_heads": 8, "group_size": 16, "window": 1024},
    # At 32 tokens: 8 groups, and a window that leaves the first half of the context to core tokens.
    profile_defaults={"smoke": {"group_size": 4, "window": 8}},
)
