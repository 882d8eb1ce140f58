"""The FlexAttention baseline: the kernel's pattern as a BlockMask plus the whole pair rule as a
mask_mod.

FlexAttention's default kernels on Hopper tile by 128 (its backward's only default configuration for
head width 128 needs query and key blocks divisible by 128), so on a GPU the kernel's tile mask is
coarsened to blocks of `FLEX_BLOCK`: a block is listed when any of its tiles is, and is "full" (no
mask_mod, FlexAttention's fast path) only when every pair in it is allowed. The mask_mod always
states the whole rule, so the output is the same attention whatever the granularity; FlexAttention
without torch.compile (the CPU test path) reads only the mask_mod.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from attnbench.kernels.layout import BlockLayout, cdiv
from attnbench.suites.kernels.contenders import Contender, Shape

FLEX_BLOCK = 128


def _lists(blocks: torch.Tensor, batch: int, heads: int) -> list[torch.Tensor]:
    """(B|1, H|1, n_q, n_k) bool -> FlexAttention's (counts, indices), full-width and per (batch,
    head)."""
    counts = blocks.sum(-1, dtype=torch.int32)
    order = torch.sort(blocks.to(torch.int8), dim=-1, descending=True, stable=True).indices.to(
        torch.int32
    )
    return [
        counts.expand(batch, heads, -1).contiguous(),
        order.expand(batch, heads, -1, -1).contiguous(),
    ]


def flex_block_mask(
    layout: BlockLayout,
    tiles: torch.Tensor,
    counts: torch.Tensor,
    mask_mod: Callable,
    shape: Shape,
    block: int,
):
    """The BlockMask of blocks of `block` (a multiple of the kernel's tiles) holding the visited
    `tiles`, whose allowed pairs are `counts`."""
    from torch.nn.attention.flex_attention import BlockMask

    if block % layout.block_m or block % layout.block_n:
        raise ValueError(
            f"FlexAttention blocks of {block} must hold whole {layout.block_m}x{layout.block_n}"
            " tiles"
        )
    n = cdiv(shape.seq_len, block)
    lead = layout.kv_counts.shape[:2]
    b, h, m, k = tiles.unbind(1)
    where = (b, h, m // (block // layout.block_m), k // (block // layout.block_n))
    listed = torch.zeros(*lead, n, n, dtype=torch.bool, device=tiles.device)
    listed[where] = True
    allowed = torch.zeros(*lead, n, n, dtype=torch.long, device=tiles.device)
    allowed.index_put_(where, counts, accumulate=True)
    sizes = (shape.seq_len - torch.arange(n, device=tiles.device) * block).clamp(max=block)
    full = listed & (allowed == sizes[:, None] * sizes[None, :])
    return BlockMask.from_kv_blocks(
        *_lists(listed & ~full, shape.batch, shape.heads),
        *_lists(full, shape.batch, shape.heads),
        BLOCK_SIZE=(block, block),
        mask_mod=mask_mod,
        seq_lengths=(shape.seq_len, shape.seq_len),
    )


def flex_contender(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_mask,
    key_bias: torch.Tensor | None,
    flops: float,
) -> Contender:
    """FlexAttention compiled on a GPU; eager, forward only, on a CPU (it refuses inputs that
    require grad there). A key bias, if any, is added to every score by a score_mod."""
    from torch.nn.attention.flex_attention import flex_attention

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + bias[b, h, kv_idx]

    if q.is_cuda:
        bias = key_bias
        # Every cell compiles flex_attention anew (its length, its mask_mod and score_mod closures,
        # grad mode on and off), all against the one code object; past dynamo's recompile limit (8)
        # it would silently run FlexAttention eagerly, which materialises the L x L scores: the
        # baseline's figures would be wrong. (cache_size_limit: the name torch >= 2.4 all take; 2.6
        # renamed it recompile_limit and kept this alias.)
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 1000)
        attend = torch.compile(flex_attention, dynamic=False)
        return Contender(
            "flex",
            lambda: attend(
                q, k, v, score_mod=score_mod if bias is not None else None, block_mask=block_mask
            ),
            (q, k, v),
            flops,
        )
    fq, fk, fv = q.detach(), k.detach(), v.detach()
    bias = key_bias.detach() if key_bias is not None else None

    def eager() -> torch.Tensor:
        with (
            warnings.catch_warnings()
        ):  # "called without torch.compile": on a CPU that is the point
            warnings.simplefilter("ignore", UserWarning)
            return flex_attention(
                fq, fk, fv, score_mod=score_mod if bias is not None else None, block_mask=block_mask
            )

    return Contender("flex", eager, (), flops)
