"""Hierarchical Chunk Attention Memory — "Towards mental time travel: a hierarchical memory for
reinforcement learning agents" (Lampinen, Chan, Banino and Hill, NeurIPS 2021, arXiv:2105.14039).

HCAM recalls the past in detail without attending to all of it. The past is cut into chunks of
`chunk_size` c tokens; each chunk's summary is the mean of its tokens, so its summary key is the
mean of its keys, W_K(mean x). A query first attends coarsely to the summaries, relevance
r_i = q . W_K(sg(summary_i)) / sqrt(D) (sg = stop-gradient on the summary, as in the official code:
W_K still learns through r), keeps the `top_k` chunks, and weights them by a softmax over those k
relevances; it then attends in detail (softmax attention, per head) inside each chosen chunk and
returns the relevance-weighted sum. Only complete past chunks are eligible, so it is causal. The
current chunk, which has no summary yet, is read by local causal attention, and the two readouts
are summed, as the paper's agent adds local attention and the HCAM readout to its residual stream.
The official code adds sinusoid positions inside memory chunks because its memories carry none;
here tokens already carry the model's positions, so none are added.

FLOPs (effective, what a causal kernel does): query t in chunk i scores the i eligible summaries
(2 D each) and reads min(k, i) c detail keys plus t - i c + 1 local keys (4 D each); the summary
keys cost 2 D^2 per summary read; plus the four projections. The reference instead reads every
complete chunk in detail, L x floor(L / c) c keys, scores future summaries before masking them and
pads the last local chunk, so `flops_exact` is False.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import QKVProjection, check_heads, projection_flops


def local_chunk_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk_size: int
) -> torch.Tensor:
    """Causal attention inside each chunk, on (B, H, L, d); padding after the end is never read."""
    batch, heads, length, head_dim = q.shape
    n_chunks = -(-length // chunk_size)
    pad = n_chunks * chunk_size - length
    q, k, v = (
        F.pad(t, (0, 0, 0, pad)).view(batch, heads, n_chunks, chunk_size, head_dim)
        for t in (q, k, v)
    )
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return out.reshape(batch, heads, n_chunks * chunk_size, head_dim)[:, :, :length]


def hierarchical_readout(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    summary_keys: torch.Tensor,
    chunk_size: int,
    top_k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k chunk recall for (B, H, L, d) queries over the m = summary_keys.shape[2] complete
    chunks.

    Returns the readout (B, H, L, d) and the relevance weights (B, L, m): a softmax over each
    query's top-k eligible chunks, zero elsewhere (and zero everywhere before the first chunk ends).
    """
    batch, heads, length, head_dim = q.shape
    m = summary_keys.shape[2]
    # Coarse attention over the whole width: the heads' dot products summed, scaled by sqrt(D).
    relevance = (q @ summary_keys.transpose(-1, -2)).sum(1) / (heads * head_dim) ** 0.5  # (B, L, m)
    query_chunk = torch.arange(length, device=q.device) // chunk_size
    eligible = query_chunk[:, None] > torch.arange(m, device=q.device)[None, :]
    top, chosen = relevance.masked_fill(~eligible, float("-inf")).topk(min(top_k, m), dim=-1)
    valid = top.isfinite()  # a query with fewer eligible chunks than k leaves slots empty
    top_weights = torch.softmax(top.masked_fill(~valid, torch.finfo(top.dtype).min), dim=-1) * valid
    weights = torch.zeros_like(relevance).scatter(-1, chosen, top_weights)

    # Detail: softmax attention inside every chunk, each scaled by its chunk's relevance weight, so
    # the readout sum_i w_i Attn(q, chunk_i) is one product with the values. The weights, zero off
    # the top-k, drop the other chunks; a kernel would read only the chosen ones.
    k_chunks, v_chunks = k[:, :, : m * chunk_size], v[:, :, : m * chunk_size]
    scores = (q @ k_chunks.transpose(-1, -2) / head_dim**0.5).view(
        batch, heads, length, m, chunk_size
    )
    probs = torch.softmax(scores, dim=-1) * weights[:, None, :, :, None]
    return probs.view(batch, heads, length, m * chunk_size) @ v_chunks, weights


class HierarchicalChunkAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        chunk_size: int = 16,
        top_k: int = 8,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if chunk_size < 1:
            raise ConfigError(f"chunk_size={chunk_size} must be a positive number of tokens")
        if top_k < 1:
            raise ConfigError(f"top_k={top_k} must be a positive number of chunks")
        if not causal:
            raise ConfigError("hcam is causal only: a chunk becomes a memory once it is complete")
        self.chunk_size = chunk_size
        self.top_k = top_k
        self.proj = QKVProjection(dim, num_heads, bias)

    def summary_keys(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """W_K applied to each complete chunk's detached mean token: (B, H, m, d)."""
        batch, _, dim = x.shape
        summaries = (
            x[:, : m * self.chunk_size].reshape(batch, m, self.chunk_size, dim).mean(2).detach()
        )
        qkv = self.proj.qkv
        w_k = qkv.weight[dim : 2 * dim]
        b_k = None if qkv.bias is None else qkv.bias[dim : 2 * dim]
        keys = F.linear(summaries, w_k, b_k)
        return keys.view(batch, m, self.proj.num_heads, self.proj.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj.split(x)
        length = x.shape[1]
        out = local_chunk_attention(q, k, v, min(self.chunk_size, length))
        if length > self.chunk_size:  # some query has a complete past chunk
            m = length // self.chunk_size
            memory, _ = hierarchical_readout(
                q, k, v, self.summary_keys(x, m), self.chunk_size, self.top_k
            )
            out = out + memory
        return self.proj.merge(out)


def keys_read(seq_len: int, chunk_size: int, top_k: int) -> tuple[int, int, int]:
    """Summed over queries: (summaries scored, detail keys read, local keys read)."""
    scored = detail = local = 0
    for i in range(-(-seq_len // chunk_size)):
        size = min(chunk_size, seq_len - i * chunk_size)  # queries in chunk i
        scored += size * i
        detail += size * min(top_k, i) * chunk_size
        local += size * (size + 1) // 2
    return scored, detail, local


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    chunk_size: int = 16,
    top_k: int = 8,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    scored, detail, local = keys_read(seq_len, chunk_size, top_k)
    summaries = (seq_len - 1) // chunk_size  # chunks some query can recall
    return FlopBreakdown(
        attention=4 * batch * dim * (detail + local),
        selection=2 * batch * dim * (scored + summaries * dim),
        projections=projection_flops(batch, seq_len, dim),
    )


def cache(
    seq_len: int,
    dim: int,
    bytes_per_element: int = 2,
    chunk_size: int = 16,
    top_k: int = 8,
    **_: object,
) -> CacheCost:
    """Every key and value plus one summary key per complete chunk are kept; the next token reads
    the summaries, its top-k chunks in detail and the tokens of its own, unfinished chunk."""
    m = seq_len // chunk_size
    stored = (2 * seq_len + m) * dim * bytes_per_element
    read = (
        (2 * (min(top_k, m) * chunk_size + seq_len - m * chunk_size) + m) * dim * bytes_per_element
    )
    return CacheCost(kv_stored=stored, kv_read_per_token=read)


def build(dim: int, causal: bool = True, **hparams: object) -> HierarchicalChunkAttention:
    return HierarchicalChunkAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="hcam",
    kind="sequence",
    description=(
        "Coarse attention over chunk summaries, detailed attention inside the top-k chunks."
    ),
    paper=(
        "Lampinen et al., Towards mental time travel: a hierarchical memory for reinforcement"
        " learning agents, NeurIPS 2021, arXiv:2105.14039"
    ),
    build=build,
    flops=flops,
    flops_exact=False,
    cache=cache,
    supports_bidirectional=False,
    # The official module takes the chunk size and k as arguments and sets neither; 16 and 8 are our
    # long-context choice, a few chunks recalled in detail out of many.
    defaults={"num_heads": 8, "chunk_size": 16, "top_k": 8},
    # At 32 tokens: 8 chunks of 4, so a late query keeps 2 of up to 7 past chunks.
    profile_defaults={"smoke": {"chunk_size": 4, "top_k": 2}},
)
