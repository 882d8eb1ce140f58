"""SALE — "SALE: Low-bit Estimation for Efficient Sparse Attention in Long-context LLM Prefilling"
(Ji, Zhang, Fu and Cui, arXiv:2505.24179; code BirdChristopher/SALE).

A sparse prefill with a fine-grained, cheap estimate of the whole attention map. Q and K are
smoothed (the mean query and the mean key of each head subtracted) and quantised per token to 4 bits
(symmetric, x ≈ s · round(x / s), s = max|x| / 7); the estimate of q_i · (k_j - mean k) is s_q,i
s_k,j (q̃_i · k̃_j) + mean(q) · (k_j - mean k). Each block of `block_q` queries first attends
exactly to the first key block (the sink) and to its local window (the last `local_window` keys up
to its diagonal), which gives each row's running maximum m_i and sum l_i. Every other causal key
block of `block_k` keys is computed exactly only if some entry's Relative Attention Score
exp(scaling · ŝ_ij - m_i) / l_i — its estimated weight relative to what the row has already gathered
— exceeds the head's threshold (`threshold`, 0.008 in the official calibration; per-head values from
an offline calibration in `thresholds`; 0 keeps every block). Prompts of at most `dense_below`
tokens (1024 officially), decoding steps and chunked prefills run dense.

This reference emulates the 4-bit estimate in PyTorch (integer-valued float tensors, exact
products), where the official kernel uses int4 tensor cores; so on a CPU the estimate costs as much
as dense Q K^T and the method cannot be faster than dense here — only its selection is reproduced.
It follows the kernel's two-pass variant (thresholds fixed after the sink and local pass; the other
variant tightens them segment by segment) and omits the kernel's alignment of the local window to
256-key segments. Selected blocks run through flexprefill's `block_sparse_attention`.

Budget: FLOPs count 4 Dh per computed (query, key) pair; the pattern depends on the input, so
`flops` declares all causal pairs unless given the measured `density` (see `last_stats`). Selection
is the estimate, 2 Dh per causal pair outside the sink and local blocks.
"""

from __future__ import annotations

import torch

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._pretrained import (
    allowed_by,
    block_sparse_attention,
    build_dense,
    call_stats,
    causal_pairs,
    dense_cache,
    dense_fallback,
)


