"""Titans, memory as context — "Titans: Learning to Memorize at Test Time" (Behrouz, Zhong and
Mirrokni, 2024, arXiv:2501.00663). No official code; lucidrains' titans-pytorch and fla.ops.titans
are unofficial.

Attention is exact short-term memory; the long past lives in a neural long-term memory that keeps
learning at test time: per memory head an MLP M(k) = W2 SiLU(W1 k), from a learned M_0 (W2 = 0 at
first: empty). It is written by gradient descent on the associative loss l(M; x_t) = ||M(k_t) -
v_t||^2 with data-dependent step theta_t, momentum eta_t (the surprise S) and forgetting alpha_t:
S_t = eta_t S_{t-1} - theta_t grad l(M_{t'}; x_t), M_t = (1 - alpha_t) M_{t-1} + S_t (eqs. 13-14),
all gradients of a segment taken at the memory M_{t'} it began with (mini-batch form, eq. 16).
Segments of `chunk_size` C each read h = M_{t'}(q) with their tokens' queries (eq. 21), attend
causally over [persistent tokens; h; segment] (eqs. 22-23) and are then written into M: a segment
sees only memory written before it. As in the unofficial ports, M is written with the layer input's
keys and values (eq. 11), not the attention output, and the final gate o = y * M_t(y) (eqs. 24-25),
which would read memory holding the segment's later tokens, is left out; h_j is visible to tokens i
>= j only. Memory queries and keys are l2-normalised (Sec. 4.4). Gradients are explicit: with z = W1
k, a = SiLU(z), e = 2 (W2 a - v), grad_W2 = e a^T, grad_W1 = ((W2^T e) * SiLU'(z)) k^T, and the
momentum and forgetting recurrences unroll into one weighted sum of rank-1 terms per segment.

FLOPs (what FlopCounterMode counts), with C = min(chunk_size, L), n_s = ceil(L / C), P = n_s C (the
last segment is padded, its padding computed like tokens), H_m memory heads of hidden width m:
attention 4 B P (Np + 2 C) D + memory reads 4 B P D m; selection: memory writes 14 B (n_s - 1) C D m
(forward 4, back through W2 2, the W1 and W2 sums for M and S 8) + gates 6 B P D H_m; projections 18
B P D^2 (attention 8, the memory's W_Q, W_K, W_V 6, keys and values of h 4) + 4 Np D^2 (of the
persistent tokens).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import QKVProjection, check_heads, projection_flops
from attnbench.mechanisms._memory import memory_read, surprise_sums


def update_coefficients(
    theta: torch.Tensor, log_eta: torch.Tensor, log_keep: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """The scalars of a segment's unrolled update, for gates theta_t, log eta_t, log(1 - alpha_t)
    laid out (..., n).

    M_n = A M_0 + b S_0 - sum_j c_j u_j and S_n = E S_0 - sum_j s_j u_j, u_j the gradient at M_0,
    with A = prod (1 - alpha), E = prod eta, b = sum_t prod_{s>t} (1 - alpha_s) prod_{s<=t} eta_s,
    c_j = theta_j sum_{t>=j} prod_{s>t} (1 - alpha_s) prod_{j<s<=t} eta_s, s_j = theta_j prod_{s>j}
    eta_s. Returns the weights (..., 2, n) = [c; s], A, b and E.
    """
    n = theta.shape[-1]
    eta_sum, keep_sum = log_eta.cumsum(-1), log_keep.cumsum(-1)
    later = torch.ones(n, n, dtype=torch.bool, device=theta.device).triu()  # [j, t]: t >= j
    momentum_path = torch.where(
        later, eta_sum[..., None, :] - eta_sum[..., :, None], float("-inf")
    ).exp()
    kept_after = (keep_sum[..., -1:] - keep_sum).exp()  # prod_{s>t} (1 - alpha_s)
    weights = theta.unsqueeze(-2) * torch.stack(
        [(momentum_path * kept_after.unsqueeze(-2)).sum(-1), momentum_path[..., -1]], dim=-2
    )
    return (
        weights,
        keep_sum[..., -1].exp(),
        (kept_after * eta_sum.exp()).sum(-1),
        eta_sum[..., -1].exp(),
    )


def segment_update(
    memory: tuple[torch.Tensor | None, ...],
    k: torch.Tensor,
    v: torch.Tensor,
    weights: torch.Tensor,
    decay: torch.Tensor,
    carried: torch.Tensor,
    momentum: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """(W1, W2, S1, S2) after a segment of keys and values (B, H, n, d); S = None is the first
    zero momentum."""
    w1, w2, s1, s2 = memory
    decay, carried, momentum = (t[..., None, None] for t in (decay, carried, momentum))
    # negated weights give -sum c_j u_j directly, so each new weight is one fused multiply-add
    (w1_step, s1_step), (w2_step, s2_step) = surprise_sums(w1, w2, k, v, -weights)
    w1, w2 = torch.addcmul(w1_step, decay, w1), torch.addcmul(w2_step, decay, w2)
    if s1 is None:
        return w1, w2, s1_step, s2_step
    return (
        w1.addcmul_(carried, s1),
        w2.addcmul_(carried, s2),
        torch.addcmul(s1_step, momentum, s1),
        torch.addcmul(s2_step, momentum, s2),
    )


def check_options(
    dim: int,
    chunk_size: int,
    num_persistent: int,
    memory_heads: int,
    memory_expansion: int,
    max_lr: float,
) -> None:
    for ok, problem in (
        (chunk_size >= 1, f"chunk_size={chunk_size} must be a positive number of tokens"),
        (num_persistent >= 1, f"num_persistent={num_persistent} must be >= 1 (the paper's N_p)"),
        (
            memory_heads >= 1 and dim % memory_heads == 0,
            f"memory_heads={memory_heads} must be >= 1 and divide the model width {dim}",
        ),
        (memory_expansion >= 1, f"memory_expansion={memory_expansion} must be a positive multiple"),
        (max_lr > 0, f"max_lr={max_lr} must be a positive learning rate"),
    ):
        if not ok:
            raise ConfigError(problem)


def split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(..., n, D) -> (..., heads, n, D / heads)."""
    return t.unflatten(-1, (heads, -1)).transpose(-2, -3)


