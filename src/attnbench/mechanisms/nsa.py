"""Native Sparse Attention — "Native Sparse Attention: Hardware-Aligned and Natively Trainable
Sparse Attention" (Yuan, Gao, Dai et al., DeepSeek-AI and Peking University, 2025,
arXiv:2502.11089).

NSA reads the past three ways at once and lets each query mix them: o_t = sum_c g_t^c Attn(q_t,
K_t^c, V_t^c), c in {cmp, slc, win}, with per-head gates g_t^c = sigmoid(W_g x_t) learned from the
input. Compression: the keys (values) of each block of `compress_block` l tokens, taken every
`compress_stride` d tokens, are mapped to one key (value) by a learned linear phi; query t reads the
summaries of the blocks complete at t (i d + l - 1 <= t), so a summary is never seen before its
block ends. Selection: the compressed attention probabilities p_cmp rank the blocks of
`select_block` l' tokens, and query t attends in full to the tokens (up to t) of its top
`num_selected` n blocks, its own block always among them. Eq. 9 of the paper sums p_cmp over
sub-blocks of d tokens, which weights a compression block by the tokens it shares with the selection
block (its index offset aside); we write that as an overlap matrix, which needs no divisibility
between l, d and l'. Window: the last `window` w tokens. As in fla's layer the three branches share
one set of keys and values (the paper gives each its own); a per-head selection is the paper's
GQA-group selection with one head per group.

FLOPs (effective, what a block-sparse kernel does): query t reads c_t = #{i : i d + l <= t + 1}
summaries, s_t = (t - j_t l' + 1) + l' min(n - 1, j_t) selected keys (j_t = t // l') and min(w, t +
1) window keys, 4 D FLOPs each; selection is phi, 4 l d_h D per summary (d_h the head width), the
gates, 6 H D per token, and the importance mapping, 2 H per (visible summary, overlapped block)
pair; plus the four projections. The reference instead runs every branch densely over L keys and
masks, so `flops_exact` is False.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import (
    QKVProjection,
    check_heads,
    projection_flops,
    window_mask_mod,
)


def num_summaries(length: int, compress_block: int, compress_stride: int) -> int:
    """Compression blocks [i d, i d + l) that lie inside the first `length` tokens."""
    return (length - compress_block) // compress_stride + 1 if length >= compress_block else 0


def block_overlap(
    length: int,
    compress_block: int,
    compress_stride: int,
    select_block: int,
    device: torch.device | None = None,
) -> torch.Tensor:
    """(m, ceil(L / l')) long: tokens that compression block i shares with selection block j."""
    starts = (
        torch.arange(num_summaries(length, compress_block, compress_stride), device=device)
        * compress_stride
    )
    select_starts = torch.arange(-(-length // select_block), device=device) * select_block
    low = torch.maximum(starts[:, None], select_starts[None, :])
    high = torch.minimum(starts[:, None] + compress_block, select_starts[None, :] + select_block)
    return (high - low).clamp(min=0)


def select_blocks(
    p_cmp: torch.Tensor,
    compress_block: int,
    compress_stride: int,
    select_block: int,
    num_selected: int,
) -> torch.Tensor:
    """(B, H, L, ceil(L / l')) bool: each query's top-n selection blocks, its own always, no
    future one."""
    length = p_cmp.shape[2]
    overlap = block_overlap(length, compress_block, compress_stride, select_block, p_cmp.device)
    importance = p_cmp @ overlap.to(p_cmp.dtype)
    own = torch.arange(length, device=p_cmp.device)[:, None] // select_block
    block = torch.arange(importance.shape[-1], device=p_cmp.device)[None, :]
    importance = importance.masked_fill(block > own, float("-inf")).masked_fill(
        block == own, float("inf")
    )
    chosen = importance.topk(min(num_selected, importance.shape[-1]), dim=-1).indices
    return torch.zeros_like(importance, dtype=torch.bool).scatter(-1, chosen, True) & (block <= own)


class NativeSparseAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        compress_block: int = 32,
        compress_stride: int = 16,
        select_block: int = 64,
        num_selected: int = 16,
        window: int = 512,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (
            ("compress_block", compress_block),
            ("select_block", select_block),
            ("num_selected", num_selected),
            ("window", window),
        ):
            if value < 1:
                raise ConfigError(f"{name}={value} must be a positive integer")
        if not 1 <= compress_stride <= compress_block:
            raise ConfigError(
                f"compress_stride={compress_stride} must be in 1..compress_block={compress_block}, "
                "or tokens between blocks are never summarised"
            )
        if not causal:
            raise ConfigError(
                "nsa is causal only: a block summary is read once its block is complete"
            )
        self.compress_block, self.compress_stride = compress_block, compress_stride
        self.select_block, self.num_selected, self.window = select_block, num_selected, window
        self.window_mask_mod = window_mask_mod(window, causal=True)
        self.proj = QKVProjection(dim, num_heads, bias)
        head_dim = self.proj.head_dim
        # phi, the paper's MLP with intra-block position encoding, as one linear map of the
        # flattened block: it weighs each key by its place in the block. Over all blocks that is a
        # convolution of kernel l and stride d; two groups keep keys and values apart.
        self.compress = nn.Conv1d(
            2 * head_dim, 2 * head_dim, compress_block, compress_stride, groups=2, bias=bias
        )
        self.gate = nn.Linear(dim, 3 * num_heads, bias=bias)

    def summaries(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H, L, d_h) keys and values -> (B, H, m, d_h) compressed keys and values."""
        batch, heads, length, head_dim = k.shape
        if length < self.compress_block:
            return k.new_zeros(batch, heads, 0, head_dim), v.new_zeros(batch, heads, 0, head_dim)
        kv = torch.cat([k, v], dim=-1).flatten(0, 1).transpose(1, 2)  # (B H, 2 d_h, L)
        out = self.compress(kv).transpose(1, 2).view(batch, heads, -1, 2 * head_dim)
        return out[..., :head_dim], out[..., head_dim:]

    def branches(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
        """The three branch outputs, (B, H, L, d_h) each, and the selected blocks (B, H, L,
        ceil(L / l'))."""
        length, head_dim = q.shape[2], q.shape[3]
        t = torch.arange(length, device=q.device)
        summary_end = (
            torch.arange(
                num_summaries(length, self.compress_block, self.compress_stride), device=q.device
            )
            * self.compress_stride
            + self.compress_block
            - 1
        )
        visible = summary_end[None, :] <= t[:, None]
        k_cmp, v_cmp = self.summaries(k, v)
        scores = q @ k_cmp.transpose(-1, -2) / head_dim**0.5
        # finfo.min, not -inf: a query with no complete block yet gets a zero row, not NaN.
        p_cmp = (
            torch.softmax(scores.masked_fill(~visible, torch.finfo(scores.dtype).min), dim=-1)
            * visible
        )
        o_cmp = p_cmp @ v_cmp

        chosen = select_blocks(
            p_cmp, self.compress_block, self.compress_stride, self.select_block, self.num_selected
        )
        tokens = chosen.repeat_interleave(self.select_block, dim=-1)[..., :length] & (
            t[:, None] >= t[None, :]
        )
        o_slc = F.scaled_dot_product_attention(q, k, v, attn_mask=tokens)
        in_window = self.window_mask_mod(None, None, t[:, None], t[None, :])
        o_win = F.scaled_dot_product_attention(q, k, v, attn_mask=in_window)
        return (o_cmp, o_slc, o_win), chosen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = self.proj.split(x)
        gates = (
            torch.sigmoid(self.gate(x))
            .view(batch, length, 3, self.proj.num_heads)
            .permute(2, 0, 3, 1)
        )
        outputs, _ = self.branches(q, k, v)
        return self.proj.merge(sum(g.unsqueeze(-1) * o for g, o in zip(gates, outputs)))


def keys_read(
    seq_len: int,
    compress_block: int,
    compress_stride: int,
    select_block: int,
    num_selected: int,
    window: int,
) -> tuple[int, int, int, int]:
    """Summed over queries: (summaries read, summary-to-block overlaps mapped, selected keys,
    window keys)."""
    summaries = mapped = 0
    overlaps = (
        (block_overlap(seq_len, compress_block, compress_stride, select_block) > 0).sum(-1).tolist()
    )
    for i, blocks in enumerate(overlaps):
        readers = seq_len - (
            i * compress_stride + compress_block - 1
        )  # queries t >= the block's last token
        summaries += readers
        mapped += readers * blocks
    selected = 0
    for j in range(-(-seq_len // select_block)):
        size = min(select_block, seq_len - j * select_block)  # queries in block j
        selected += size * (size + 1) // 2 + size * min(num_selected - 1, j) * select_block
    w = min(window, seq_len)
    return summaries, mapped, selected, w * (w + 1) // 2 + (seq_len - w) * w


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    compress_block: int = 32,
    compress_stride: int = 16,
    select_block: int = 64,
    num_selected: int = 16,
    window: int = 512,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    head_dim = check_heads(dim, num_heads)
    summaries, mapped, selected, windowed = keys_read(
        seq_len, compress_block, compress_stride, select_block, num_selected, window
    )
    phi = (
        4
        * num_summaries(seq_len, compress_block, compress_stride)
        * compress_block
        * head_dim
        * dim
    )
    gates = 6 * seq_len * num_heads * dim
    return FlopBreakdown(
        attention=4 * batch * dim * (summaries + selected + windowed),
        selection=batch * (phi + gates + 2 * num_heads * mapped),
        projections=projection_flops(batch, seq_len, dim),
    )


def cache(
    seq_len: int,
    dim: int,
    bytes_per_element: int = 2,
    compress_block: int = 32,
    compress_stride: int = 16,
    select_block: int = 64,
    num_selected: int = 16,
    window: int = 512,
    **_: object,
) -> CacheCost:
    """Every key and value plus the compressed ones are kept; the next token reads all the
    summaries, its n selected blocks and its window."""
    m = num_summaries(seq_len, compress_block, compress_stride)
    stored = 2 * (seq_len + m) * dim * bytes_per_element
    read = (
        2
        * (m + min(num_selected * select_block, seq_len) + min(window, seq_len))
        * dim
        * bytes_per_element
    )
    return CacheCost(kv_stored=stored, kv_read_per_token=read)


def build(dim: int, causal: bool = True, **hparams: object) -> NativeSparseAttention:
    return NativeSparseAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="nsa",
    kind="sequence",
    description=(
        "Gated sum of attention to block summaries, to the top-n blocks they rank, and to a window."
    ),
    paper=(
        "Yuan et al., Native Sparse Attention: Hardware-Aligned and Natively Trainable Sparse"
        " Attention, ACL 2025, arXiv:2502.11089"
    ),
    build=build,
    flops=flops,
    flops_exact=False,
    cache=cache,
    supports_bidirectional=False,
    # The paper's Section 4.1: l = 32, d = 16, l' = 64, n = 16, w = 512.
    defaults={
        "num_heads": 8,
        "compress_block": 32,
        "compress_stride": 16,
        "select_block": 64,
        "num_selected": 16,
        "window": 512,
    },
    # At 32 tokens: 8 summaries, 4 selection blocks of which a late query keeps its own and the best
    # past one, and a window of a quarter of the context. The summaries do not overlap (d = l, as in
    # fla's layer): the paper's d = l / 2 doubles phi, which at this size costs as much as the
    # projections.
    profile_defaults={
        "smoke": {
            "compress_block": 4,
            "compress_stride": 4,
            "select_block": 8,
            "num_selected": 2,
            "window": 8,
        }
    },
)