def quantize_int4(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token symmetric 4-bit codes in [-7, 7] (as floats) and their scales: x ≈ codes *
    scale."""
    scale = x.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny) / 7
    return torch.round(x / scale), scale


def local_blocks(
    row_end: int, block_k: int, local_window: int, num_key_blocks: int
) -> torch.Tensor:
    """Key blocks a query block ending at row_end always computes: the sink and the last
    local_window keys."""
    last = -(-row_end // block_k)
    local = torch.zeros(num_key_blocks, dtype=torch.bool)
    local[max(0, last - -(-local_window // block_k)) : last] = True
    local[0] = True
    return local


def select_blocks(
    query,
    key,
    scaling: float,
    block_q: int,
    block_k: int,
    local_window: int,
    thresholds: torch.Tensor,
) -> tuple[torch.Tensor, int]:
    """(block mask (B, H, nq, nk), selection FLOPs) from the 4-bit estimate and the relative
    attention score."""
    batch, heads, length, head_dim = query.shape
    k = key.repeat_interleave(heads // key.shape[1], 1)
    smooth_k = k - k.mean(2, keepdim=True)
    q_mean = query.mean(2, keepdim=True)
    q_codes, q_scale = quantize_int4(query - q_mean)
    k_codes, k_scale = quantize_int4(smooth_k)
    q_mean_k = q_mean @ smooth_k.transpose(-1, -2)  # (B, H, 1, L)
    nq, nk = -(-length // block_q), -(-length // block_k)
    positions = torch.arange(length, device=query.device)
    key_block = positions // block_k
    log_threshold = thresholds.log().view(1, heads, 1, 1)  # -inf for a threshold of 0: every block
    mask = torch.zeros(batch, heads, nq, nk, dtype=torch.bool, device=query.device)
    estimated = 0
    for r in range(nq):
        rows = positions[r * block_q : (r + 1) * block_q]
        causal = positions[None, :] <= rows[:, None]
        local = local_blocks(int(rows[-1]) + 1, block_k, local_window, nk).to(query.device)
        exact = query[:, :, rows] @ smooth_k[:, :, local[key_block]].transpose(-1, -2) * scaling
        exact = exact.masked_fill(~causal[:, local[key_block]], float("-inf"))
        row_max = exact.amax(-1, keepdim=True)
        row_sum = (exact - row_max).exp().sum(-1, keepdim=True)
        estimate = (q_codes[:, :, rows] @ k_codes.transpose(-1, -2)) * q_scale[
            :, :, rows
        ] * k_scale.transpose(-1, -2) + q_mean_k
        big = (
            (estimate * scaling > row_max + row_sum.log() + log_threshold)
            & causal
            & ~local[key_block]
        )
        mask[:, :, r] = local[:nk] & (torch.arange(nk, device=query.device) * block_k <= rows[-1])
        mask[:, :, r] |= (
            torch.zeros(batch, heads, nk, dtype=torch.int, device=query.device).index_add_(
                -1, key_block, big.any(-2).int()
            )
            > 0
        )
        estimated += int((causal & ~local[key_block]).sum())
    return mask, 2 * head_dim * batch * heads * estimated


def build(
    block_q: int = 64,
    block_k: int = 32,
    local_window: int = 128,
    threshold: float = 0.008,
    thresholds: dict | None = None,
    dense_below: int = 1024,
):
    """An attention function with transformers' AttentionInterface signature; `last_stats` holds its
    budget.

    `thresholds` maps a layer index (as a string) to one relative-score threshold per query head;
    other layers use `threshold`.
    """
    if min(block_q, block_k, local_window) < 1 or threshold < 0 or dense_below < 0:
        raise ConfigError(
            "sale needs positive block_q, block_k and local_window, threshold >= 0 and dense_below"
            f" >= 0 (got {block_q}, {block_k}, {local_window}, {threshold}, {dense_below})"
        )
    dense = build_dense()

    def sale_attention(
        module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs
    ):
        q_len, kv_len = query.shape[2], key.shape[2]
        scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
        if q_len != kv_len or q_len <= dense_below:
            return dense_fallback(
                sale_attention,
                dense,
                module,
                query,
                key,
                value,
                attention_mask,
                scaling=scaling,
                dropout=dropout,
                **kwargs,
            )
        per_head = (thresholds or {}).get(
            str(getattr(module, "layer_idx", None)), [threshold] * query.shape[1]
        )
        mask, selection = select_blocks(
            query,
            key,
            scaling,
            block_q,
            block_k,
            local_window,
            torch.tensor(per_head, dtype=torch.float64, device=query.device),
        )
        out, pairs = block_sparse_attention(
            query, key, value, mask, block_q, block_k, scaling, allowed_by(attention_mask, kv_len)
        )
        sale_attention.last_stats = call_stats(query, key, pairs, selection)
        return out.transpose(1, 2).contiguous(), None

    sale_attention.last_stats = {}
    return sale_attention


def estimated_pairs(seq_len: int, block_q: int, block_k: int, local_window: int) -> int:
    """Causal (query, key) pairs outside the sink and local blocks: what the 4-bit estimate
    scores."""
    total = 0
    for start in range(0, seq_len, block_q):
        t = torch.arange(start, min(seq_len, start + block_q))
        first_local = max(0, -(-int(t[-1] + 1) // block_k) - -(-local_window // block_k)) * block_k
        local = (t + 1 - first_local).clamp(min=0) + (t + 1).clamp(max=block_k) * (first_local > 0)
        total += int((t + 1 - local).sum())
    return total


def flops(
    batch: int,
    seq_len: int,
    num_heads: int,
    head_dim: int,
    causal: bool = True,
    block_q: int = 64,
    block_k: int = 32,
    local_window: int = 128,
    dense_below: int = 1024,
    density: float | None = None,
    **_: object,
) -> FlopBreakdown:
    """A prefill's FLOPs: 4 Dh per computed pair, all causal pairs unless `density` (measured)
    says fewer."""
    pairs = batch * num_heads * causal_pairs(seq_len, seq_len)
    if seq_len <= dense_below:
        return FlopBreakdown(attention=4 * head_dim * pairs)
    selection = (
        2 * head_dim * batch * num_heads * estimated_pairs(seq_len, block_q, block_k, local_window)
    )
    return FlopBreakdown(
        attention=round(4 * head_dim * pairs * (1.0 if density is None else density)),
        selection=selection,
    )


def cache(
    seq_len: int, num_kv_heads: int, head_dim: int, bytes_per_element: int = 2, **_: object
) -> CacheCost:
    """Prefill only: every key and value is kept and decoding reads them all, as `dense`."""
    return dense_cache(seq_len, num_kv_heads, head_dim, bytes_per_element)


SPEC = MechanismSpec(
    name="sale",
    kind="pretrained",
    description=(
        "SALE: 4-bit Q K^T estimate, relative attention score threshold, block-sparse prefill."
    ),
    paper=(
        "Ji et al., SALE: Low-bit Estimation for Efficient Sparse Attention in Long-context LLM"
        " Prefilling, arXiv:2505.24179"
    ),
    build=build,
    flops=flops,
    flops_exact=False,
    cache=cache,
    supports_bidirectional=False,
    defaults={
        "block_q": 64,
        "block_k": 32,
        "local_window": 128,
        "threshold": 0.008,
        "thresholds": None,
        "dense_below": 1024,
    },
    # the official sizes scaled down 8x, so that CPU smoke prompts of a few hundred tokens are
    # sparse
    profile_defaults={
        "smoke": {"block_q": 8, "block_k": 4, "local_window": 16, "dense_below": 128}
    },
)
