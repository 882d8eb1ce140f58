"""Mixture of Block Attention — "MoBA: Mixture of Block Attention for Long-Context LLMs" (Lu, Jiang,
Liu, Du et al., Moonshot AI, 2025, arXiv:2502.13189), with the key convolution of "Optimizing
Mixture of Block Attention" (Xiao, Guo, Mazaheri and Han, 2025, arXiv:2511.11571).

MoBA treats blocks of context as the experts of a mixture: the keys are cut into blocks of
`block_size` Bk tokens, and each query routes itself to the `top_k` k blocks whose centroid, the
mean of the block's keys, has the largest affinity q . mean(K_block), then attends with one softmax
over the union of their tokens. The gate has no parameters and no gradient: it only picks blocks. As
in the official moba_naive.py, the query's own block is always one of the k (its score is +inf) and
read with a causal mask, and a future block is never one (-inf), so k counts the own block and k >=
ceil(L / Bk) is causal attention. Every past block is complete, so a centroid is only read once all
its keys exist. FlashMoBA argues for small blocks and a short depth-wise causal convolution over the
keys, which clusters related keys inside a block and sharpens the centroids: `key_conv` is its
kernel size (0, the default, is plain MoBA); the convolved keys serve routing and attention.

FLOPs (effective, what a block-sparse kernel does): query t, in block j_t = t // Bk, reads (t - j_t
Bk + 1) + Bk min(k - 1, j_t) keys, 4 D each, at most 4 B L (k Bk) D in all; routing scores every
query against the n = ceil(L / Bk) centroids, 2 B L n D, and the key convolution adds 2 B L D
key_conv; plus the four projections. The reference instead masks a dense L x L attention, so
`flops_exact` is False.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.kernels.dispatch import use_kernel
from attnbench.kernels.reference import select_blocks
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import QKVProjection, check_heads, projection_flops


def token_mask(chosen: torch.Tensor, block_size: int) -> torch.Tensor:
    """(B, H, L, n) chosen blocks -> (B, H, L, L) keys each query reads, causal inside its own
    block."""
    length = chosen.shape[2]
    t = torch.arange(length, device=chosen.device)
    return chosen.repeat_interleave(block_size, dim=-1)[..., :length] & (t[:, None] >= t[None, :])


class MixtureOfBlockAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        block_size: int = 512,
        top_k: int = 3,
        key_conv: int = 0,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if block_size < 1:
            raise ConfigError(f"block_size={block_size} must be a positive number of tokens")
        if top_k < 1:
            raise ConfigError(f"top_k={top_k} must be >= 1 (it counts the query's own block)")
        if key_conv < 0:
            raise ConfigError(
                f"key_conv={key_conv} must be a kernel size >= 1, or 0 for no key convolution"
            )
        if not causal:
            raise ConfigError(
                "moba is causal only: a query's own block is read causally and future blocks never"
            )
        self.block_size, self.top_k = block_size, top_k
        self.proj = QKVProjection(dim, num_heads, bias)
        # Depth-wise over the D key channels; left padding of key_conv - 1 keeps it causal.
        self.key_conv = nn.Conv1d(dim, dim, key_conv, groups=dim, bias=False) if key_conv else None

    def convolve_keys(self, k: torch.Tensor) -> torch.Tensor:
        batch, heads, length, head_dim = k.shape
        channels = k.transpose(2, 3).reshape(batch, heads * head_dim, length)
        out = self.key_conv(F.pad(channels, (self.key_conv.kernel_size[0] - 1, 0)))
        return out.view(batch, heads, head_dim, length).transpose(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj.split(x)
        if self.key_conv is not None:
            k = self.convolve_keys(k)
        if use_kernel(
            "moba", q
        ):  # kernels/sparse_patterns.py: the same routing, block-sparse attention
            from attnbench.kernels.sparse_patterns import moba_attention

            return self.proj.merge(moba_attention(q, k, v, self.block_size, self.top_k))
        mask = token_mask(select_blocks(q, k, self.block_size, self.top_k), self.block_size)
        return self.proj.merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def keys_read(seq_len: int, block_size: int, top_k: int) -> int:
    """Keys read, summed over queries: the causal part of the own block plus min(k - 1, j) past
    blocks."""
    total = 0
    for j in range(-(-seq_len // block_size)):
        size = min(block_size, seq_len - j * block_size)  # queries in block j
        total += size * (size + 1) // 2 + size * min(top_k - 1, j) * block_size
    return total


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    block_size: int = 512,
    top_k: int = 3,
    key_conv: int = 0,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    routing = (
        2 * batch * seq_len * -(-seq_len // block_size) * dim + 2 * batch * seq_len * dim * key_conv
    )
    return FlopBreakdown(
        attention=4 * batch * dim * keys_read(seq_len, block_size, top_k),
        selection=routing,
        projections=projection_flops(batch, seq_len, dim),
    )


def cache(
    seq_len: int,
    dim: int,
    bytes_per_element: int = 2,
    block_size: int = 512,
    top_k: int = 3,
    key_conv: int = 0,
    **_: object,
) -> CacheCost:
    """Every key and value plus one centroid per complete block are kept; the next token reads all
    the centroids, its k - 1 chosen past blocks and the tokens of its own, unfinished block. The key
    convolution carries the last key_conv - 1 unconvolved keys as state."""
    m = seq_len // block_size  # complete blocks, each a candidate for the next token
    stored = (2 * seq_len + m) * dim * bytes_per_element
    read = (
        (2 * (min(top_k - 1, m) * block_size + seq_len - m * block_size) + m)
        * dim
        * bytes_per_element
    )
    return CacheCost(
        kv_stored=stored,
        kv_read_per_token=read,
        state=max(key_conv - 1, 0) * dim * bytes_per_element,
    )


def build(dim: int, causal: bool = True, **hparams: object) -> MixtureOfBlockAttention:
    return MixtureOfBlockAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="moba",
    kind="sequence",
    description=(
        "Each query attends to its own block and the top-k past blocks by q . mean block key."
    ),
    paper="Lu et al., MoBA: Mixture of Block Attention for Long-Context LLMs, arXiv:2502.13189",
    build=build,
    flops=flops,
    flops_exact=False,
    cache=cache,
    supports_bidirectional=False,
    # The paper's scaling-law runs: blocks of 512, top-k 3 (81.25% sparse at 8K, 95.31% at 32K).
    defaults={"num_heads": 8, "block_size": 512, "top_k": 3, "key_conv": 0},
    # At 32 tokens: 4 blocks of 8, so a late query keeps its own block and the best of up to 3 past
    # ones.
    profile_defaults={"smoke": {"block_size": 8, "top_k": 2}},
)
