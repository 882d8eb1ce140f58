"""StreamingLLM — "Efficient Streaming Language Models with Attention Sinks" (Xiao et al., 2023).

Language models put much of their attention on the first few tokens whatever they say ("attention
sinks"), so plain window attention collapses once those tokens leave the window. StreamingLLM keeps
the keys and values of the first `num_sinks` tokens (4 in the paper) and of the `window` most recent
ones, and evicts the rest: each query attends causally to the sinks plus the recent window. Defaults
are those of the authors' chat demo (mit-han-lab/streaming-llm, run_streaming_llama.py: start_size
4, recent_size 2000).

This reference expresses the pattern as a mask (a FlexAttention-style mask_mod) on the model's own
SDPA attention, added to whatever mask the model passes: readable, and correct for prefill and for
decoding with a growing cache, where the queries are the last Lq of the Lk keys (a static,
pre-allocated cache breaks that assumption). It keeps the original token positions; the paper
additionally re-assigns positions inside the rolling cache (so the sinks sit right before the
window), which it needs for inputs longer than the model's trained context. FLOPs and cache are the
effective ones of an evicting implementation: every query scores `min(num_sinks + window, L)` keys,
the convention of `sliding_window`, so that with a window covering the input they equal `dense`'s.
"""

from __future__ import annotations

import torch

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._pretrained import attention_flops, build_dense


def sink_window_mask_mod(num_sinks: int, window: int):
    """`mask_mod(b, h, q_idx, kv_idx) -> bool`: True where a query may attend (causal, sink or
    recent)."""

    def mask_mod(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & ((kv_idx < num_sinks) | (q_idx - kv_idx < window))

    return mask_mod


def streaming_mask(mask_mod, q_len: int, kv_len: int, device: torch.device) -> torch.Tensor:
    """(Lq, Lk) boolean mask for queries at the last `q_len` of `kv_len` positions."""
    keys = torch.arange(kv_len, device=device)
    return mask_mod(None, None, keys[kv_len - q_len :, None], keys[None, :])


def combine(attention_mask: torch.Tensor | None, allowed: torch.Tensor) -> torch.Tensor:
    """The model's mask restricted to `allowed`.

    The model passes None where causality alone says it all (Lq == Lk, or one decoded query), a
    boolean keep-mask, or (older transformers, eager masks) an additive float mask.
    """
    if attention_mask is None:
        return allowed[None, None]
    if attention_mask.dtype == torch.bool:
        return attention_mask & allowed
    return attention_mask.masked_fill(~allowed, torch.finfo(attention_mask.dtype).min)


def build(num_sinks: int = 4, window: int = 2000):
    """An attention function with transformers' AttentionInterface signature."""
    if num_sinks < 0 or window < 1:
        raise ConfigError(f"num_sinks={num_sinks} must be >= 0 and window={window} >= 1")
    dense = build_dense()
    mask_mod = sink_window_mask_mod(num_sinks, window)

    def streaming_attention(
        module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs
    ):
        allowed = streaming_mask(mask_mod, query.shape[2], key.shape[2], query.device)
        return dense(
            module,
            query,
            key,
            value,
            combine(attention_mask, allowed),
            scaling=scaling,
            dropout=dropout,
            **kwargs,
        )

    return streaming_attention


def kept_tokens(seq_len: int, num_sinks: int, window: int) -> int:
    return min(num_sinks + window, seq_len)


def flops(
    batch: int,
    seq_len: int,
    num_heads: int,
    head_dim: int,
    causal: bool = True,
    num_sinks: int = 4,
    window: int = 2000,
    **_: object,
) -> FlopBreakdown:
    keys = kept_tokens(seq_len, num_sinks, window)
    return FlopBreakdown(attention=attention_flops(batch, num_heads, seq_len, keys, head_dim))


def cache(
    seq_len: int,
    num_kv_heads: int,
    head_dim: int,
    bytes_per_element: int = 2,
    num_sinks: int = 4,
    window: int = 2000,
    **_: object,
) -> CacheCost:
    """Only the sinks and the recent window are kept (evicting), and all of them are read."""
    kept = 2 * kept_tokens(seq_len, num_sinks, window) * num_kv_heads * head_dim * bytes_per_element
    return CacheCost(kv_stored=kept, kv_read_per_token=kept)


SPEC = MechanismSpec(
    name="streaming",
    kind="pretrained",
    description="StreamingLLM: attention sinks (the first tokens) plus a recent window.",
    paper=(
        "Xiao et al., Efficient Streaming Language Models with Attention Sinks, ICLR 2024,"
        " arXiv:2309.17453"
    ),
    build=build,
    flops=flops,
    flops_exact=False,
    cache=cache,
    supports_bidirectional=False,
    defaults={"num_sinks": 4, "window": 2000},
    # CPU smoke prompts are a few dozen tokens long, where a 2000-token window would make this
    # dense.
    profile_defaults={"smoke": {"window": 16}},
)
