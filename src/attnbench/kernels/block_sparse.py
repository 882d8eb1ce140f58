"""Block-sparse flash attention, forward and backward, in Triton.

Must match: `attnbench.mechanisms.moba` (MixtureOfBlockAttention),
`attnbench.mechanisms.sliding_window` (SlidingWindowAttention) and `attnbench.mechanisms.dma`
(DynamicMaskAttention) — their masked dense SDPA on the same q, k, v; `kernels/sparse_patterns.py`
builds each mechanism's layout and rules.

FlashAttention-2's online softmax (scores in log2 units, one running max and sum per query), but a
query tile does not sweep every key tile: it walks the list its `BlockLayout` gives, so the work is
proportional to the tiles the pattern touches. Inside a tile the token rules decide each pair:
causal, a window, a per-query choice of key blocks (MoBA: each query's own top-k, compared block by
block, so tiles need not equal MoBA's blocks) and a per-key additive score with a per-query
threshold (DMA: keep the keys whose score reaches the query's w-th largest). Tiles that no rule can
cut (inside the causal triangle, away from the window's edge and the sequence's end) skip the mask.
The backward pass recomputes the probabilities from the saved log-sum-exp, as FlashAttention does:
one kernel per query tile for dQ, one per key tile for dK, dV and the key scores' gradient, each
over its own list, so nothing is accumulated atomically and results are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from attnbench.kernels.layout import BlockLayout, cdiv, on_device

LOG2E = 1.4426950408889634


@triton.jit
def _needs_mask(
    start_m,
    start_n,
    seq_len,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
    WINDOW: tl.constexpr,
    PER_PAIR: tl.constexpr,
):
    """Whether any pair of this tile could be cut by a rule (a scalar, decided per tile)."""
    needs = (start_m + BLOCK_M > seq_len) | (start_n + BLOCK_N > seq_len)
    if PER_PAIR:
        needs = needs | (start_m >= 0)
    if CAUSAL:
        needs = needs | (start_n + BLOCK_N - 1 > start_m)
    if WINDOW > 0:
        needs = needs | (start_m + BLOCK_M - 1 - start_n >= WINDOW)
        if not CAUSAL:
            needs = needs | (start_n + BLOCK_N - 1 - start_m >= WINDOW)
    return needs


@triton.jit
def _allowed(
    offs_m,
    offs_n,
    seq_len,
    sel_rows,
    thresholds,
    key_bias,
    CAUSAL: tl.constexpr,
    WINDOW: tl.constexpr,
    TOPK: tl.constexpr,
    SEL_BLOCK: tl.constexpr,
    HAS_BIAS: tl.constexpr,
):
    """(BLOCK_M, BLOCK_N) bool: the pairs the rules allow."""
    allowed = (offs_m[:, None] < seq_len) & (offs_n[None, :] < seq_len)
    distance = offs_m[:, None] - offs_n[None, :]
    if CAUSAL:
        allowed = allowed & (distance >= 0)
    if WINDOW > 0:
        allowed = allowed & (distance < WINDOW)
        if not CAUSAL:
            allowed = allowed & (distance > -WINDOW)
    if TOPK > 0:
        block = offs_n // SEL_BLOCK
        hit = (offs_m[:, None] < 0) & (offs_n[None, :] < 0)
        for t in tl.static_range(TOPK):
            chosen = tl.load(sel_rows + offs_m * TOPK + t, mask=offs_m < seq_len, other=-1)
            hit = hit | (chosen[:, None] == block[None, :])
        allowed = allowed & hit
    if HAS_BIAS:
        allowed = allowed & (key_bias[None, :] >= thresholds[:, None])
    return allowed


@triton.jit
def _key_tile(
    q,
    K,
    V,
    SEL,
    BIAS,
    thresholds,
    row,
    start_m,
    start_n,
    offs_m,
    offs_d,
    in_d,
    qk_scale,
    seq_len,
    head_dim,
    CAUSAL: tl.constexpr,
    WINDOW: tl.constexpr,
    TOPK: tl.constexpr,
    SEL_BLOCK: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    PER_PAIR: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """One key tile against a query tile: its keys, its values and the log2-scale scores with every
    pair the pattern forbids at -inf. The forward and the dQ pass read the tiles alike (inlined by
    the compiler).
    """
    offs_n = start_n + tl.arange(0, BLOCK_N)
    in_n = offs_n < seq_len
    k = tl.load(
        K + (row + offs_n[:, None]) * head_dim + offs_d[None, :],
        mask=in_n[:, None] & in_d[None, :],
        other=0.0,
    )
    v = tl.load(
        V + (row + offs_n[:, None]) * head_dim + offs_d[None, :],
        mask=in_n[:, None] & in_d[None, :],
        other=0.0,
    )
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
    key_bias = 0.0
    if HAS_BIAS:
        key_bias = tl.load(BIAS + row + offs_n, mask=in_n, other=0.0)
        s += key_bias[None, :] * 1.4426950408889634
    if _needs_mask(start_m, start_n, seq_len, BLOCK_M, BLOCK_N, CAUSAL, WINDOW, PER_PAIR):
        allowed = _allowed(
            offs_m,
            offs_n,
            seq_len,
            SEL + row * TOPK,
            thresholds,
            key_bias,
            CAUSAL,
            WINDOW,
            TOPK,
            SEL_BLOCK,
            HAS_BIAS,
        )
        s = tl.where(allowed, s, float("-inf"))
    return k, v, s


@triton.jit
def _forward(
    Q,
    K,
    V,
    O,
    LSE,
    KV_IDX,
    KV_CNT,
    SEL,
    BIAS,
    THR,
    qk_scale,
    seq_len,
    head_dim,
    heads,
    idx_sb,
    idx_sh,
    idx_width,
    cnt_sb,
    cnt_sh,
    CAUSAL: tl.constexpr,
    WINDOW: tl.constexpr,
    TOPK: tl.constexpr,
    SEL_BLOCK: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    PER_PAIR: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    tile_m = tl.program_id(0)
    bh = tl.program_id(1)
    b, h = bh // heads, bh % heads
    row = bh.to(tl.int64) * seq_len
    start_m = tile_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    in_m, in_d = offs_m < seq_len, offs_d < head_dim
    q = tl.load(
        Q + (row + offs_m[:, None]) * head_dim + offs_d[None, :],
        mask=in_m[:, None] & in_d[None, :],
        other=0.0,
    )
    thresholds = 0.0
    if HAS_BIAS:
        thresholds = tl.load(THR + row + offs_m, mask=in_m, other=float("inf"))
    m_i = tl.full(
        [BLOCK_M], -1.0e30, tl.float32
    )  # finite, so a row with nothing allowed yet stays NaN-free
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    count = tl.load(KV_CNT + b * cnt_sb + h * cnt_sh + tile_m)
    tiles = KV_IDX + b * idx_sb + h * idx_sh + tile_m * idx_width
    for i in range(0, count):
        start_n = tl.load(tiles + i) * BLOCK_N
        k, v, s = _key_tile(
            q,
            K,
            V,
            SEL,
            BIAS,
            thresholds,
            row,
            start_m,
            start_n,
            offs_m,
            offs_d,
            in_d,
            qk_scale,
            seq_len,
            head_dim,
            CAUSAL,
            WINDOW,
            TOPK,
            SEL_BLOCK,
            HAS_BIAS,
            PER_PAIR,
            BLOCK_M,
            BLOCK_N,
            PRECISION,
        )
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    seen = l_i > 0
    out = acc / tl.where(seen, l_i, 1.0)[:, None]
    tl.store(
        O + (row + offs_m[:, None]) * head_dim + offs_d[None, :],
        out.to(O.dtype.element_ty),
        mask=in_m[:, None] & in_d[None, :],
    )
    # +inf for a query that reads nothing makes its backward probabilities exactly 0.
    tl.store(
        LSE + row + offs_m,
        tl.where(seen, m_i + tl.log2(tl.where(seen, l_i, 1.0)), float("inf")),
        mask=in_m,
    )


@triton.jit
def _backward_dq(
    Q,
    K,
    V,
    DO,
    DQ,
    LSE,
    DELTA,
    KV_IDX,
    KV_CNT,
    SEL,
    BIAS,
    THR,
    qk_scale,
    scale,
    seq_len,
    head_dim,
    heads,
    idx_sb,
    idx_sh,
    idx_width,
    cnt_sb,
    cnt_sh,
    CAUSAL: tl.constexpr,
    WINDOW: tl.constexpr,
    TOPK: tl.constexpr,
    SEL_BLOCK: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    PER_PAIR: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    tile_m = tl.program_id(0)
    bh = tl.program_id(1)
    b, h = bh // heads, bh % heads
    row = bh.to(tl.int64) * seq_len
    start_m = tile_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    in_m, in_d = offs_m < seq_len, offs_d < head_dim
    rows_md = (row + offs_m[:, None]) * head_dim + offs_d[None, :]
    q = tl.load(Q + rows_md, mask=in_m[:, None] & in_d[None, :], other=0.0)
    do = tl.load(DO + rows_md, mask=in_m[:, None] & in_d[None, :], other=0.0)
    lse = tl.load(LSE + row + offs_m, mask=in_m, other=float("inf"))
    delta = tl.load(DELTA + row + offs_m, mask=in_m, other=0.0)
    thresholds = 0.0
    if HAS_BIAS:
        thresholds = tl.load(THR + row + offs_m, mask=in_m, other=float("inf"))
    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    count = tl.load(KV_CNT + b * cnt_sb + h * cnt_sh + tile_m)
    tiles = KV_IDX + b * idx_sb + h * idx_sh + tile_m * idx_width
    for i in range(0, count):
        start_n = tl.load(tiles + i) * BLOCK_N
        k, v, s = _key_tile(
            q,
            K,
            V,
            SEL,
            BIAS,
            thresholds,
            row,
            start_m,
            start_n,
            offs_m,
            offs_d,
            in_d,
            qk_scale,
            seq_len,
            head_dim,
            CAUSAL,
            WINDOW,
            TOPK,
            SEL_BLOCK,
            HAS_BIAS,
            PER_PAIR,
            BLOCK_M,
            BLOCK_N,
            PRECISION,
        )
        p = tl.exp2(s - lse[:, None])
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
    tl.store(DQ + rows_md, (dq * scale).to(DQ.dtype.element_ty), mask=in_m[:, None] & in_d[None, :])


@triton.jit
def _backward_dkdv(
    Q,
    K,
    V,
    DO,
    DK,
    DV,
    DBIAS,
    LSE,
    DELTA,
    Q_IDX,
    Q_CNT,
    SEL,
    BIAS,
    THR,
    qk_scale,
    scale,
    seq_len,
    head_dim,
    heads,
    idx_sb,
    idx_sh,
    idx_width,
    cnt_sb,
    cnt_sh,
    CAUSAL: tl.constexpr,
    WINDOW: tl.constexpr,
    TOPK: tl.constexpr,
    SEL_BLOCK: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    PER_PAIR: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    tile_n = tl.program_id(0)
    bh = tl.program_id(1)
    b, h = bh // heads, bh % heads
    row = bh.to(tl.int64) * seq_len
    start_n = tile_n * BLOCK_N
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    in_n, in_d = offs_n < seq_len, offs_d < head_dim
    rows_nd = (row + offs_n[:, None]) * head_dim + offs_d[None, :]
    k = tl.load(K + rows_nd, mask=in_n[:, None] & in_d[None, :], other=0.0)
    v = tl.load(V + rows_nd, mask=in_n[:, None] & in_d[None, :], other=0.0)
    key_bias = 0.0
    if HAS_BIAS:
        key_bias = tl.load(BIAS + row + offs_n, mask=in_n, other=0.0)
    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dbias = tl.zeros([BLOCK_N], tl.float32)
    count = tl.load(Q_CNT + b * cnt_sb + h * cnt_sh + tile_n)
    tiles = Q_IDX + b * idx_sb + h * idx_sh + tile_n * idx_width
    for i in range(0, count):
        start_m = tl.load(tiles + i) * BLOCK_M
        offs_m = start_m + tl.arange(0, BLOCK_M)
        in_m = offs_m < seq_len
        rows_md = (row + offs_m[:, None]) * head_dim + offs_d[None, :]
        q = tl.load(Q + rows_md, mask=in_m[:, None] & in_d[None, :], other=0.0)
        do = tl.load(DO + rows_md, mask=in_m[:, None] & in_d[None, :], other=0.0)
        lse = tl.load(LSE + row + offs_m, mask=in_m, other=float("inf"))
        delta = tl.load(DELTA + row + offs_m, mask=in_m, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        thresholds = 0.0
        if HAS_BIAS:
            thresholds = tl.load(THR + row + offs_m, mask=in_m, other=float("inf"))
            s += key_bias[None, :] * 1.4426950408889634
        if _needs_mask(start_m, start_n, seq_len, BLOCK_M, BLOCK_N, CAUSAL, WINDOW, PER_PAIR):
            allowed = _allowed(
                offs_m,
                offs_n,
                seq_len,
                SEL + row * TOPK,
                thresholds,
                key_bias,
                CAUSAL,
                WINDOW,
                TOPK,
                SEL_BLOCK,
                HAS_BIAS,
            )
            s = tl.where(allowed, s, float("-inf"))
        p = tl.exp2(s - lse[:, None])
        dv += tl.dot(tl.trans(p).to(do.dtype), do, input_precision=PRECISION)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dk += tl.dot(tl.trans(ds).to(q.dtype), q, input_precision=PRECISION)
        if HAS_BIAS:
            dbias += tl.sum(ds, 0)
    tl.store(DK + rows_nd, (dk * scale).to(DK.dtype.element_ty), mask=in_n[:, None] & in_d[None, :])
    tl.store(DV + rows_nd, dv.to(DV.dtype.element_ty), mask=in_n[:, None] & in_d[None, :])
    if HAS_BIAS:
        tl.store(DBIAS + row + offs_n, dbias.to(DBIAS.dtype.element_ty), mask=in_n)


@triton.jit
def _backward_delta(O, DO, DELTA, rows, head_dim, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    """DELTA[r] = sum_d O[r, d] dO[r, d] in float32 (FlashAttention-2's preprocessing), read in
    place: no float32 copies of O and dO, which at L = 128K would cost three times the memory of the
    inputs.
    """
    offs_r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_d = tl.arange(0, BLOCK_D)
    in_r = offs_r < rows
    mask = in_r[:, None] & (offs_d < head_dim)[None, :]
    o = tl.load(O + offs_r[:, None] * head_dim + offs_d[None, :], mask=mask, other=0.0).to(
        tl.float32
    )
    do = tl.load(DO + offs_r[:, None] * head_dim + offs_d[None, :], mask=mask, other=0.0).to(
        tl.float32
    )
    tl.store(DELTA + offs_r, tl.sum(o * do, 1), mask=in_r)


@dataclass(frozen=True)
class TokenRules:
    """The pair rules applied inside tiles. `selected` (B, H, L, k) int32 block ids of
    `select_block` keys each query may read (-1: none); `thresholds` (B, H, L): a query reads key j
    only if key_bias[j] >= it.
    """

    causal: bool = True
    window: int = 0
    selected: torch.Tensor | None = None
    select_block: int = 1
    thresholds: torch.Tensor | None = None


def _strides(indices: torch.Tensor, counts: torch.Tensor) -> tuple[int, ...]:
    """Batch and head strides of a layout (0 where it is shared), then the list width."""

    def stride(tensor: torch.Tensor, dim: int) -> int:
        return 0 if tensor.shape[dim] == 1 else tensor.stride(dim)

    return (
        stride(indices, 0),
        stride(indices, 1),
        indices.shape[-1],
        stride(counts, 0),
        stride(counts, 1),
    )


def _precision(dtype: torch.dtype) -> str:
    # float32 inputs keep float32 products, so a kernel and its float32 reference agree closely.
    return "ieee" if dtype == torch.float32 else "tf32"


def num_stages(element_size: int, block_d: int) -> int:
    """Software-pipelining depth: 3 buffered tiles where they fit in a Hopper SM's 227 KiB of shared
    memory, 2 for wider rows. Compiled for sm_90 at 64 x 64 tiles, 3 stages of bfloat16 rows of 256
    need 232-260 KiB (forward, dQ) and fail to launch; 2 stages need 168-196 KiB."""
    return 3 if element_size * block_d <= 256 else 2


def _meta(q: torch.Tensor, layout: BlockLayout, rules: TokenRules, has_bias: bool) -> dict:
    block_d = max(16, triton.next_power_of_2(q.shape[-1]))
    return {
        "CAUSAL": rules.causal,
        "WINDOW": rules.window,
        "TOPK": rules.selected.shape[-1] if rules.selected is not None else 0,
        "SEL_BLOCK": rules.select_block,
        "HAS_BIAS": has_bias,
        "PER_PAIR": rules.selected is not None or has_bias,
        "BLOCK_M": layout.block_m,
        "BLOCK_N": layout.block_n,
        "BLOCK_D": block_d,
        "PRECISION": _precision(q.dtype),
        "num_warps": 4 if block_d <= 64 else 8,  # wide heads: more warps share the accumulators
        "num_stages": num_stages(q.element_size(), block_d),
    }


class _BlockSparseAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, key_bias, layout: BlockLayout, rules: TokenRules, scale: float):
        batch, heads, seq_len, head_dim = q.shape
        out = torch.empty_like(q)
        lse = torch.empty(batch, heads, seq_len, device=q.device, dtype=torch.float32)
        has_bias = key_bias is not None
        bias = key_bias if has_bias else lse  # an unused pointer when there is no bias
        selected = rules.selected if rules.selected is not None else layout.kv_counts
        thresholds = rules.thresholds if rules.thresholds is not None else lse
        meta = _meta(q, layout, rules, has_bias)
        grid = (cdiv(seq_len, layout.block_m), batch * heads)
        with on_device(q.device):
            _forward[grid](
                q,
                k,
                v,
                out,
                lse,
                layout.kv_indices,
                layout.kv_counts,
                selected,
                bias,
                thresholds,
                scale * LOG2E,
                seq_len,
                head_dim,
                heads,
                *_strides(layout.kv_indices, layout.kv_counts),
                **meta,
            )
        ctx.save_for_backward(q, k, v, out, lse, key_bias, selected, thresholds)
        ctx.layout, ctx.meta, ctx.scale = layout, meta, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse, key_bias, selected, thresholds = ctx.saved_tensors
        layout, meta, scale = ctx.layout, ctx.meta, ctx.scale
        batch, heads, seq_len, head_dim = q.shape
        grad_out = grad_out.contiguous()
        delta = torch.empty(
            batch, heads, seq_len, device=q.device, dtype=torch.float32
        )  # rowsum(dO * O)
        rows, block_d = batch * heads * seq_len, max(16, triton.next_power_of_2(head_dim))
        block_r = max(16, min(128, 8192 // block_d))
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        has_bias = key_bias is not None
        dbias = (
            torch.empty(batch, heads, seq_len, device=q.device, dtype=torch.float32)
            if has_bias
            else lse
        )
        bias = key_bias if has_bias else lse
        with on_device(q.device):
            _backward_delta[(cdiv(rows, block_r),)](
                out, grad_out, delta, rows, head_dim, BLOCK_R=block_r, BLOCK_D=block_d
            )
            _backward_dq[(cdiv(seq_len, layout.block_m), batch * heads)](
                q,
                k,
                v,
                grad_out,
                dq,
                lse,
                delta,
                layout.kv_indices,
                layout.kv_counts,
                selected,
                bias,
                thresholds,
                scale * LOG2E,
                scale,
                seq_len,
                head_dim,
                heads,
                *_strides(layout.kv_indices, layout.kv_counts),
                **meta,
            )
            _backward_dkdv[(cdiv(seq_len, layout.block_n), batch * heads)](
                q,
                k,
                v,
                grad_out,
                dk,
                dv,
                dbias,
                lse,
                delta,
                layout.q_indices,
                layout.q_counts,
                selected,
                bias,
                thresholds,
                scale * LOG2E,
                scale,
                seq_len,
                head_dim,
                heads,
                *_strides(layout.q_indices, layout.q_counts),
                **meta,
            )
        return dq, dk, dv, dbias.to(key_bias.dtype) if has_bias else None, None, None, None


def check_tiles(block_m: int, block_n: int, gpu: bool) -> None:
    """tl.arange needs powers of two, and on a GPU tl.dot needs a reduction dimension (here both
    tile sides, in P V and in P^T dO) of at least 16 for 16-bit inputs. Triton's interpreter accepts
    smaller tiles, so the GPU's rule is stated here rather than met as a compiler assertion on the
    first GPU run."""
    for block in (block_m, block_n):
        if block < 1 or block & (block - 1) or (gpu and block < 16):
            raise ValueError(
                f"tiles of {block_m} x {block_n}: each side must be a power of two"
                + (" >= 16 on a GPU" if gpu else "")
            )


def block_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layout: BlockLayout,
    rules: TokenRules | None = None,
    key_bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """softmax(q k^T scale + key_bias) v over the pairs `layout` and `rules` (default: causal)
    allow; (B, H, L, d) in and out."""
    rules = rules or TokenRules()
    batch, heads, seq_len, head_dim = q.shape
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(
            f"q, k, v must share one (B, H, L, d) shape, got {tuple(q.shape)}, {tuple(k.shape)}, "
            f"{tuple(v.shape)}"
        )
    if any(
        t.shape[0] not in (1, batch) or t.shape[1] not in (1, heads)
        for t in (layout.kv_indices, layout.q_indices)
    ):
        raise ValueError(
            f"layout of shape {tuple(layout.kv_indices.shape)} does not broadcast to B={batch},"
            f" H={heads}"
        )
    if q.dtype != k.dtype or q.dtype != v.dtype:
        raise ValueError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    check_tiles(layout.block_m, layout.block_n, q.is_cuda)
    if layout.seq_len != seq_len:
        raise ValueError(f"layout built for length {layout.seq_len}, inputs have {seq_len}")
    for name, tensor in (
        ("selected", rules.selected),
        ("thresholds", rules.thresholds),
        ("key_bias", key_bias),
    ):
        if tensor is not None and tuple(tensor.shape[:3]) != (batch, heads, seq_len):
            raise ValueError(
                f"{name} must start with (B, H, L) = {(batch, heads, seq_len)}, got"
                f" {tuple(tensor.shape)}"
            )
    if (key_bias is None) != (rules.thresholds is None):
        raise ValueError(
            "key_bias and thresholds come together (the scores both bias and select keys)"
        )
    # The kernels index (B, H, L) tensors as dense rows: a transposed view would be read wrongly.
    selected = rules.selected.to(torch.int32).contiguous() if rules.selected is not None else None
    thresholds = rules.thresholds.float().contiguous() if rules.thresholds is not None else None
    rules = TokenRules(rules.causal, rules.window, selected, rules.select_block, thresholds)
    key_bias = key_bias.contiguous() if key_bias is not None else None
    scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
    return _BlockSparseAttention.apply(
        q.contiguous(), k.contiguous(), v.contiguous(), key_bias, layout, rules, scale
    )