class TitansMAC(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        chunk_size: int = 512,
        num_persistent: int = 4,
        memory_heads: int = 8,
        memory_expansion: int = 2,
        max_lr: float = 0.1,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_options(dim, chunk_size, num_persistent, memory_heads, memory_expansion, max_lr)
        if not causal:
            raise ConfigError("titans_mac is causal only: its memory is written segment by segment")
        self.chunk_size, self.memory_heads, self.max_lr = chunk_size, memory_heads, max_lr
        self.proj = QKVProjection(dim, num_heads, bias)
        self.memory_qkv = nn.Linear(dim, 3 * dim, bias=bias)  # the memory's own W_Q, W_K, W_V
        self.gates = nn.Linear(dim, 3 * memory_heads)  # theta_t, eta_t, alpha_t per memory head
        with (
            torch.no_grad()
        ):  # start almost without forgetting, so the memory carries across segments
            self.gates.bias[2 * memory_heads :].fill_(-4.0)
        self.persistent = nn.Parameter(torch.randn(num_persistent, dim) * 0.02)
        width, hidden = dim // memory_heads, memory_expansion * dim // memory_heads
        self.w1 = nn.Parameter(
            torch.randn(memory_heads, hidden, width) / width**0.5
        )  # M_0, meta-learned
        self.w2 = nn.Parameter(
            torch.zeros(memory_heads, width, hidden)
        )  # an empty memory: M_0(q) = 0

    def memory_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The memory's queries, keys (l2-normalised) and values, (B, H_m, L, D / H_m) each."""
        q, k, v = (split_heads(t, self.memory_heads) for t in self.memory_qkv(x).chunk(3, dim=-1))
        return F.normalize(q, dim=-1), F.normalize(k, dim=-1), v

    def gate_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """theta_t in (0, max_lr), log eta_t and log(1 - alpha_t), (B, H_m, L) each."""
        theta, eta, alpha = self.gates(x).transpose(1, 2).chunk(3, dim=1)
        return self.max_lr * torch.sigmoid(theta), F.logsigmoid(eta), F.logsigmoid(-alpha)

    def recall(self, x: torch.Tensor, chunk: int) -> torch.Tensor:
        """h (B, L, D), L a multiple of `chunk`: each query read from M_{t'}, written by the
        earlier segments."""

        def segments(t: torch.Tensor) -> list[torch.Tensor]:
            return t.unflatten(2, (-1, chunk)).unbind(2)

        q, k, v = (segments(t) for t in self.memory_inputs(x))
        gates = (t.unflatten(2, (-1, chunk)) for t in self.gate_values(x))
        coefficients = [t.unbind(2) for t in update_coefficients(*gates)]
        batch = x.shape[0]
        memory = (self.w1.expand(batch, -1, -1, -1), self.w2.expand(batch, -1, -1, -1), None, None)
        out = []
        for i in range(len(q)):
            out.append(memory_read(memory[0], memory[1], q[i]))
            if i + 1 < len(q):  # the memory after the last segment is only needed when decoding
                memory = segment_update(memory, k[i], v[i], *(c[i] for c in coefficients))
        return torch.cat(out, dim=2).transpose(1, 2).flatten(2)

    def key_value(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention keys and values (..., H, n, d) of context tokens (..., n, D), through W_K
        and W_V only."""
        dim, bias = tokens.shape[-1], self.proj.qkv.bias
        kv = F.linear(tokens, self.proj.qkv.weight[dim:], None if bias is None else bias[dim:])
        return tuple(split_heads(t, self.proj.num_heads) for t in kv.chunk(2, dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        chunk = min(self.chunk_size, length)
        n_segments = -(-length // chunk)
        x = F.pad(
            x, (0, 0, 0, n_segments * chunk - length)
        )  # after the last token: real outputs never read it

        def segments(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(2, (n_segments, chunk))

        q, k, v = (segments(t) for t in self.proj.split(x))
        recalled_k, recalled_v = (segments(t) for t in self.key_value(self.recall(x, chunk)))
        persistent_k, persistent_v = (
            t[None, :, None].expand(batch, -1, n_segments, -1, -1)
            for t in self.key_value(self.persistent)
        )
        causal = torch.ones(chunk, chunk, dtype=torch.bool, device=x.device).tril()
        mask = torch.cat([causal.new_ones(chunk, self.persistent.shape[0]), causal, causal], dim=1)
        out = F.scaled_dot_product_attention(
            q,
            torch.cat([persistent_k, recalled_k, k], dim=3),
            torch.cat([persistent_v, recalled_v, v], dim=3),
            attn_mask=mask,
        )
        return self.proj.merge(out.flatten(2, 3))[:, :length]


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    chunk_size: int = 512,
    num_persistent: int = 4,
    memory_heads: int = 8,
    memory_expansion: int = 2,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    check_heads(dim, num_heads)
    hidden = memory_expansion * dim // memory_heads
    chunk = min(chunk_size, seq_len)
    n_segments = -(-seq_len // chunk)
    padded = n_segments * chunk
    segment_attention = 4 * batch * padded * (num_persistent + 2 * chunk) * dim
    memory_reads = 4 * batch * padded * dim * hidden  # two matmuls through each head's MLP
    memory_writes = 14 * batch * (n_segments - 1) * chunk * dim * hidden
    gates = 2 * batch * padded * dim * 3 * memory_heads
    context_projections = (6 + 4) * batch * padded * dim * dim + 4 * num_persistent * dim * dim
    return FlopBreakdown(
        attention=segment_attention + memory_reads,
        selection=memory_writes + gates,
        projections=projection_flops(batch, padded, dim) + context_projections,
    )


def cache(
    seq_len: int,
    dim: int,
    bytes_per_element: int = 2,
    chunk_size: int = 512,
    num_persistent: int = 4,
    memory_heads: int = 8,
    memory_expansion: int = 2,
    **_: object,
) -> CacheCost:
    """Keys and values of the persistent tokens and of the current segment's tokens and retrievals,
    all read per token; state: three copies of the memory weights, M_{t'} (read and differentiated
    through the segment) and the running M_t and S_t that the segment's tokens update one by one."""
    pending = seq_len % chunk_size
    kv = 2 * (num_persistent + 2 * pending) * dim * bytes_per_element
    memory_weights = (
        2 * memory_expansion * dim * dim // memory_heads
    )  # W1 and W2 of every memory head
    return CacheCost(
        kv_stored=kv, kv_read_per_token=kv, state=3 * memory_weights * bytes_per_element
    )


def build(dim: int, causal: bool = True, **hparams: object) -> TitansMAC:
    return TitansMAC(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="titans_mac",
    kind="sequence",
    description=(
        "Segment attention over persistent tokens and a test-time-trained MLP memory's retrievals."
    ),
    paper=(
        "Behrouz, Zhong and Mirrokni, Titans: Learning to Memorize at Test Time, arXiv:2501.00663"
    ),
    build=build,
    flops=flops,
    cache=cache,
    supports_bidirectional=False,
    # The paper states no segment length, persistent count or step size: 4 persistent tokens, a
    # 2-layer memory and max_lr 0.1 are lucidrains' train_mac.py; segments of 512 the unofficial
    # ports' usual value.
    defaults={
        "num_heads": 8,
        "chunk_size": 512,
        "num_persistent": 4,
        "memory_heads": 8,
        "memory_expansion": 2,
        "max_lr": 0.1,
    },
    # At 32 tokens: 4 segments, so three of them read a memory written by the ones before.
    profile_defaults={"smoke": {"chunk_size": 8, "memory_expansion": 1}},
)
