"""Chunked causal linear attention with a per-head decay (Lightning Attention-2), forward and
backward, in Triton.

Must match: `attnbench.mechanisms.lightning.lightning_attention` (out_t = sum_{s<=t} lambda^(t-s)
(q_t . k_s) v_s, lambda_h = exp(-slope_h)) and, through `linear_attention`,
`attnbench.mechanisms.linear.linear_attention_chunked` (slopes 0, elu+1 features, the normaliser as
an extra ones column of v).

One program owns a (batch, head) pair and a slice of the value columns and walks the sequence in
chunks of BLOCK_C tokens, as lightning attention does: inside a chunk the masked quadratic form [(Q
K^T) * M] V with M_ij = lambda^(i-j), between chunks one running d x e state, so memory is O(d e)
per program and every step is a matmul. The state is kept in float32.

The backward pass reuses the same kernel, because each gradient is itself a decayed causal linear
attention: dQ_t = sum_{s<=t} lambda^(t-s) (dO_t . v_s) k_s reads like the forward with (dO, V, K);
dK and dV look forward in time, so they are the forward on the time-reversed sequence with (V, dO,
Q) and (K, Q, dO). The kernel walks that reversed sequence in place (REVERSE), so it is one kernel
to trust instead of four, and no flipped copies.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from attnbench.kernels.layout import cdiv, on_device


@triton.jit
def _decayed_causal(
    Q,
    K,
    V,
    O,
    SLOPES,
    seq_len,
    dim_k,
    dim_v,
    heads,
    BLOCK_C: tl.constexpr,
    BLOCK_DK: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    PRECISION: tl.constexpr,
    REVERSE: tl.constexpr,
):
    # REVERSE walks the sequence from its end (step i reads token L - 1 - i): the anti-causal sums
    # of the backward pass, addressed in place instead of on flipped copies.
    bh = tl.program_id(0)
    tile_e = tl.program_id(1)
    slope = tl.load(SLOPES + bh % heads).to(tl.float32)
    row = bh.to(tl.int64) * seq_len
    offs_c = tl.arange(0, BLOCK_C)
    offs_k = tl.arange(0, BLOCK_DK)
    offs_e = tile_e * BLOCK_DV + tl.arange(0, BLOCK_DV)
    in_k, in_e = offs_k < dim_k, offs_e < dim_v
    position = offs_c.to(tl.float32)
    distance = position[:, None] - position[None, :]
    intra = tl.where(
        distance >= 0, tl.exp(-slope * tl.maximum(distance, 0.0)), 0.0
    )  # M_ij = lambda^(i-j)
    q_decay = tl.exp(
        -slope * (position + 1.0)
    )  # the state is as of the previous chunk's last token
    k_decay = tl.exp(-slope * (BLOCK_C - 1.0 - position))  # carries k_j to this chunk's last token
    chunk_decay = tl.exp(-slope * BLOCK_C)
    state = tl.zeros([BLOCK_DK, BLOCK_DV], tl.float32)
    for start in range(0, seq_len, BLOCK_C):
        steps = start + offs_c
        in_t = steps < seq_len
        if REVERSE:
            offs_t = seq_len - 1 - steps
        else:
            offs_t = steps
        q = tl.load(
            Q + (row + offs_t[:, None]) * dim_k + offs_k[None, :],
            mask=in_t[:, None] & in_k[None, :],
            other=0.0,
        )
        k = tl.load(
            K + (row + offs_t[:, None]) * dim_k + offs_k[None, :],
            mask=in_t[:, None] & in_k[None, :],
            other=0.0,
        )
        v = tl.load(
            V + (row + offs_t[:, None]) * dim_v + offs_e[None, :],
            mask=in_t[:, None] & in_e[None, :],
            other=0.0,
        )
        scores = tl.dot(q, tl.trans(k), input_precision=PRECISION) * intra
        out = tl.dot(scores.to(v.dtype), v, input_precision=PRECISION)
        out += tl.dot(
            (q * q_decay[:, None]).to(q.dtype), state.to(q.dtype), input_precision=PRECISION
        )
        tl.store(
            O + (row + offs_t[:, None]) * dim_v + offs_e[None, :],
            out.to(O.dtype.element_ty),
            mask=in_t[:, None] & in_e[None, :],
        )
        # Rows past the end were loaded as zeros, so a short last chunk adds nothing wrong to the
        # state.
        state = state * chunk_decay + tl.dot(
            tl.trans((k * k_decay[:, None]).to(v.dtype)), v, input_precision=PRECISION
        )


def _launch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    slopes: torch.Tensor,
    block_c: int,
    reverse: bool = False,
) -> torch.Tensor:
    """(B, H, L, dk), (B, H, L, dk), (B, H, L, dv) -> (B, H, L, dv), the decayed causal sum
    (`reverse`: the anti-causal one, out_s = sum_{t>=s} lambda^(t-s) (q_s . k_t) v_t)."""
    batch, heads, seq_len, dim_k = q.shape
    dim_v = v.shape[-1]
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    out = torch.empty_like(v)
    block_dv = min(64, max(16, triton.next_power_of_2(dim_v)))
    grid = (batch * heads, cdiv(dim_v, block_dv))
    block_dk = max(16, triton.next_power_of_2(dim_k))
    with on_device(q.device):
        _decayed_causal[grid](
            q,
            k,
            v,
            out,
            slopes.contiguous(),
            seq_len,
            dim_k,
            dim_v,
            heads,
            BLOCK_C=block_c,
            BLOCK_DK=block_dk,
            BLOCK_DV=block_dv,
            PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
            REVERSE=reverse,
            num_stages=3 if q.element_size() * block_dk <= 256 else 2,
        )
    return out


class _LightningAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, slopes, block_c: int):
        ctx.save_for_backward(q, k, v, slopes)
        ctx.block_c = block_c
        return _launch(q, k, v, slopes, block_c)

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, slopes = ctx.saved_tensors
        block_c, grad_out = ctx.block_c, grad_out.contiguous()
        dq = _launch(grad_out, v, k, slopes, block_c)
        dk = _launch(v, grad_out, q, slopes, block_c, reverse=True)
        dv = _launch(k, q, grad_out, slopes, block_c, reverse=True)
        return dq, dk, dv, None, None


def lightning_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slopes: torch.Tensor, block_c: int = 64
) -> torch.Tensor:
    """Causal (B, H, L, d), (B, H, L, d), (B, H, L, e) -> (B, H, L, e) with lambda_h =
    exp(-slopes[h]); the slopes are fixed (no gradient), as in the mechanism."""
    if k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            f"q, k must be (B, H, L, d) and v (B, H, L, e); got {tuple(q.shape)}, {tuple(k.shape)},"
            f" {tuple(v.shape)}"
        )
    if block_c < 16 or block_c & (block_c - 1):
        # tl.arange needs a power of two, and a GPU's tl.dot a reduction dimension (here the chunk)
        # of at least 16.
        raise ValueError(f"block_c={block_c} must be a power of two >= 16")
    if slopes.shape != (q.shape[1],):
        raise ValueError(
            f"one slope per head expected, got shape {tuple(slopes.shape)} for {q.shape[1]} heads"
        )
    return _LightningAttention.apply(q, k, v, slopes.detach().float(), block_c)


def linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_c: int = 64
) -> torch.Tensor:
    """Causal elu+1 linear attention with its normaliser, as `linear_attention_chunked` computes
    it."""
    from attnbench.kernels.reference import EPS, feature_map, with_ones_column

    head_dim = v.shape[-1]
    zero = torch.zeros(q.shape[1], device=q.device)
    out = lightning_attention(feature_map(q), feature_map(k), with_ones_column(v), zero, block_c)
    return out[..., :head_dim] / (out[..., head_dim:] + EPS)
