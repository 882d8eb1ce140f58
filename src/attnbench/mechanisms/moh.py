"""Mixture-of-Head attention — "MoH: Multi-Head Attention as Mixture-of-Head Attention"
(Jin, Zhu, Yuan, Yan; 2024; arXiv:2410.11842; code SkyworkAI/MoH).

Multi-head attention sums its heads, out = sum_i W_o^i H^i. MoH treats the heads as experts and
weights them per token: out_t = sum_i g_i(x_t) W_o^i H^i_t. The first `shared_heads` heads (h_s)
are always active; the router W_r scores the other h - h_s routed heads, and only the `top_k`
best of them (K) are active for that token. Two-stage routing balances the groups: [a1, a2] =
softmax(W_h x_t); shared heads get a1 * softmax(W_s x_t), active routed heads a2 * softmax(W_r x_t)
renormalised over the K chosen (as the official code does). Each group is also scaled by its
head count (and the pair by 2), so uniform routing gives every active head weight 1 and MoH with
every head active and flat routers is exactly `mha`. Routing looks only at x_t, so causality is
that of the attention itself. A load-balancing loss (the official code's form of the paper's
L_b) is left in `load_balancing_loss` by a training forward pass, for a loop that wants it.

The reference, like the official code, computes every head and zeroes the inactive ones. Declared
attention FLOPs are the effective work of a kernel that skips a (token, head) pair the router
turned off: 4 B L^2 d_h (h_s + K), i.e. the dense 4 B L^2 D scaled by (h_s + K) / h
(flops_exact=False); selection is the three routers' matmuls, 2 B L D (h - h_s + 2 + h_s), where
W_h exists only with both groups present and W_s only with two or more shared heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._common import QKVProjection, check_heads, projection_flops


def check_routing(num_heads: int, shared_heads: int, top_k: int) -> int:
    """Number of routed heads, or a clear error for an impossible split."""
    if not 0 <= shared_heads <= num_heads:
        raise ConfigError(
            f"shared_heads={shared_heads} must be between 0 and num_heads={num_heads}"
        )
    routed = num_heads - shared_heads
    if routed and not 1 <= top_k <= routed:
        raise ConfigError(f"top_k={top_k} must be between 1 and the {routed} routed heads")
    if not routed and top_k:
        raise ConfigError(
            f"top_k={top_k} must be 0 when every head is shared (shared_heads={shared_heads})"
        )
    return routed


def router_widths(num_heads: int, shared_heads: int, top_k: int) -> tuple[int, int, int]:
    """Output widths of W_r (routed scores), W_h (shared vs routed) and W_s (shared scores); 0 =
    absent."""
    routed = check_routing(num_heads, shared_heads, top_k)
    return routed, 2 if routed and shared_heads else 0, shared_heads if shared_heads > 1 else 0


class MixtureOfHeadAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        shared_heads: int = 4,
        top_k: int = 2,
        causal: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.causal = causal
        self.shared_heads, self.top_k = shared_heads, top_k
        self.proj = QKVProjection(dim, num_heads, bias)
        routed, balance, shared = router_widths(num_heads, shared_heads, top_k)
        self.w_r = nn.Linear(dim, routed, bias=False) if routed else None
        self.w_h = nn.Linear(dim, balance, bias=False) if balance else None
        self.w_s = nn.Linear(dim, shared, bias=False) if shared else None
        self.load_balancing_loss: torch.Tensor | None = None

    def head_gates(self, x: torch.Tensor) -> torch.Tensor:
        """Per-token weight of every head, (B, L, h); zero for routed heads outside the top-K."""
        batch, length, _ = x.shape
        h_s = self.shared_heads
        shared = (
            torch.softmax(self.w_s(x), dim=-1) * h_s
            if self.w_s is not None
            else x.new_ones(batch, length, h_s)
        )
        if self.w_r is None:
            return shared
        scores = torch.softmax(self.w_r(x), dim=-1)
        chosen = torch.zeros_like(scores).scatter(-1, scores.topk(self.top_k, dim=-1).indices, 1.0)
        routed = scores * chosen
        routed = (
            routed / routed.sum(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).eps) * self.top_k
        )
        if (
            self.training
        ):  # L_b = R * sum_i f_i P_i: the fraction routed to head i times its mean score
            n_routed = scores.shape[-1]
            self.load_balancing_loss = n_routed * (chosen.mean((0, 1)) * scores.mean((0, 1))).sum()
        if self.w_h is None:
            return routed
        alpha = torch.softmax(self.w_h(x), dim=-1) * 2
        return torch.cat([alpha[..., :1] * shared, alpha[..., 1:] * routed], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj.split(x)
        heads = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj.merge(heads * self.head_gates(x).transpose(1, 2).unsqueeze(-1))


def flops(
    batch: int,
    seq_len: int,
    dim: int,
    num_heads: int = 8,
    shared_heads: int = 4,
    top_k: int = 2,
    causal: bool = True,
    **_: object,
) -> FlopBreakdown:
    head_dim = check_heads(dim, num_heads)
    active = shared_heads + top_k
    routers = sum(router_widths(num_heads, shared_heads, top_k))
    return FlopBreakdown(
        attention=4 * batch * seq_len * seq_len * head_dim * active,
        selection=2 * batch * seq_len * dim * routers,
        projections=projection_flops(batch, seq_len, dim),
    )


def cache(
    seq_len: int,
    dim: int,
    bytes_per_element: int = 2,
    num_heads: int = 8,
    shared_heads: int = 4,
    top_k: int = 2,
    **_: object,
) -> CacheCost:
    """Every head's keys and values are kept (a later token may route to any head); a new token
    reads only those of its h_s + K active heads."""
    head_dim = check_heads(dim, num_heads)
    check_routing(num_heads, shared_heads, top_k)
    per_head = 2 * seq_len * head_dim * bytes_per_element
    return CacheCost(
        kv_stored=num_heads * per_head, kv_read_per_token=(shared_heads + top_k) * per_head
    )


def build(dim: int, causal: bool = True, **hparams: object) -> MixtureOfHeadAttention:
    return MixtureOfHeadAttention(dim, causal=causal, **hparams)


SPEC = MechanismSpec(
    name="moh",
    kind="sequence",
    description=(
        "Mixture-of-Head attention: shared heads plus per-token top-K routed heads, weighted."
    ),
    paper=(
        "Jin et al., MoH: Multi-Head Attention as Mixture-of-Head Attention, 2024, arXiv:2410.11842"
    ),
    build=build,
    flops=flops,
    flops_exact=False,
    cache=cache,
    # MoH-LLaMA3: 50% of the heads shared, the top 25% of all heads routed (75% active).
    defaults={"num_heads": 8, "shared_heads": 4, "top_k": 2},
    # Routing heads needs several heads, so smoke pins them (MQAR would otherwise force one head):
    # 4 heads of width 16 at d = 64, one shared and the top 2 of 3 routed (75% active, as above).
    # top_k = 1 would make the renormalised routed weight a constant 1, leaving W_r no gradient.
    profile_defaults={"smoke": {"num_heads": 4, "shared_heads": 1, "top_k": 2}},
)
