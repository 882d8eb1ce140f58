"""FlexPrefill — "FlexPrefill: A Context-Aware Sparse Attention Mechanism for Efficient
Long-Sequence Inference" (Lai, Lu, Luo, Ma and Zhou, ICLR 2025, arXiv:2502.20766; code
bytedance-seed/FlexPrefill).

A sparse prefill that chooses, per input and per head, which (query block, key block) pairs to
compute. The last `block_size` queries q̂ give an estimate â = softmax(q̂ K^T * scaling) (causal).
Its vertical profile (mean over queries, per key) and slash profile (mean mass per query-key
distance) say how many key columns and diagonals cover a fraction `gamma` of the attention. A
block-pooled estimate ā = softmax(mean(q̂) · mean-pooled K^T) is compared with the vertical profile
pooled per block by the square root of the Jensen-Shannon divergence: below `tau` the pooled
estimate is trusted and the head is *query-aware* — every query block q_i scores every key block k_j
by softmax(mean(q_i) · mean(k_j)) and blocks are taken in decreasing score until their cumulative
mass reaches gamma · (number of rows) — on top of a minimum vertical-slash budget; otherwise the
head is *vertical-slash*: the chosen columns and diagonals, clamped to [`min_budget`, `max_budget`]
tokens. The first key block and the diagonal are always kept. Prompts of at most max(2 · block_size,
min_budget) tokens, decoding steps (Lq == 1) and chunked prefills (Lq != Lk) run dense, as in the
official code.

Implementation: selection follows the official `get_active_blocks` (vectorised over batch and
heads); the chosen blocks run through `block_sparse_attention`, an exact softmax over the gathered
key blocks of each query block, so the work really shrinks with the pattern. Two deliberate
differences: the token count covering gamma becomes count // block_size + 1 blocks (the official
code hard-codes 128 there, its default block size), and the query-aware selection includes the block
that crosses gamma. Padding masks are honoured in the attention, not in the estimate.

Budget: the function keeps `last_stats` (see `call_stats`): (query, key) pairs computed and their
fraction of causal dense attention in the last call, selection FLOPs and the KV cache kept (all of
it: FlexPrefill only sparsifies the prefill). FLOPs count 4 · Dh per computed pair (Q K^T and A V,
as `moba` counts keys read); the pattern depends on the input, so `flops` declares all causal pairs
unless given the measured `density`. Selection: 2 · Dh · (block_size · L + n + n^2) per head, n =
ceil(L / block).
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


def block_pool(x: torch.Tensor, block: int, mean: bool = True) -> torch.Tensor:
    """Sum (or mean, over the tokens present) of consecutive blocks along dim 2 of (B, H, L,
    ...)."""
    length = x.shape[2]
    n = -(-length // block)
    padded = torch.nn.functional.pad(x.movedim(2, -1), (0, n * block - length)).movedim(-1, 2)
    pooled = padded.unflatten(2, (n, block)).sum(3)
    if mean:
        sizes = torch.full((n,), block, device=x.device, dtype=x.dtype)
        sizes[-1] = length - (n - 1) * block
        pooled = pooled / sizes.view(n, *([1] * (x.dim() - 3)))
    return pooled


def cover_count(scores: torch.Tensor, gamma: float) -> torch.Tensor:
    """How many of the largest entries of each row (summing to 1) reach a cumulative mass of
    gamma."""
    if gamma >= 1:
        return torch.full(scores.shape[:-1], scores.shape[-1], device=scores.device)
    mass = scores.sort(-1, descending=True).values.cumsum(-1)
    return ((mass < gamma).sum(-1) + 1).clamp(max=scores.shape[-1])


def top_ranked(scores: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the `count` largest entries of each row."""
    ranks = scores.argsort(dim=-1, descending=True, stable=True).argsort(-1)
    return ranks < count[..., None]


def js_distance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """sqrt of the Jensen-Shannon divergence (natural log) between distributions along the last
    dim."""
    log_m = ((p + q) / 2).clamp_min(1e-30).log()

    def kl_to_m(x: torch.Tensor) -> torch.Tensor:  # 0 log 0 = 0
        return (x * (x.clamp_min(1e-30).log() - log_m)).sum(-1)

    return (0.5 * kl_to_m(p) + 0.5 * kl_to_m(q)).clamp_min(0).sqrt()


