"""Dense attention of a pretrained model — the model's own scaled dot-product attention.

Every query attends to every earlier key (or to what the model's mask allows) with
softmax(Q K^T * scaling + mask) V, exactly as transformers' `sdpa` implementation computes it,
to which this delegates: grouped key/value heads, the mask the model built, dropout and scaling
all behave as in the unmodified model. It is the reference every training-free mechanism is
compared with. FLOPs are counted as `mha` counts them and as FlopCounterMode measures SDPA's
math path: the full Lq x Lk score matrix, causal or not, since the math path masks rather than skips.
"""
from __future__ import annotations

from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.pretrained import require_transformers


def attention_flops(batch: int, num_heads: int, q_len: int, keys_per_query: int, head_dim: int) -> int:
    """Q K^T and the weighted sum of V: two (Lq x Dh) @ (Dh x K) products per head, 2 FLOPs a multiply-add."""
    return 2 * (2 * batch * num_heads * q_len * keys_per_query * head_dim)


def flops(batch: int, seq_len: int, num_heads: int, head_dim: int, causal: bool = True, **_: object) -> FlopBreakdown:
    """One layer's attention core for a prefill of `seq_len` tokens (projections are the model's, not ours)."""
    return FlopBreakdown(attention=attention_flops(batch, num_heads, seq_len, seq_len, head_dim))


def cache(seq_len: int, num_kv_heads: int, head_dim: int, bytes_per_element: int = 2, **_: object) -> CacheCost:
    """Every past key and value of every key/value head is kept, and all of it is read per new token."""
    stored = 2 * seq_len * num_kv_heads * head_dim * bytes_per_element
    return CacheCost(kv_stored=stored, kv_read_per_token=stored)


def build(**_: object):
    """transformers' SDPA attention function itself: `fn(module, query, key, value, attention_mask, ...)`."""
    require_transformers()
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward


SPEC = MechanismSpec(
    name="dense",
    kind="pretrained",
    description="The pretrained model's own SDPA attention (the reference for training-free mechanisms).",
    paper="Vaswani et al., Attention Is All You Need, NeurIPS 2017, arXiv:1706.03762",
    build=build,
    flops=flops,
    cache=cache,
    supports_bidirectional=False,
    defaults={},
)
