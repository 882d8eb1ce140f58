"""Landmark Attention — "Landmark Attention: Random-Access Infinite Context Length for Transformers"
(Mohtashami and Jaggi, NeurIPS 2023, arXiv:2305.16300).

The context is cut into blocks of `block_size` tokens, each closed by a landmark, and a query
reaches a past block only through the block's landmark, so that at inference whole blocks can be
retrieved by their landmark alone. Grouped softmax: query t, in block b_t, takes one softmax over
the landmark scores of the past blocks together with the scores of its own block's tokens up to t.
What a landmark gets there is the gate of its block, shared among the block's tokens by a softmax
over them: a token j of a past block g gets softmax(landmarks, own)_g softmax_{j' in g}(q_t k_j')_j,
an own-block token gets its share of the first softmax directly, and the weights sum to 1. A
landmark's own value is never read. In eval mode each query keeps only the `top_k` past blocks with
the highest landmark scores (the paper's retrieval); with top_k at least the number of blocks that
is the training form.

Landmarks without new positions: the paper inserts a landmark token after each block, and by the
time that token reaches a layer its key summarises the block it closes. A (B, L, D) -> (B, L, D)
layer cannot insert tokens, so it computes that key from the block as such a token would read it: a
learned per-head landmark query u attends to the block's keys, k_g = sum_{j in g} softmax_j(u . k_j
/ sqrt(d)) k_j (u starts at zero, i.e. at the block's mean key). A landmark exists once its block is
complete and only queries of later blocks read it; a query's own block is attended directly, so the
layer is causal.

FLOPs (effective, the training form): every query reads all its past tokens, in its own block or
through a landmark's block, L (L + 1) / 2 keys at 4 D each; selection is scoring the t // block_size
landmarks of query t, 2 D each, and the landmark keys, 4 block_size D for each landmark some query
reads; plus the four projections. The reference computes the full L x L scores and masks, so
`flops_exact` is False.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import QKVProjection, check_heads, projection_flops


def grouped_softmax(
    scores: torch.Tensor, landmark_scores: torch.Tensor, block_size: int, top_k: int | None = None
) -> torch.Tensor:
    """Attention weights (B, H, L, L) from token scores (B, H, L, L) and the scores (B, H, L, m) of
    the landmarks of the m = L // block_size complete blocks; `top_k` keeps each query's best past
    blocks.
    """
    length, m = scores.shape[-1], landmark_scores.shape[-1]
    t = torch.arange(length, device=scores.device)
    block = t // block_size
    own = (block[:, None] == block[None, :]) & (t[:, None] >= t[None, :])
    usable = (
        torch.arange(m, device=scores.device)[None, :] < block[:, None]
    )  # complete past blocks only
    if top_k is not None:
        best = (
            landmark_scores.masked_fill(~usable, float("-inf")).topk(min(top_k, m), dim=-1).indices
        )
        usable = usable & torch.zeros_like(landmark_scores, dtype=torch.bool).scatter(
            -1, best, True
        )
    # finfo.min, not -inf: masked entries get exactly zero weight and no NaN reaches the gradients.
    low = torch.finfo(scores.dtype).min
    top = torch.softmax(
        torch.cat([landmark_scores.masked_fill(~usable, low), scores.masked_fill(~own, low)], -1),
        -1,
    )
    gates, direct = top.split([m, length], dim=-1)
    pad = -length % block_size
    within = torch.softmax(F.pad(scores, (0, pad)).unflatten(-1, (-1, block_size)), dim=-1)
    gates = F.pad(gates, (0, within.shape[-2] - m))  # the incomplete last block has no landmark
    through_landmarks = (within * gates.unsqueeze(-1)).flatten(-2)[..., :length]
    return direct + through_landmarks


class LandmarkAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        block_size: int = 50,
        top_k: int = 5,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if block_size < 1:
            raise ConfigError(f"block_size={block_size} must be a positive number of tokens")
        if top_k < 1:
            raise ConfigError(f"top_k={top_k} must be a positive number of blocks")
        if not causal:
            raise ConfigError(
                "landmark is causal only: a block's landmark is read once the block is complete"
            )
        self.block_size = block_size
        self.top_k = top_k
        self.proj = QKVProjection(dim, num_heads, bias)
        self.landmark_query = nn.Parameter(torch.zeros(num_heads, self.proj.head_dim))

    def landmark_keys(self, k: torch.Tensor) -> torch.Tensor:
        """(B, H, L, d) keys -> (B, H, m, d) landmark keys of the m complete blocks."""
        batch, heads, length, head_dim = k.shape
        m = length // self.block_size
        blocks = k[:, :, : m * self.block_size].reshape(batch, heads, m, self.block_size, head_dim)
        u = self.landmark_query[None, :, None, :, None]  # (1, H, 1, d, 1)
        read = torch.softmax((blocks @ u) / head_dim**0.5, dim=-2)  # (B, H, m, block_size, 1)
        return (read.transpose(-1, -2) @ blocks).squeeze(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj.split(x)
        scale = q.shape[-1] ** -0.5
        scores = q @ k.transpose(-1, -2) * scale
        landmark_scores = q @ self.landmark_keys(k).transpose(-1, -2) * scale
        # Training reads every past block through its landmark; inference retrieves the top-k
        # blocks.
        weights = grouped_softmax(
            scores, landmark_scores, self.block_size, None if self.training else self.top_k
        )
        return self.proj.merge(weights @ v)


def landmarks_scored(seq_len: int, block_size: int) -> int:
    """Sum over queries t < L of t // block_size, the complete past blocks each one sees."""
    full, rest = divmod(seq_len, block_size)
    return block_size * full * (full - 1) // 2 + rest * full


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    block_size: int = 50,
    top_k: int = 5,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    landmarks = (seq_len - 1) // block_size  # blocks that some later query reads
    scored = landmarks_scored(seq_len, block_size)
    return FlopBreakdown(
        attention=4 * batch * dim * (seq_len * (seq_len + 1) // 2),
        selection=2 * batch * dim * (scored + 2 * landmarks * block_size),
        projections=projection_flops(batch, seq_len, dim),
    )


def cache(
    seq_len: int,
    dim: int,
    bytes_per_element: int = 2,
    block_size: int = 50,
    top_k: int = 5,
    **_: object,
) -> CacheCost:
    """Inference with retrieval: every key and value plus one landmark key per complete block are
    kept; the next token reads the landmark keys, its top-k blocks and the tokens of its own,
    unfinished block.
    """
    m = seq_len // block_size
    stored = (2 * seq_len + m) * dim * bytes_per_element
    read = (
        (2 * (min(top_k, m) * block_size + seq_len - m * block_size) + m) * dim * bytes_per_element
    )
    return CacheCost(kv_stored=stored, kv_read_per_token=read)


def build(dim: int, causal: bool = True, **hparams: object) -> LandmarkAttention:
    return LandmarkAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="landmark",
    kind="sequence",
    description=(
        "Grouped softmax: past blocks are reached through learned landmark keys; top-k retrieval at"
        " inference."
    ),
    paper=(
        "Mohtashami and Jaggi, Landmark Attention: Random-Access Infinite Context Length for"
        " Transformers, NeurIPS 2023, arXiv:2305.16300"
    ),
    build=build,
    flops=flops,
    flops_exact=False,
    cache=cache,
    supports_bidirectional=False,
    # The official code: a landmark every 50 tokens (mem_freq), 5 blocks retrieved at inference
    # (top_k in llama/run_test.py).
    defaults={"num_heads": 8, "block_size": 50, "top_k": 5},
    # At 32 tokens: 8 blocks of 4, so a late query reaches up to 7 past blocks and retrieves 2 at
    # inference.
    profile_defaults={"smoke": {"block_size": 4, "top_k": 2}},
)
