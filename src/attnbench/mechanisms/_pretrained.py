"""What the `pretrained` mechanisms share: the model's own dense attention (transformers' SDPA, its
FLOPs and cache), a call's budget (`call_stats`: pairs computed and their density), and exact
attention over gathered keys or chosen blocks, with the model's mask as a keep-mask."""

from __future__ import annotations

import torch

from attnbench.extras import require_transformers
from attnbench.mechanism import CacheCost, FlopBreakdown


def attention_flops(
    batch: int, num_heads: int, q_len: int, keys_per_query: int, head_dim: int
) -> int:
    """Q K^T and the weighted sum of V: two (Lq x Dh) @ (Dh x K) products per head, 2 FLOPs a
    multiply-add."""
    return 2 * (2 * batch * num_heads * q_len * keys_per_query * head_dim)


def dense_flops(
    batch: int, seq_len: int, num_heads: int, head_dim: int, causal: bool = True, **_: object
) -> FlopBreakdown:
    """One layer's attention core for a prefill of `seq_len` tokens (projections are the model's,
    not ours)."""
    return FlopBreakdown(attention=attention_flops(batch, num_heads, seq_len, seq_len, head_dim))


def dense_cache(
    seq_len: int, num_kv_heads: int, head_dim: int, bytes_per_element: int = 2, **_: object
) -> CacheCost:
    """Every past key and value of every key/value head is kept, and all of it is read per new
    token."""
    stored = 2 * seq_len * num_kv_heads * head_dim * bytes_per_element
    return CacheCost(kv_stored=stored, kv_read_per_token=stored)


def build_dense(**_: object):
    """transformers' SDPA attention function itself: `fn(module, query, key, value,
    attention_mask, ...)`."""
    require_transformers()
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward


def causal_pairs(q_len: int, kv_len: int) -> int:
    """(query, key) pairs of causal attention for queries at the last q_len of kv_len positions."""
    return q_len * (kv_len - q_len) + q_len * (q_len + 1) // 2


def call_stats(
    query: torch.Tensor,
    key: torch.Tensor,
    pairs: int,
    selection: int = 0,
    kv_tokens_kept: int | None = None,
    mode: str = "sparse",
) -> dict:
    """The inference budget of one call: pairs computed, their fraction, FLOPs and KV cache kept."""
    batch, heads, q_len, head_dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    total = batch * heads * causal_pairs(q_len, kv_len)
    kept = batch * kv_heads * kv_len if kv_tokens_kept is None else kv_tokens_kept
    return {
        "mode": mode,
        "pairs": int(pairs),
        "causal_pairs": total,
        "density": int(pairs) / total,
        "attention_flops": 4 * head_dim * int(pairs),
        "selection_flops": int(selection),
        "kv_tokens_kept": int(kept),
        "kv_bytes_kept": int(2 * kept * head_dim * key.element_size()),
    }


def dense_fallback(attention, dense, module, query, key, value, attention_mask, **kwargs):
    """transformers' own attention where a mechanism is dense by its definition (a short prompt,
    a decoding step, no segments), the call recorded on `attention.last_stats` as dense."""
    pairs = query.shape[0] * query.shape[1] * causal_pairs(query.shape[2], key.shape[2])
    attention.last_stats = call_stats(query, key, pairs, mode="dense")
    return dense(module, query, key, value, attention_mask, **kwargs)


def allowed_by(attention_mask: torch.Tensor | None, kv_len: int) -> torch.Tensor | None:
    """The model's mask as a boolean keep-mask (None when causality alone says it all)."""
    if attention_mask is None:
        return None
    mask = attention_mask[..., :kv_len]
    return mask if mask.dtype == torch.bool else mask > torch.finfo(mask.dtype).min / 2


def gathered_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    index: torch.Tensor,
    allowed: torch.Tensor,
    scaling: float,
) -> torch.Tensor:
    """softmax(q K_I^T * scaling) V_I over gathered keys: query (B, H, R, Dh), key/value (B, Hkv,
    Lk, Dh), index (B, H, N) key positions per head, allowed (B, H, R, N); returns (B, H, R, Dh).
    Query head h reads key/value head h // (H / Hkv), as transformers' repeat_kv lays them out."""
    batch, heads, _, head_dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    kv_head = torch.arange(heads, device=query.device) // (heads // kv_heads)
    flat = (kv_head[None, :, None] * kv_len + index).reshape(batch, -1, 1).expand(-1, -1, head_dim)
    k = key.reshape(batch, -1, head_dim).gather(1, flat).view(batch, heads, -1, head_dim)
    v = value.reshape(batch, -1, head_dim).gather(1, flat).view(batch, heads, -1, head_dim)
    scores = (query @ k.transpose(-1, -2) * scaling).masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), -1).to(
        value.dtype
    )
    return torch.where(allowed.any(-1, keepdim=True), weights, 0) @ v


def block_sparse_attention(
    query,
    key,
    value,
    block_mask: torch.Tensor,
    block_q: int,
    block_k: int,
    scaling: float,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """Causal prefill attention over the (query block, key block) pairs of block_mask (B, H, nq,
    nk).

    Each query block gathers its chosen key blocks and takes an exact softmax over them (causal
    inside). Returns the output (B, H, L, Dh) and the number of (query, key) pairs computed.
    """
    batch, heads, length, _ = query.shape
    out, pairs = torch.empty_like(query), 0
    offsets = torch.arange(block_k, device=query.device)
    for r in range(block_mask.shape[2]):
        rows = torch.arange(r * block_q, min(length, (r + 1) * block_q), device=query.device)
        chosen = block_mask[:, :, r]
        width = int(chosen.sum(-1).max())
        blocks = chosen.int().argsort(dim=-1, descending=True, stable=True)[
            ..., :width
        ]  # chosen blocks first
        slot = torch.arange(width, device=query.device) < chosen.sum(-1, keepdim=True)
        index = (blocks[..., None] * block_k + offsets).flatten(-2)  # (B, H, width * block_k)
        valid = slot.repeat_interleave(block_k, -1) & (index < length)
        keep = valid[:, :, None, :] & (index[:, :, None, :] <= rows[:, None])
        index = index.clamp(max=length - 1)
        if allowed is not None:
            model = allowed[:, :, rows].expand(batch, heads, -1, -1)
            keep &= model.gather(-1, index[:, :, None, :].expand(-1, -1, len(rows), -1))
        out[:, :, rows] = gathered_attention(query[:, :, rows], key, value, index, keep, scaling)
        pairs += int(keep.sum())
    return out, pairs