def select_blocks(
    query,
    key,
    scaling: float,
    block_size: int,
    gamma: float,
    tau: float,
    min_blocks: int,
    max_blocks: int,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(block mask (B, H, n, n), query-aware heads (B, H), selection FLOPs) of a prefill."""
    batch, heads, length, head_dim = query.shape
    k = key.repeat_interleave(heads // key.shape[1], 1)
    n, dev = -(-length // block_size), query.device
    positions = torch.arange(length, device=dev)
    last = query[:, :, length - block_size :]
    estimate = (last @ k.transpose(-1, -2) * scaling).masked_fill(
        positions[None, :] > positions[length - block_size :, None], float("-inf")
    )
    estimate = torch.softmax(estimate, -1, dtype=torch.float32)  # â: (B, H, block, L)
    vertical = estimate.mean(-2)
    distance = (positions[length - block_size :, None] - positions[None, :]).clamp(min=0)
    slash = (
        torch.zeros_like(vertical).scatter_add_(
            -1,
            distance.expand_as(estimate).reshape(batch, heads, -1),
            estimate.reshape(batch, heads, -1),
        )
        / block_size
    )
    columns = cover_count(vertical, gamma) // block_size + 1
    diagonals = cover_count(slash, gamma) // block_size + 1
    pooled_vertical = block_pool(vertical[..., None], block_size, mean=False)[..., 0]
    pooled_slash = block_pool(slash[..., None], block_size, mean=False)[..., 0]  # by block distance
    k_mean = block_pool(k, block_size)
    pooled = torch.softmax(
        (last.mean(2, keepdim=True) @ k_mean.transpose(-1, -2))[..., 0, :].float() * scaling, -1
    )
    query_aware = js_distance(pooled, pooled_vertical) < tau
    columns = torch.where(query_aware, min_blocks, columns.clamp(min_blocks, max_blocks))
    diagonals = torch.where(query_aware, min_blocks, diagonals.clamp(min_blocks, max_blocks))
    pooled_vertical[..., 0] = float("inf")  # the first key block ...
    pooled_slash[..., 0] = float("inf")  # ... and the diagonal are always kept
    blocks = torch.arange(n, device=dev)
    block_causal = blocks[None, :] <= blocks[:, None]
    kept_distance = top_ranked(pooled_slash, diagonals)[
        ..., (blocks[:, None] - blocks[None, :]).clamp(min=0)
    ]
    mask = block_causal & (top_ranked(pooled_vertical, columns)[..., None, :] | kept_distance)
    selection = 2 * head_dim * batch * heads * (block_size * length + n)
    if query_aware.any():
        q_mean = block_pool(query, block_size)
        scores = (q_mean @ k_mean.transpose(-1, -2) * scaling).masked_fill(
            ~block_causal, float("-inf")
        )
        flat = torch.softmax(scores, -1, dtype=torch.float32).flatten(
            -2
        )  # n rows, each summing to 1
        order = flat.argsort(dim=-1, descending=True, stable=True)
        before = flat.gather(-1, order).cumsum(-1) - flat.gather(-1, order)
        chosen = torch.zeros_like(flat, dtype=torch.bool).scatter_(-1, order, before < gamma * n)
        mask |= chosen.view(batch, heads, n, n) & block_causal & query_aware[..., None, None]
        selection += 2 * head_dim * n * n * int(query_aware.sum())
    return mask, query_aware, selection


def dense_threshold(block_size: int, min_budget: int) -> int:
    """Prefills of at most this many tokens run dense (the official rule)."""
    return max(2 * block_size, -(-min_budget // block_size) * block_size)


def build(
    block_size: int = 128,
    gamma: float = 0.9,
    tau: float = 0.1,
    min_budget: int = 512,
    max_budget: int | None = None,
):
    """An attention function with transformers' AttentionInterface signature; `last_stats` holds
    its budget."""
    if (
        block_size < 1
        or not 0 < gamma <= 1
        or tau < 0
        or min_budget < 1
        or (max_budget is not None and max_budget < min_budget)
    ):
        raise ConfigError(
            "flexprefill needs block_size >= 1, 0 < gamma <= 1, tau >= 0, min_budget >= 1 and"
            f" max_budget >= min_budget (got {block_size}, {gamma}, {tau}, {min_budget},"
            f" {max_budget})"
        )
    dense = build_dense()
    shortest_sparse = dense_threshold(block_size, min_budget) + 1

    def flexprefill_attention(
        module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs
    ):
        q_len, kv_len = query.shape[2], key.shape[2]
        scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
        if q_len != kv_len or q_len < shortest_sparse:
            return dense_fallback(
                flexprefill_attention,
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
        n = -(-q_len // block_size)
        most = n if max_budget is None else min(n, -(-max_budget // block_size))
        mask, aware, selection = select_blocks(
            query, key, scaling, block_size, gamma, tau, min(-(-min_budget // block_size), n), most
        )
        out, pairs = block_sparse_attention(
            query,
            key,
            value,
            mask,
            block_size,
            block_size,
            scaling,
            allowed_by(attention_mask, kv_len),
        )
        flexprefill_attention.last_stats = call_stats(query, key, pairs, selection)
        flexprefill_attention.last_stats["query_aware_heads"] = int(aware.sum())
        return out.transpose(1, 2).contiguous(), None

    flexprefill_attention.last_stats = {}
    return flexprefill_attention


def flops(
    batch: int,
    seq_len: int,
    num_heads: int,
    head_dim: int,
    causal: bool = True,
    block_size: int = 128,
    min_budget: int = 512,
    density: float | None = None,
    **_: object,
) -> FlopBreakdown:
    """A prefill's FLOPs: 4 Dh per computed pair, all causal pairs unless `density` (measured)
    says fewer."""
    pairs = batch * num_heads * causal_pairs(seq_len, seq_len)
    if seq_len <= dense_threshold(block_size, min_budget):
        return FlopBreakdown(attention=4 * head_dim * pairs)
    n = -(-seq_len // block_size)
    selection = 2 * head_dim * batch * num_heads * (block_size * seq_len + n + n * n)
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
    name="flexprefill",
    kind="pretrained",
    description=(
        "FlexPrefill: per-head query-aware or vertical-slash block-sparse prefill covering gamma of"
        " the attention."
    ),
    paper=(
        "Lai et al., FlexPrefill: A Context-Aware Sparse Attention Mechanism for Efficient"
        " Long-Sequence Inference, ICLR 2025, arXiv:2502.20766"
    ),
    build=build,
    flops=flops,
    flops_exact=False,
    cache=cache,
    supports_bidirectional=False,
    defaults={"block_size": 128, "gamma": 0.9, "tau": 0.1, "min_budget": 512, "max_budget": None},
    # the paper's sizes scaled down 8x, so that CPU smoke prompts of a few hundred tokens are sparse
    profile_defaults={"smoke": {"block_size": 16, "min_budget": 64}},
)
