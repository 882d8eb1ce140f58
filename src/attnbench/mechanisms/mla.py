"""Multi-head latent attention — "DeepSeek-V2: A Strong, Economical, and Efficient
Mixture-of-Experts Language Model" (DeepSeek-AI, 2024, arXiv:2405.04434), section 2.1.

Keys and values are not projected from the token h_t but reconstructed from one low-rank joint
latent c_t = W^DKV h_t of width d_c (kv_lora_rank), shared by all H heads: k^C = W^UK c_t,
v^C = W^UV c_t. At decode time only c_t is cached, since W^UK can be absorbed into the query
(q^T W^UK c = (W^UK^T q)^T c) and W^UV applied after the attention-weighted sum of latents, so
attention runs against the cache directly. RoPE would sit between q and W^UK and block that
absorption, so position goes through a separate, decoupled key k^R_t = RoPE(W^KR h_t) of width
d_h^R (qk_rope_head_dim), shared by all heads and cached beside c_t, matched by per-head RoPE
queries q^R = RoPE(W^QR h). Per token the cache holds d_c + d_h^R elements, against 2 H d_h for
mha. As in the released model, c_t is RMS-normalised before use; as in DeepSeek-V2-Lite, queries
are projected directly (the paper's query compression saves training activations, not cache).

`forward` is the paper's training form (expand K and V per head, then attend); `forward_absorbed`
is the decode form, and must equal it. Unset widths scale with the model width D and the head
width d_h = D/H: d_c = D/4 (DeepSeek-V2-Lite: 512 of 2048), d_h^R = d_h/2 (the paper's rule),
d_h^nope = d_h - d_h^R so that each score is as wide as mha's (X-EcoMLA's Llama-3.2-1B setting:
32 + 32 of 64), d_v = d_h. FLOPs (training form, what FlopCounterMode counts), per token:
projections 2 [D d_c + D d_h^R + D H (d_nope + d_h^R) + d_c H (d_nope + d_v) + H d_v D]; attention
2 H L (d_nope + d_h^R) + 2 H L d_v (the full L x L scores, causal or not, as for mha).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import check_heads

ROPE_BASE = 10000.0


@dataclass(frozen=True)
class LatentDims:
    heads: int
    rank: int  # d_c
    rope: int  # d_h^R
    nope: int  # d_h, the per-head width of the content part of queries and keys
    value: int  # d_v


def latent_dims(
    dim: int,
    num_heads: int = 8,
    kv_lora_rank: int | None = None,
    qk_rope_head_dim: int | None = None,
    qk_nope_head_dim: int | None = None,
    v_head_dim: int | None = None,
) -> LatentDims:
    """The widths in use: the ones given, the rest scaled from D and d_h = D/H (see the module
    docstring)."""
    head_dim = check_heads(dim, num_heads)
    rope = qk_rope_head_dim if qk_rope_head_dim is not None else max(2, head_dim // 4 * 2)
    dims = LatentDims(
        heads=num_heads,
        rank=kv_lora_rank if kv_lora_rank is not None else max(1, dim // 4),
        rope=rope,
        nope=qk_nope_head_dim if qk_nope_head_dim is not None else max(1, head_dim - rope),
        value=v_head_dim if v_head_dim is not None else head_dim,
    )
    if dims.rope < 2 or dims.rope % 2:
        raise ConfigError(
            f"qk_rope_head_dim={dims.rope} must be a positive even number (RoPE rotates pairs)"
        )
    for name, value in (
        ("kv_lora_rank", dims.rank),
        ("qk_nope_head_dim", dims.nope),
        ("v_head_dim", dims.value),
    ):
        if value < 1:
            raise ConfigError(f"{name}={value} must be >= 1")
    return dims


def rotary(x: torch.Tensor, base: float = ROPE_BASE) -> torch.Tensor:
    """RoPE (Su et al., 2021) on (..., L, n): pair i with i + n/2, rotate by position *
    base^(-2i/n)."""
    length, width = x.shape[-2], x.shape[-1]
    inv_freq = base ** (-torch.arange(0, width, 2, dtype=torch.float64, device=x.device) / width)
    angles = torch.arange(length, dtype=torch.float64, device=x.device)[:, None] * inv_freq
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def heads(t: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, L, H n) -> (B, H, L, n)."""
    batch, length, _ = t.shape
    return t.view(batch, length, num_heads, -1).transpose(1, 2)


class MultiHeadLatentAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        kv_lora_rank: int | None = None,
        qk_rope_head_dim: int | None = None,
        qk_nope_head_dim: int | None = None,
        v_head_dim: int | None = None,
        causal: bool = True,
    ) -> None:
        super().__init__()
        n = self.dims = latent_dims(
            dim, num_heads, kv_lora_rank, qk_rope_head_dim, qk_nope_head_dim, v_head_dim
        )
        self.causal = causal
        # The paper's projections carry no biases; a bias on W^UK would also break the clean
        # absorption.
        self.w_dkv = nn.Linear(dim, n.rank, bias=False)
        self.kv_norm = nn.RMSNorm(n.rank)
        self.w_uk = nn.Linear(n.rank, n.heads * n.nope, bias=False)
        self.w_uv = nn.Linear(n.rank, n.heads * n.value, bias=False)
        self.w_kr = nn.Linear(dim, n.rope, bias=False)
        self.w_q = nn.Linear(dim, n.heads * n.nope, bias=False)
        self.w_qr = nn.Linear(dim, n.heads * n.rope, bias=False)
        self.w_o = nn.Linear(n.heads * n.value, dim, bias=False)
        # Scores are content plus position; both absorbed and expanded forms scale by that width,
        # not by the latent width the absorbed queries have.
        self.scale = (n.nope + n.rope) ** -0.5

    def latent(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What a decoder caches per token: c (B, L, d_c) and the shared RoPE key k^R (B, L,
        d_h^R)."""
        return self.kv_norm(self.w_dkv(h)), rotary(self.w_kr(h))

    def queries(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q^C (B, H, L, d_nope) and q^R (B, H, L, d_h^R)."""
        return heads(self.w_q(h), self.dims.heads), rotary(heads(self.w_qr(h), self.dims.heads))

    def output(self, o: torch.Tensor) -> torch.Tensor:
        """(B, H, L, d_v) -> (B, L, D) through W^O."""
        batch, _, length, _ = o.shape
        return self.w_o(o.transpose(1, 2).reshape(batch, length, -1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Training form: reconstruct per-head keys and values from the latent, then attend."""
        c, k_r = self.latent(h)
        q_c, q_r = self.queries(h)
        k_c, v = heads(self.w_uk(c), self.dims.heads), heads(self.w_uv(c), self.dims.heads)
        q = torch.cat([q_c, q_r], dim=-1)
        k = torch.cat([k_c, k_r.unsqueeze(1).expand(-1, self.dims.heads, -1, -1)], dim=-1)
        return self.output(
            F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=self.scale)
        )

    def forward_absorbed(self, h: torch.Tensor) -> torch.Tensor:
        """Decode form: W^UK folded into the queries, W^UV after the sum, attention over [c, k^R]
        itself."""
        n = self.dims
        c, k_r = self.latent(h)
        q_c, q_r = self.queries(h)
        q_latent = q_c @ self.w_uk.weight.view(
            n.heads, n.nope, n.rank
        )  # (W^UK_h)^T q^C_h, per head
        q = torch.cat([q_latent, q_r], dim=-1)
        k = torch.cat([c, k_r], dim=-1).unsqueeze(1)  # one key "head" that every query head reads
        o_latent = F.scaled_dot_product_attention(
            q, k, c.unsqueeze(1), is_causal=self.causal, scale=self.scale, enable_gqa=True
        )
        return self.output(
            o_latent @ self.w_uv.weight.view(n.heads, n.value, n.rank).transpose(-1, -2)
        )


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    kv_lora_rank: int | None = None,
    qk_rope_head_dim: int | None = None,
    qk_nope_head_dim: int | None = None,
    v_head_dim: int | None = None,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    """The training form `forward` computes (FlopCounterMode's count on SDPA's math path)."""
    n = latent_dims(dim, num_heads, kv_lora_rank, qk_rope_head_dim, qk_nope_head_dim, v_head_dim)
    tokens = batch * seq_len
    down = dim * (n.rank + n.rope)  # W^DKV and W^KR
    up = n.rank * n.heads * (n.nope + n.value)  # W^UK and W^UV
    query_and_out = dim * n.heads * (n.nope + n.rope) + n.heads * n.value * dim  # W^Q, W^QR and W^O
    attention = (
        2 * batch * n.heads * seq_len * seq_len * (n.nope + n.rope + n.value)
    )  # Q K^T and A V
    return FlopBreakdown(attention=attention, projections=2 * tokens * (down + up + query_and_out))


def cache(
    seq_len: int,
    dim: int,
    bytes_per_element: int = 2,
    num_heads: int = 8,
    kv_lora_rank: int | None = None,
    qk_rope_head_dim: int | None = None,
    **_: object,
) -> CacheCost:
    """Only c_t and the shared k^R_t per token, all read by the absorbed decode step."""
    n = latent_dims(dim, num_heads, kv_lora_rank, qk_rope_head_dim)
    stored = seq_len * (n.rank + n.rope) * bytes_per_element
    return CacheCost(kv_stored=stored, kv_read_per_token=stored)


def build(dim: int, causal: bool = True, **hparams: object) -> MultiHeadLatentAttention:
    return MultiHeadLatentAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="mla",
    kind="sequence",
    description=(
        "Multi-head latent attention: keys and values from a cached low-rank latent plus a shared"
        " RoPE key."
    ),
    paper=(
        "DeepSeek-AI, DeepSeek-V2: A Strong, Economical, and Efficient Mixture-of-Experts Language"
        " Model, arXiv:2405.04434"
    ),
    build=build,
    flops=flops,
    cache=cache,
    # None scales a width with D and d_h (module docstring); at D = 2048, H = 32 that gives d_c =
    # 512, d_h^R = 32, d_nope = 32, d_v = 64. MQAR's single head is kept: latent compression is
    # meaningful there.
    defaults={
        "num_heads": 8,
        "kv_lora_rank": None,
        "qk_rope_head_dim": None,
        "qk_nope_head_dim": None,
        "v_head_dim": None,
    },
    # At d_model 64, D/4 is a 16-wide latent that must carry both key and value of a 128-token
    # vocabulary (MQAR smoke: accuracy 0.26, against 0.99 with 32). d_c = 32 plus the 32-wide RoPE
    # key caches 64 elements a token: half of mha's, the same as gqa's smoke setting, so the two
    # compress equally.
    profile_defaults={"smoke": {"kv_lora_rank": 32}},
)
