"""Lightning attention — "Lightning Attention-2: A Free Lunch for Handling Unlimited Sequence
Lengths in Large Language Models" (Qin, Sun, Li, Shen, Sun, Zhong, 2024, arXiv:2401.04658), the
attention of "TransNormerLLM" (Qin et al., 2023, arXiv:2307.14995).

Causal linear attention with a per-head decay lambda = exp(-s): out_t = q_t S_t, with the state
S_t = lambda S_{t-1} + k_t v_t^T. Computed as the recurrence it is sequential, and as a cumulative
sum it needs a d x d state per token; lightning attention instead tiles the sequence into blocks
of B tokens. Inside a block (intra) it is the masked quadratic form [(Q K^T) ⊙ M] V with
M_ij = lambda^(i-j) for i >= j and 0 above the diagonal; the blocks before contribute (inter)
through one running state KV, read as Λ Q KV with Λ = diag(lambda, ..., lambda^B) and then updated
KV <- lambda^B KV + (lambda^B Λ^-1 K)^T V, so memory stays O(d^2) per head and every step is a
matmul. TransNormerLLM's choices are options here: SiLU on q, k and v, ALiBi's geometric slopes s
per head, no softmax denominator, SimpleRMSNorm on the output and a low-rank sigmoid gate from
the layer input. With feature="elu1", normalize=True (the ones-column normaliser), decay=False
and neither norm nor gate, this is exactly the `linear` mechanism. FLOPs, what FlopCounterMode
counts, per batch and head, with e = d (+ 1 when normalised) and blocks of n_b tokens, the first
of n_1 and the last of n_N: (2 d + 2 e) sum n_b^2 (intra) + 2 d e (L - n_1) (inter readout: the
first block has no past) + 2 d e (L - n_N) (state updates: the state after the last block is only
needed when decoding); the gate adds 4 B L D d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.kernels.dispatch import use_kernel
from attnbench.kernels.reference import EPS, feature_map, with_ones_column
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import QKVProjection, check_heads, projection_flops

FEATURES = ("silu", "elu1")


def check_options(block_size: int, feature: str) -> None:
    if block_size < 1:
        raise ConfigError(f"block_size={block_size} must be a positive number of tokens")
    if feature not in FEATURES:
        raise ConfigError(f"feature={feature!r} must be one of {', '.join(FEATURES)}")


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes s_h (Press et al., 2022): geometric from 2^(-8/H); when H is not a
    power of two, those of the power of two below it, then every other one of the next power's."""

    def power_of_two(n: int) -> list[float]:
        return [2 ** (-8 * (h + 1) / n) for h in range(n)]

    below = 2 ** (num_heads.bit_length() - 1)
    return torch.tensor(power_of_two(below) + power_of_two(2 * below)[::2][: num_heads - below])


def lightning_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slopes: torch.Tensor, block_size: int
) -> torch.Tensor:
    """Causal (B, H, L, d), (B, H, L, d), (B, H, L, e) -> (B, H, L, e): out_t = q_t S_t, lambda_h
    = exp(-s_h)."""
    heads, length = q.shape[1], q.shape[2]
    s = slopes.view(heads, 1, 1)
    offset = torch.arange(block_size, device=q.device, dtype=q.dtype)
    distance = offset[:, None] - offset[None, :]
    mask = torch.where(distance >= 0, torch.exp(-s * distance.clamp(min=0)), 0.0)  # M, (H, B, B)
    # KV: the blocks before, decayed to the end of the last one; none before the first block
    state = None
    out = []
    for start in range(0, length, block_size):
        q_b, k_b, v_b = (t[:, :, start : start + block_size] for t in (q, k, v))
        n = q_b.shape[2]  # the last block may be short
        o_b = ((q_b @ k_b.transpose(-1, -2)) * mask[:, :n, :n]) @ v_b  # intra
        if state is not None:
            o_b = o_b + (q_b * torch.exp(-s * (offset[:n, None] + 1))) @ state  # inter: Λ Q KV
        out.append(o_b)
        if start + n < length:  # the state after the last block is only needed when decoding
            kv = (k_b * torch.exp(-s * (n - 1 - offset[:n, None]))).transpose(-1, -2) @ v_b
            state = kv if state is None else torch.exp(-s * n) * state + kv
    return torch.cat(out, dim=2)


class LightningAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        block_size: int = 64,
        feature: str = "silu",
        decay: bool = True,
        normalize: bool = False,
        output_norm: bool = True,
        output_gate: bool = True,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_options(block_size, feature)
        if not causal:
            raise ConfigError(
                "lightning is causal only: the decayed running state looks back, never ahead"
            )
        self.block_size = block_size
        self.feature = feature
        self.normalize = normalize
        self.output_norm = output_norm
        self.proj = QKVProjection(dim, num_heads, bias)
        head_dim = self.proj.head_dim
        # TransNormerLLM's gate is low rank, through one head's width
        self.gate = (
            nn.Sequential(nn.Linear(dim, head_dim, bias=bias), nn.Linear(head_dim, dim, bias=bias))
            if output_gate
            else None
        )
        # fixed, not learned; s = 0 is lambda = 1, no decay
        self.register_buffer(
            "slopes", alibi_slopes(num_heads) if decay else torch.zeros(num_heads), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.proj.split(x)
        if self.feature == "silu":  # TransNormerLLM activates the values too
            q, k, v = F.silu(q), F.silu(k), F.silu(v)
        else:
            q, k = feature_map(q), feature_map(k)
        head_dim = v.shape[-1]
        if (
            self.normalize
        ):  # the ones column carries sum_s lambda^(t-s) phi(k_s) through the same state
            v = with_ones_column(v)
        if use_kernel("lightning", q):  # kernels/lightning.py: the same sum, chunked in Triton
            from attnbench.kernels.lightning import lightning_attention as kernel

            out = kernel(q, k, v, self.slopes)
        else:
            out = lightning_attention(
                q, k, v, self.slopes.to(x.dtype), min(self.block_size, length)
            )
        if self.normalize:
            out = out[..., :head_dim] / (out[..., head_dim:] + EPS)
        out = out.transpose(1, 2).reshape(batch, length, dim)
        if self.output_norm:  # SimpleRMSNorm: x / rms(x), no learned scale
            out = out * torch.rsqrt(out.square().mean(-1, keepdim=True) + EPS)
        if self.gate is not None:
            out = out * torch.sigmoid(self.gate(x))
        return self.proj.out_proj(out)


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    block_size: int = 64,
    feature: str = "silu",
    normalize: bool = False,
    output_gate: bool = True,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    head_dim = check_heads(dim, num_heads)
    check_options(block_size, feature)
    value_dim = head_dim + int(normalize)
    block = min(block_size, seq_len)
    full, rest = divmod(seq_len, block)
    intra = (2 * head_dim + 2 * value_dim) * (
        full * block * block + rest * rest
    )  # (Q K^T ⊙ M) V per block
    readout = 2 * (seq_len - block) * head_dim * value_dim  # Λ Q KV, from the second block on
    update = (
        2 * (seq_len - (rest or block)) * head_dim * value_dim
    )  # K^T V, every block but the last
    gate = 2 * (2 * batch * seq_len * dim * head_dim) if output_gate else 0
    return FlopBreakdown(
        attention=batch * num_heads * (intra + readout + update),
        selection=gate,
        projections=projection_flops(batch, seq_len, dim),
    )


def cache(
    seq_len: int,
    dim: int,
    bytes_per_element: int = 2,
    num_heads: int = 8,
    normalize: bool = False,
    **_: object,
) -> CacheCost:
    """No KV cache: one d x d state KV per head (d x (d + 1) with the normaliser), read whole per
    token."""
    head_dim = check_heads(dim, num_heads)
    state = num_heads * head_dim * (head_dim + int(normalize)) * bytes_per_element
    return CacheCost(kv_stored=0, kv_read_per_token=state, state=state)


def build(dim: int, causal: bool = True, **hparams: object) -> LightningAttention:
    return LightningAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="lightning",
    kind="sequence",
    description=(
        "Decayed causal linear attention by blocks: masked intra-block part, running inter-block"
        " state."
    ),
    paper=(
        "Qin et al., Lightning Attention-2: A Free Lunch for Handling Unlimited Sequence Lengths in"
        " Large Language Models, arXiv:2401.04658 (TransNormerLLM, arXiv:2307.14995)"
    ),
    build=build,
    flops=flops,
    cache=cache,
    supports_bidirectional=False,
    # OpenNLPLab/lightning-attention: blocks of 64 (its Triton kernel), 8 heads
    # (examples/module/tnl_attn.py); TransNormerLLM: SiLU on q, k, v, ALiBi-slope decay, no
    # denominator, SRMSNorm and a sigmoid output gate.
    defaults={
        "num_heads": 8,
        "block_size": 64,
        "feature": "silu",
        "decay": True,
        "normalize": False,
        "output_norm": True,
        "output_gate": True,
    },
    # Four blocks in MQAR's 32 tokens, so the running state carries real context between blocks.
    profile_defaults={"smoke": {"block_size": 8}},
)
