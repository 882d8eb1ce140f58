"""What one benchmark cell times: a mechanism's kernel and the baselines doing the same attention.

Each mechanism becomes a `Workload`: random (B, H, L, d) inputs, the kernel call, dense causal SDPA
(flash backend on CUDA) and, for the sparse patterns, FlexAttention with the equivalent block mask
(flex.py). Effective FLOPs count allowed pairs (pairs.py): 4 d per pair forward (Q K^T and P V), 2.5
times that backward (contenders.py).

The `moba` workload routes at block granularity, as block-sparse MoBA kernels (and FlexAttention's
block masks) do: a query tile of Bk queries is one router input (its mean query against each past
block's mean key), reads its own block causally and its top-k - 1 past blocks whole, so its pairs
are exactly `mechanisms.moba.keys_read(L, Bk, k)`. The per-query routing of the mechanism itself
runs through the same kernel with per-query rules (kernels/sparse_patterns.py); its cost depends on
how much neighbouring queries agree, which random inputs do not model.
"""

from __future__ import annotations

from typing import Any

import torch

from attnbench.errors import ConfigError
from attnbench.kernels.block_sparse import TokenRules, block_sparse_attention
from attnbench.kernels.layout import BlockLayout, cdiv, window_tiles
from attnbench.suites.kernels.contenders import Contender, Shape, Workload
from attnbench.suites.kernels.flex import FLEX_BLOCK, flex_block_mask, flex_contender
from attnbench.suites.kernels.pairs import allowed_pairs_per_tile, causal_pairs

SPARSE = ("moba", "sliding_window", "dma")
LINEAR = ("lightning", "linear")
MECHANISMS = SPARSE + LINEAR


def _inputs(shape: Shape, count: int = 3) -> list[torch.Tensor]:
    size = (shape.batch, shape.heads, shape.seq_len, shape.head_dim)
    return [
        torch.randn(size, device=shape.device, dtype=shape.dtype).requires_grad_()
        for _ in range(count)
    ]


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, shape: Shape) -> Contender:
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def run() -> torch.Tensor:
        if q.is_cuda:
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    pairs = shape.batch * shape.heads * causal_pairs(shape.seq_len)
    return Contender("sdpa", run, (q, k, v), 4.0 * shape.head_dim * pairs)


def block_routing(q: torch.Tensor, k: torch.Tensor, block: int, top_k: int) -> torch.Tensor:
    """(B, H, n, n) tiles: each query block's own block and its top-k - 1 past blocks by mean q .
    mean k."""
    from attnbench.kernels.reference import block_centroids

    n = cdiv(q.shape[2], block)
    with torch.no_grad():
        gate = block_centroids(q.float(), block) @ block_centroids(k.float(), block).transpose(
            -1, -2
        )
        own = torch.arange(n, device=q.device)
        past = own[None, :] < own[:, None]
        gate = gate.masked_fill(~past, float("-inf")).masked_fill(
            own[:, None] == own[None, :], float("inf")
        )
        chosen = gate.topk(min(top_k, n), dim=-1).indices
        tiles = torch.zeros_like(gate, dtype=torch.bool).scatter_(-1, chosen, True)
    return tiles & (own[None, :] <= own[:, None])


