"""AllMem — "AllMem: A Memory-centric Recipe for Efficient Long-context Modeling" (Wang, Wang, Peng,
Qin, Kostelec, Sourmpis, Laborieux and Guo, 2026, arXiv:2602.13680). No official code.

Sliding-window attention keeps the recent past exactly and cheaply; what leaves the window is not
dropped but written into a non-linear test-time-training (TTT) memory, a small MLP per head, M(k) =
W2 SiLU(W1 k) (hidden width `memory_expansion` d, from a learned W_0 with W2 = 0: an empty memory),
trained online on the self-supervised loss l(M; x_j) = ||M(k_j) - v_j||^2 over the attention's own
keys and values (keys and queries l2-normalised). The readouts are fused per channel: o_t = g_t *
SWA(q_t) + (1 - g_t) * M(q_t), with g_t = sigmoid(W_g x_t). Our reading of the paper (its exact gate
and step rule are not public in code): the memory takes TTT-MLP's mini-batch gradient steps (Sun et
al., 2024), W <- W - sum_j theta_j grad l(W; x_j), all gradients of a batch taken at the same W,
with a data-dependent step theta_j = max_lr sigmoid(w . x_j); and the window is block-aligned so
that nothing falls between window and memory: query t of chunk c = floor(t / C) (C = `chunk_size`)
attends to tokens c C - w + 1 .. t (w to w + C - 1 of them) and reads the memory holding exactly the
tokens before c C - w + 1, which entered it C at a time as they left the window. With C = 1 the
attention is `sliding_window` and the memory is written token by token. Gradients are explicit
(closed form, shared with `titans_mac`), not autograd inside forward.

FLOPs (what FlopCounterMode counts; C' = min(C, L), n_c = ceil(L / C') chunks, p = min(w - 1, (n_c -
1) C') keys of look-back, m the memory's hidden width): attention 4 B n_c C' (C' + p) D (each
chunk's queries against its padded key band) + memory reads 4 B L D m; selection: memory writes 10 B
N D m for the N = max(0, (n_c - 1) C' - w + 1) tokens written before the last chunk, the steps 2 B L
D H and the fusion gate 2 B L D^2; projections 8 B L D^2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import QKVProjection, check_heads, projection_flops
from attnbench.mechanisms._memory import memory_read, surprise_sums


def allmem_mask_mod(window: int, chunk_size: int):
    """FlexAttention-style `mask_mod(b, h, q_idx, kv_idx) -> bool`: the block-aligned causal
    window."""

    def mask_mod(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & (kv_idx > chunk_size * (q_idx // chunk_size) - window)

    return mask_mod


def windowed_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, chunk: int
) -> torch.Tensor:
    """Causal (B, H, L, d) attention under `allmem_mask_mod`, each chunk of queries against its
    own key band."""
    length = q.shape[2]
    n_chunks = -(-length // chunk)
    back = min(
        window - 1, (n_chunks - 1) * chunk
    )  # look-back beyond the chunk; more would be all padding
    pad = n_chunks * chunk - length
    q = F.pad(q, (0, 0, 0, pad)).unflatten(2, (n_chunks, chunk))
    k, v = (
        F.pad(t, (0, 0, back, pad)).unfold(2, chunk + back, chunk).transpose(-1, -2) for t in (k, v)
    )
    query = torch.arange(chunk, device=q.device)[:, None]
    key = torch.arange(chunk + back, device=q.device)
    start = chunk * torch.arange(n_chunks, device=q.device)[:, None, None]
    mask = (key <= query + back) & (key >= back - start)  # causal, and no left padding
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).flatten(2, 3)[:, :, :length]


def check_options(window: int, chunk_size: int, memory_expansion: int, max_lr: float) -> None:
    if window < 1:
        raise ConfigError(f"window={window} must be a positive number of tokens")
    if chunk_size < 1:
        raise ConfigError(f"chunk_size={chunk_size} must be a positive number of tokens")
    if memory_expansion < 1:
        raise ConfigError(
            f"memory_expansion={memory_expansion} must be a positive hidden-width multiple"
        )
    if not max_lr > 0:
        raise ConfigError(f"max_lr={max_lr} must be a positive learning rate")


class AllMem(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        window: int = 4096,
        chunk_size: int = 16,
        memory_expansion: int = 4,
        max_lr: float = 1.0,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_options(window, chunk_size, memory_expansion, max_lr)
        if not causal:
            raise ConfigError(
                "allmem is causal only: its memory holds the tokens that left a causal window"
            )
        self.window, self.chunk_size, self.max_lr = window, chunk_size, max_lr
        self.proj = QKVProjection(dim, num_heads, bias)
        head_dim = self.proj.head_dim
        hidden = memory_expansion * head_dim
        self.step = nn.Linear(dim, num_heads)  # theta_t per head
        self.gate = nn.Linear(dim, dim)  # g_t, one per channel
        self.w1 = nn.Parameter(
            torch.randn(num_heads, hidden, head_dim) / head_dim**0.5
        )  # W_0, meta-learned
        self.w2 = nn.Parameter(
            torch.zeros(num_heads, head_dim, hidden)
        )  # an empty memory: M_0(q) = 0

    def recall(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, theta: torch.Tensor, chunk: int
    ) -> torch.Tensor:
        """M(q_t) for every query, M holding the tokens before c C - w + 1 (c = t's chunk); (B,
        H, L, d)."""
        batch, _, length, _ = q.shape
        w1, w2 = self.w1.expand(batch, -1, -1, -1), self.w2.expand(batch, -1, -1, -1)
        out = []
        for start in range(0, length, chunk):
            out.append(memory_read(w1, w2, q[:, :, start : start + chunk]))
            # the tokens leaving the window before the next chunk; the memory after the last is for
            # decoding
            leaving = slice(
                max(start - self.window + 1, 0), max(start + chunk - self.window + 1, 0)
            )
            if start + chunk < length and leaving.stop > leaving.start:
                step_w1, step_w2 = surprise_sums(
                    w1, w2, k[:, :, leaving], v[:, :, leaving], -theta[:, :, None, leaving]
                )
                w1, w2 = w1 + step_w1[0], w2 + step_w2[0]
        return torch.cat(out, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunk = min(self.chunk_size, x.shape[1])
        q, k, v = self.proj.split(x)
        theta = self.max_lr * torch.sigmoid(self.step(x)).transpose(1, 2)
        attended = windowed_attention(q, k, v, self.window, chunk)
        recalled = self.recall(F.normalize(q, dim=-1), F.normalize(k, dim=-1), v, theta, chunk)
        gate = torch.sigmoid(self.gate(x)).unflatten(-1, (self.proj.num_heads, -1)).transpose(1, 2)
        return self.proj.merge(gate * attended + (1 - gate) * recalled)


def chunks_and_lookback(seq_len: int, window: int, chunk_size: int) -> tuple[int, int, int]:
    chunk = min(chunk_size, seq_len)
    n_chunks = -(-seq_len // chunk)
    return chunk, n_chunks, min(window - 1, (n_chunks - 1) * chunk)


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    window: int = 4096,
    chunk_size: int = 16,
    memory_expansion: int = 4,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    hidden = memory_expansion * check_heads(dim, num_heads)
    chunk, n_chunks, back = chunks_and_lookback(seq_len, window, chunk_size)
    band = 4 * batch * n_chunks * chunk * (chunk + back) * dim
    memory_reads = 4 * batch * seq_len * dim * hidden
    written = max(0, (n_chunks - 1) * chunk - window + 1)
    # per written token and head: forward 4 d m, back through W2 2 d m, the weighted W1 and W2 sums
    # 4 d m
    memory_writes = 10 * batch * written * dim * hidden
    gates = 2 * batch * seq_len * dim * (num_heads + dim)
    return FlopBreakdown(
        attention=band + memory_reads,
        selection=memory_writes + gates,
        projections=projection_flops(batch, seq_len, dim),
    )


def cache(
    seq_len: int,
    dim: int,
    bytes_per_element: int = 2,
    num_heads: int = 8,
    window: int = 4096,
    chunk_size: int = 16,
    memory_expansion: int = 4,
    **_: object,
) -> CacheCost:
    """Evicting: the next token's band, w + (L mod C) slots counting its own as `sliding_window`
    does, kept and read whole; tokens leave it C at a time into the memory, whose W1 and W2 per head
    are the fixed state.
    """
    head_dim = check_heads(dim, num_heads)
    kept = 2 * min(seq_len, window + seq_len % chunk_size) * dim * bytes_per_element
    state = 2 * num_heads * memory_expansion * head_dim * head_dim * bytes_per_element
    return CacheCost(kv_stored=kept, kv_read_per_token=kept, state=state)


def build(dim: int, causal: bool = True, **hparams: object) -> AllMem:
    return AllMem(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="allmem",
    kind="sequence",
    description=(
        "Sliding-window attention fused per channel with a TTT-MLP memory of the evicted tokens."
    ),
    paper=(
        "Wang et al., AllMem: A Memory-centric Recipe for Efficient Long-context Modeling,"
        " arXiv:2602.13680"
    ),
    build=build,
    flops=flops,
    cache=cache,
    supports_bidirectional=False,
    # The paper's 4k-window model; mini-batches of 16 and hidden width 4 d are TTT-MLP's, the base
    # step 1 TTT-Linear's (with unit keys, theta = 1/2 writes a token exactly into a linear memory).
    defaults={
        "num_heads": 8,
        "window": 4096,
        "chunk_size": 16,
        "memory_expansion": 4,
        "max_lr": 1.0,
    },
    # At 32 tokens: the first 8-15 tokens leave the window, so the last chunks need the memory.
    profile_defaults={"smoke": {"window": 8, "chunk_size": 8, "memory_expansion": 1}},
)
