"""Multi-head latent attention: absorbed = expanded form, only the latent is cached, costs as
declared."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.mechanisms import mha, mla
from tests.mechanisms.leak import assert_no_causal_leak

EXPLICIT = {"kv_lora_rank": 12, "qk_rope_head_dim": 6, "qk_nope_head_dim": 5, "v_head_dim": 7}


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(
    "hparams",
    [{"num_heads": 1}, {"num_heads": 4}, {"num_heads": 3, **EXPLICIT}],
    ids=["one_head", "four_heads", "explicit_widths"],
)
def test_absorbed_form_equals_expand_then_attend(causal, hparams):
    torch.manual_seed(0)
    module = mla.build(48, causal=causal, **hparams)
    x = torch.randn(2, 13, 48)
    torch.testing.assert_close(module.forward_absorbed(x), module(x), rtol=1e-5, atol=1e-5)


def test_absorbed_form_attends_over_the_cache_alone():
    """Decoding the last token from the cached (c, k^R) of all tokens gives the training output
    there."""
    torch.manual_seed(1)
    module = mla.build(32, num_heads=4).double()
    x = torch.randn(1, 9, 32, dtype=torch.float64)
    n = module.dims
    c, k_r = module.latent(x)
    q_c, q_r = module.queries(x)
    q = torch.cat(
        [q_c[:, :, -1:] @ module.w_uk.weight.view(n.heads, n.nope, n.rank), q_r[:, :, -1:]], dim=-1
    )
    cached = torch.cat([c, k_r], dim=-1)  # (1, L, d_c + d_h^R): the whole per-layer cache
    weights = torch.softmax((q @ cached.transpose(-1, -2).unsqueeze(1)) * module.scale, dim=-1)
    heads = (weights @ c.unsqueeze(1)) @ module.w_uv.weight.view(
        n.heads, n.value, n.rank
    ).transpose(-1, -2)
    torch.testing.assert_close(
        module.output(heads)[:, -1], module(x)[:, -1], rtol=1e-10, atol=1e-10
    )


def test_with_full_rank_identity_latent_and_no_rope_it_is_mha():
    """The algebra of MECHANISMS.md: r = D, W^DKV = I, no latent norm, zero RoPE key, W^UK = W_K,
    W^UV = W_V."""
    torch.manual_seed(2)
    dim, num_heads, head_dim, rope = 16, 2, 8, 4
    dense = mha.build(dim, num_heads=num_heads, bias=False)
    latent = mla.build(
        dim,
        num_heads=num_heads,
        kv_lora_rank=dim,
        qk_rope_head_dim=rope,
        qk_nope_head_dim=head_dim,
        v_head_dim=head_dim,
    )
    w_q, w_k, w_v = dense.proj.qkv.weight.detach().split(dim)
    latent.kv_norm = nn.Identity()
    with torch.no_grad():
        latent.w_dkv.weight.copy_(torch.eye(dim))
        latent.w_kr.weight.zero_()
        latent.w_q.weight.copy_(
            w_q * ((head_dim + rope) / head_dim) ** 0.5
        )  # undo MLA's wider score scale
        latent.w_uk.weight.copy_(w_k)
        latent.w_uv.weight.copy_(w_v)
        latent.w_o.weight.copy_(dense.proj.out_proj.weight)
    x = torch.randn(2, 10, dim)
    torch.testing.assert_close(latent(x), dense(x), rtol=1e-5, atol=1e-5)


def test_cache_holds_the_latent_and_shared_rope_key_per_token():
    module = mla.build(64, num_heads=4, **EXPLICIT)
    c, k_r = module.latent(torch.randn(1, 11, 64))
    cost = mla.cache(11, 64, bytes_per_element=4, num_heads=4, **EXPLICIT)
    assert cost.kv_stored == (c.numel() + k_r.numel()) * 4 == 11 * (12 + 6) * 4
    assert cost.kv_read_per_token == cost.kv_stored and cost.state == 0


def test_cache_at_scaled_defaults_against_mha():
    dims = mla.latent_dims(2048, num_heads=32)  # Llama-3.2-1B's width and heads
    assert (dims.rank, dims.rope, dims.nope, dims.value) == (512, 32, 32, 64)
    cost = mla.cache(1000, 2048, bytes_per_element=2, num_heads=32)
    assert cost.kv_stored == 1000 * (512 + 32) * 2
    assert (
        mha.cache(1000, 2048).kv_stored == cost.kv_stored * 4096 // 544
    )  # 2 H d_h vs d_c + d_h^R per token


def test_smoke_cache_matches_gqa_smoke_and_halves_mha():
    from attnbench.mechanisms import gqa
    from attnbench.registry import SUITES
    from attnbench.run.planning import cell_hparams

    mqar = SUITES.get("mqar")
    hparams = cell_hparams(mla.SPEC, mqar, "smoke", {})
    assert hparams["num_heads"] == 1 and hparams["kv_lora_rank"] == 32
    dims = mla.latent_dims(64, **hparams)  # one head of 64: d_h^R = d_nope = 32, d_v = 64
    assert (dims.rank, dims.rope, dims.nope, dims.value) == (32, 32, 32, 64)
    cost = mla.cache(32, 64, **hparams)
    assert cost == gqa.cache(32, 64, **cell_hparams(gqa.SPEC, mqar, "smoke", {}))
    assert 2 * cost.kv_stored == mha.cache(32, 64).kv_stored


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(
    "dim,hparams,length",
    [(32, {"num_heads": 1}, 1), (32, {"num_heads": 4}, 7), (48, {"num_heads": 3, **EXPLICIT}, 13)],
)
def test_flops_equal_flop_counter(causal, dim, hparams, length):
    module = mla.build(dim, causal=causal, **hparams)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(torch.randn(2, length, dim))
    assert mla.flops(2, length, dim, causal=causal, **hparams).total == counter.get_total_flops()


def test_flops_formula():
    n = mla.latent_dims(48, num_heads=3, **EXPLICIT)
    declared = mla.flops(2, 10, 48, num_heads=3, **EXPLICIT)
    assert declared.attention == 2 * 2 * 3 * 10 * 10 * (n.nope + n.rope + n.value)
    per_token = 48 * (12 + 6) + 12 * 3 * (5 + 7) + 48 * 3 * (5 + 6) + 3 * 7 * 48
    assert declared.projections == 2 * 2 * 10 * per_token


def test_no_causal_leak_in_the_absorbed_form():
    """Conformance checks `forward`; the decoding form with W_UK absorbed into the query must not
    leak either."""
    torch.manual_seed(0)
    module = mla.build(32, num_heads=4).double()
    assert_no_causal_leak(
        module.forward_absorbed, torch.randn(1, 12, 32, dtype=torch.float64), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_lone_token_gives_the_scores_no_gradient(dtype):
    """At L = 1 a token attends only to itself: no gradient reaches the query/key side, every
    other weight learns."""
    module = mla.build(24, num_heads=3).to(dtype)
    module(torch.randn(1, 1, 24, dtype=dtype)).square().sum().backward()
    scoring = {"w_q.weight", "w_qr.weight", "w_uk.weight", "w_kr.weight"}
    assert all(
        p.grad is not None and (p.grad.abs().sum() > 0) != (name in scoring)
        for name, p in module.named_parameters()
    )


@pytest.mark.parametrize(
    "hparams,name",
    [
        ({"qk_rope_head_dim": 5}, "qk_rope_head_dim=5"),
        ({"qk_rope_head_dim": 0}, "qk_rope_head_dim=0"),
        ({"kv_lora_rank": 0}, "kv_lora_rank=0"),
        ({"qk_nope_head_dim": 0}, "qk_nope_head_dim=0"),
        ({"v_head_dim": -1}, "v_head_dim=-1"),
        ({"num_heads": 5}, "num_heads=5"),
    ],
)
def test_impossible_widths_are_clear_errors(hparams, name):
    with pytest.raises(ConfigError, match=f"^{name} "):
        mla.build(32, **hparams)
    with pytest.raises(ConfigError, match=f"^{name} "):
        mla.flops(1, 4, 32, **hparams)