def sparse_workload(
    mechanism: str, hparams: dict[str, Any], shape: Shape, flex_block: int | None = None
) -> Workload:
    """`flex_block`: FlexAttention's block (default: what its GPU kernels need, or the tile on a
    CPU)."""
    from attnbench.kernels.sparse_patterns import dma_thresholds

    q, k, v = _inputs(shape)
    L, tile = shape.seq_len, shape.tile
    key_bias = None
    if mechanism == "moba":
        block = int(hparams["block_size"])
        if block < 16 and q.is_cuda or block & (block - 1):
            raise ConfigError(
                f"the moba benchmark routes whole tiles, so block_size={block} must be a power of"
                " two (at least 16 on a GPU)"
            )
        tile = block
        rules = TokenRules(causal=True)
        tiles_mask = block_routing(q, k, block, int(hparams["top_k"]))

        def mask_mod(
            b, h, q_idx, kv_idx
        ):  # the whole rule: FlexAttention's eager path reads no block lists
            return tiles_mask[b, h, q_idx // block, kv_idx // block] & (q_idx >= kv_idx)

    elif mechanism == "sliding_window":
        from attnbench.mechanisms.sliding_window import window_mask_mod

        rules = TokenRules(causal=True, window=int(hparams["window"]))
        tiles_mask = window_tiles(L, rules.window, True, tile, tile, q.device)
        mask_mod = window_mask_mod(rules.window, True)
    elif mechanism == "dma":
        from attnbench.kernels.layout import threshold_tiles

        key_bias = torch.randn(shape.batch, shape.heads, L, device=shape.device, dtype=shape.dtype)
        thresholds = dma_thresholds(key_bias.float(), int(hparams["window"]), True)
        rules = TokenRules(causal=True, thresholds=thresholds)
        tiles_mask = threshold_tiles(key_bias.float(), thresholds, True, tile, tile)
        scores = (
            key_bias.detach().float()
        )  # the mask needs no gradient (and FlexAttention allows none)
        key_bias.requires_grad_()

        def mask_mod(b, h, q_idx, kv_idx):
            return (q_idx >= kv_idx) & (scores[b, h, kv_idx] >= thresholds[b, h, q_idx])

    else:
        raise ConfigError(
            f"no block-sparse workload for mechanism {mechanism!r} (have {', '.join(SPARSE)})"
        )
    layout = BlockLayout.from_mask(tiles_mask, L, tile, tile)
    tiles, counts = allowed_pairs_per_tile(
        layout, rules, key_bias.detach() if key_bias is not None else None
    )
    shared = shape.batch * shape.heads // (layout.kv_counts.shape[0] * layout.kv_counts.shape[1])
    pairs = float(counts.sum()) * shared
    kernel_inputs = (q, k, v) if key_bias is None else (q, k, v, key_bias)
    kernel = Contender(
        "kernel",
        lambda: block_sparse_attention(q, k, v, layout, rules, key_bias),
        kernel_inputs,
        4.0 * shape.head_dim * pairs,
    )
    flex_block = flex_block or (FLEX_BLOCK if q.is_cuda else tile)
    block_mask = flex_block_mask(layout, tiles, counts, mask_mod, shape, flex_block)
    flex = flex_contender(q, k, v, block_mask, key_bias, 4.0 * shape.head_dim * pairs)
    visited = layout.tiles_visited * shared
    causal_tiles = shape.batch * shape.heads * int(window_tiles(L, 0, True, tile, tile).sum())
    details = {
        "tile": tile,
        "flex_block": flex_block,
        "pairs": pairs,
        "tiles_visited": visited,
        "tile_density": visited / causal_tiles,
    }
    return Workload(
        mechanism,
        [kernel, _sdpa(q, k, v, shape), flex],
        pairs / (shape.batch * shape.heads * causal_pairs(L)),
        details,
        block_mask,
    )


def linear_workload(mechanism: str, hparams: dict[str, Any], shape: Shape) -> Workload:
    from attnbench.kernels.lightning import lightning_attention, linear_attention
    from attnbench.mechanisms import lightning

    q, k, v = _inputs(shape)
    dim = shape.heads * shape.head_dim
    if mechanism == "lightning":
        slopes = lightning.alibi_slopes(shape.heads).to(shape.device)
        run = lambda: lightning_attention(q, k, v, slopes, shape.tile)  # noqa: E731
        cost = lightning.flops(
            shape.batch, shape.seq_len, dim, shape.heads, shape.tile, output_gate=False
        )
    elif mechanism == "linear":
        run = lambda: linear_attention(q, k, v, shape.tile)  # noqa: E731
        cost = lightning.flops(
            shape.batch,
            shape.seq_len,
            dim,
            shape.heads,
            shape.tile,
            feature="elu1",
            normalize=True,
            output_gate=False,
        )
    else:
        raise ConfigError(
            f"no linear-attention workload for mechanism {mechanism!r} (have {', '.join(LINEAR)})"
        )
    # The backward pass is three forward-sized passes (dQ, dK, dV), not FlashAttention's 2.5.
    kernel = Contender("kernel", run, (q, k, v), float(cost.attention), backward_factor=3.0)
    return Workload(
        mechanism,
        [kernel, _sdpa(q, k, v, shape)],
        float("nan"),
        {"tile": shape.tile, "flex": "not applicable: FlexAttention has no linear-attention form"},
    )


def build_workload(mechanism: str, hparams: dict[str, Any], shape: Shape) -> Workload:
    if mechanism in SPARSE:
        return sparse_workload(mechanism, hparams, shape)
    return linear_workload(mechanism, hparams, shape)
