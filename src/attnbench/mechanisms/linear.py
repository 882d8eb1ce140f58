"""Linear attention — "Transformers are RNNs" (Katharopoulos et al., ICML 2020).

Softmax is replaced by a positive feature map phi(x) = elu(x) + 1, so causal attention becomes
a running state: out_t = phi(q_t)^T S_t / phi(q_t)^T z_t with S_t = sum_{s<=t} phi(k_s) v_s^T and
z_t = sum_{s<=t} phi(k_s). The module computes it chunk by chunk (quadratic inside a chunk, the
state carried between chunks), which is exact and uses matmuls; `linear_attention_cumsum` is the
token-by-token form it must equal. The normaliser rides along as an extra all-ones value column.
Declared FLOPs are the chunked form's matmuls, exactly what FlopCounterMode counts; elementwise
work (feature map, mask, running sum, division) is not counted, as FlopCounterMode does not.
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


def linear_attention_cumsum(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal reference on (B, H, L, d) inputs: explicit per-token state, O(L d^2) memory."""
    phi_q, phi_k = feature_map(q), feature_map(k)
    state = torch.cumsum(phi_k.unsqueeze(-1) * v.unsqueeze(-2), dim=2)
    normaliser = torch.cumsum(phi_k, dim=2)
    numerator = torch.einsum("bhld,bhlde->bhle", phi_q, state)
    denominator = torch.einsum("bhld,bhld->bhl", phi_q, normaliser).unsqueeze(-1)
    return numerator / (denominator + EPS)


def linear_attention_chunked(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Causal linear attention on (B, H, L, d), `chunk` tokens at a time."""
    batch, heads, length, head_dim = q.shape
    n_chunks = -(-length // chunk)
    pad = n_chunks * chunk - length
    phi_q, phi_k, v1 = feature_map(q), feature_map(k), with_ones_column(v)
    if pad:  # padding goes after the last token, so causal outputs are untouched
        phi_q, phi_k, v1 = (F.pad(t, (0, 0, 0, pad)) for t in (phi_q, phi_k, v1))
    phi_q, phi_k, v1 = (
        t.view(batch, heads, n_chunks, chunk, t.shape[-1]) for t in (phi_q, phi_k, v1)
    )
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    intra = (phi_q @ phi_k.transpose(-1, -2)).masked_fill(~causal, 0.0) @ v1
    chunk_states = phi_k.transpose(-1, -2) @ v1
    carried = torch.cumsum(chunk_states, dim=2) - chunk_states  # state from strictly earlier chunks
    out = intra + phi_q @ carried
    out = out.reshape(batch, heads, n_chunks * chunk, head_dim + 1)[:, :, :length]
    return out[..., :head_dim] / (out[..., head_dim:] + EPS)


def linear_attention_global(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Bidirectional form: one state over the whole sequence."""
    phi_q, phi_k = feature_map(q), feature_map(k)
    out = phi_q @ (phi_k.transpose(-1, -2) @ with_ones_column(v))
    head_dim = v.shape[-1]
    return out[..., :head_dim] / (out[..., head_dim:] + EPS)


class LinearAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        chunk_size: int = 64,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if chunk_size < 1:
            raise ConfigError(f"chunk_size={chunk_size} must be a positive number of tokens")
        self.chunk_size = chunk_size
        self.causal = causal
        self.proj = QKVProjection(dim, num_heads, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj.split(x)
        if self.causal and use_kernel("linear", q):  # kernels/lightning.py with no decay
            from attnbench.kernels.lightning import linear_attention as kernel

            out = kernel(q, k, v)
        elif self.causal:
            out = linear_attention_chunked(q, k, v, min(self.chunk_size, x.shape[1]))
        else:
            out = linear_attention_global(q, k, v)
        return self.proj.merge(out)


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    chunk_size: int = 64,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    head_dim = check_heads(dim, num_heads)
    value_dim = head_dim + 1  # values carry the normaliser column
    if causal:
        chunk = min(chunk_size, seq_len)
        padded = -(-seq_len // chunk) * chunk
        intra = 2 * padded * chunk * head_dim + 2 * padded * chunk * value_dim  # (Q K^T) then (.) V
        inter = 2 * (2 * padded * head_dim * value_dim)  # chunk states K^T V and readout Q S
        per_head = intra + inter
    else:
        per_head = 2 * (2 * seq_len * head_dim * value_dim)  # K^T V once, then Q S
    return FlopBreakdown(
        attention=batch * num_heads * per_head, projections=projection_flops(batch, seq_len, dim)
    )


def cache(
    seq_len: int, dim: int, bytes_per_element: int = 2, num_heads: int = 8, **_: object
) -> CacheCost:
    """No KV cache: a state S (d x d) and normaliser z (d) per head, read whole for every token."""
    head_dim = check_heads(dim, num_heads)
    state = num_heads * head_dim * (head_dim + 1) * bytes_per_element
    return CacheCost(kv_stored=0, kv_read_per_token=state, state=state)


def build(dim: int, causal: bool = True, **hparams: object) -> LinearAttention:
    return LinearAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="linear",
    kind="sequence",
    description="Causal linear attention with the elu+1 feature map (O(L d^2)).",
    paper="Katharopoulos et al., Transformers are RNNs, ICML 2020, arXiv:2006.16236",
    build=build,
    flops=flops,
    cache=cache,
    defaults={"num_heads": 8, "chunk_size": 64},
)
