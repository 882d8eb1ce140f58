"""Mixture-of-Head attention: routing, the mha equivalence, causality, declared costs."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.mechanisms import mha, moh
from attnbench.registry import SUITES
from attnbench.run.planning import cell_hparams


def flat_routers(module: moh.MixtureOfHeadAttention) -> None:
    for router in (module.w_r, module.w_h, module.w_s):
        if router is not None:
            torch.nn.init.zeros_(router.weight)


@pytest.mark.parametrize(
    "num_heads,shared_heads,top_k", [(4, 2, 2), (4, 0, 4), (4, 4, 0), (4, 1, 3), (1, 1, 0)]
)
@pytest.mark.parametrize("causal", [True, False])
def test_all_heads_active_with_equal_weights_is_mha(num_heads, shared_heads, top_k, causal):
    torch.manual_seed(0)
    mixture = moh.build(
        32, causal=causal, num_heads=num_heads, shared_heads=shared_heads, top_k=top_k
    )
    dense = mha.build(32, causal=causal, num_heads=num_heads)
    mixture.proj.load_state_dict(dense.proj.state_dict())
    flat_routers(mixture)
    x = torch.randn(2, 11, 32)
    torch.testing.assert_close(
        mixture.head_gates(x), torch.ones(2, 11, num_heads), rtol=1e-6, atol=1e-6
    )
    torch.testing.assert_close(mixture(x), dense(x), rtol=1e-5, atol=1e-5)


def explicit_moh(module: moh.MixtureOfHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """Token by token, as the paper writes it: g_i = a1 softmax(W_s x)_i for shared heads,
    a2 softmax(W_r x)_i (renormalised over the top K, times K) for chosen routed heads, else 0."""
    q, k, v = module.proj.split(x)
    length, h_s, top_k = x.shape[1], module.shared_heads, module.top_k
    allowed = torch.ones(length, length, dtype=torch.bool).tril()
    scores = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).masked_fill(~allowed, float("-inf"))
    heads = torch.softmax(scores, dim=-1) @ v  # (B, h, L, d)
    out = torch.zeros_like(heads)
    for b in range(x.shape[0]):
        for t in range(length):
            xt = x[b, t]
            a1, a2 = (torch.softmax(module.w_h(xt), dim=-1) * 2).tolist()
            shared = torch.softmax(module.w_s(xt), dim=-1) * h_s
            routed = torch.softmax(module.w_r(xt), dim=-1)
            chosen = routed.topk(top_k).indices
            for i in range(h_s):
                out[b, i, t] = a1 * shared[i] * heads[b, i, t]
            for j in chosen.tolist():
                out[b, h_s + j, t] = (
                    a2 * routed[j] / routed[chosen].sum() * top_k * heads[b, h_s + j, t]
                )
    return module.proj.merge(out)


def test_output_is_the_gated_sum_of_active_heads():
    torch.manual_seed(1)
    module = moh.build(32, num_heads=8, shared_heads=3, top_k=2)
    x = torch.randn(2, 9, 32)
    torch.testing.assert_close(module(x), explicit_moh(module, x), rtol=1e-5, atol=1e-5)


def test_each_token_activates_the_shared_heads_and_exactly_top_k_routed_heads():
    torch.manual_seed(2)
    module = moh.build(32, num_heads=8, shared_heads=2, top_k=3)
    gates = module.head_gates(torch.randn(3, 13, 32))
    assert (gates[..., :2] > 0).all()
    assert ((gates[..., 2:] > 0).sum(-1) == 3).all()
    # two-stage weights: the shared group sums to 2 a1 h_s, the routed one to 2 a2 K, and a1 + a2 =
    # 1
    assert torch.allclose(
        gates[..., :2].sum(-1) / 2 + gates[..., 2:].sum(-1) / 3, torch.full((3, 13), 2.0)
    )


def test_a_head_routed_off_does_not_contribute():
    torch.manual_seed(3)
    dim, num_heads = 16, 4
    module = moh.build(dim, num_heads=num_heads, shared_heads=1, top_k=1)
    x = torch.randn(1, 6, dim)
    gates = module.head_gates(x)
    _, token, head = (gates == 0).nonzero()[0].tolist()
    before = module(x)
    head_dim = dim // num_heads
    with torch.no_grad():  # change only that head's values
        module.proj.qkv.weight[2 * dim + head * head_dim : 2 * dim + (head + 1) * head_dim] += 1.0
    after = module(x)
    torch.testing.assert_close(after[0, token], before[0, token], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(after, before)


@pytest.mark.parametrize("causal", [True, False])
def test_effective_flops_are_the_active_share_of_the_dense_reference(causal):
    torch.manual_seed(6)
    hparams = {"num_heads": 8, "shared_heads": 3, "top_k": 2}
    batch, length, dim = 2, 17, 32
    module = moh.build(dim, causal=causal, **hparams)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(torch.randn(batch, length, dim))
    declared = moh.flops(batch, length, dim, causal=causal, **hparams)
    dense = mha.flops(batch, length, dim, causal=causal, num_heads=8)
    assert declared.selection == 2 * batch * length * dim * (5 + 2 + 3)  # W_r, W_h, W_s
    assert declared.projections == dense.projections
    assert declared.attention * 8 == dense.attention * (3 + 2)
    assert (
        counter.get_total_flops() == dense.total + declared.selection
    )  # the reference computes every head
    assert declared.total < counter.get_total_flops()
    assert not moh.SPEC.flops_exact


def test_flops_with_every_head_active_and_no_routers_equal_mha():
    assert moh.flops(2, 10, 32, num_heads=1, shared_heads=1, top_k=0) == mha.flops(
        2, 10, 32, num_heads=1
    )
    for shared_heads, top_k in ((4, 0), (0, 4), (2, 2)):
        declared = moh.flops(2, 10, 32, num_heads=4, shared_heads=shared_heads, top_k=top_k)
        assert declared.attention == mha.flops(2, 10, 32, num_heads=4).attention


def test_cache_keeps_every_head_and_reads_the_active_ones():
    cost = moh.cache(100, 64, bytes_per_element=2, num_heads=8, shared_heads=4, top_k=2)
    assert cost.kv_stored == 2 * 100 * 64 * 2 == mha.cache(100, 64).kv_stored
    assert cost.kv_read_per_token == cost.kv_stored * 6 // 8
    assert cost.state == 0


def test_load_balancing_loss_is_top_k_for_a_flat_router():
    torch.manual_seed(7)
    module = moh.build(16, num_heads=4, shared_heads=1, top_k=2).train()
    flat_routers(module)
    module(torch.randn(2, 5, 16))
    torch.testing.assert_close(module.load_balancing_loss, torch.tensor(2.0))


@pytest.mark.parametrize(
    "hparams,name",
    [
        ({"num_heads": 4, "shared_heads": 5, "top_k": 0}, "shared_heads=5"),
        ({"num_heads": 4, "shared_heads": 2, "top_k": 3}, "top_k=3"),
        ({"num_heads": 4, "shared_heads": 2, "top_k": 0}, "top_k=0"),
        ({"num_heads": 4, "shared_heads": 4, "top_k": 1}, "top_k=1"),
        ({"num_heads": 5, "shared_heads": 1, "top_k": 1}, "num_heads=5"),
    ],
)
def test_impossible_hyper_parameters_are_clear_errors(hparams, name):
    with pytest.raises(ConfigError, match=name):
        moh.build(32, **hparams)
    with pytest.raises(ConfigError, match=name):
        moh.flops(1, 8, 32, **hparams)


def test_smoke_pins_several_heads_against_mqars_single_head():
    hparams = cell_hparams(moh.SPEC, SUITES.get("mqar"), "smoke", {})
    assert hparams == {"num_heads": 4, "shared_heads": 1, "top_k": 2}
