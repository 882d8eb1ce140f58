"""Core Context Aware attention: g = 1 is causal mha, the paper's two branches explicitly, costs
as declared."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.mechanisms import cca, mha


@pytest.mark.parametrize("window", [1, 3, 64])
@pytest.mark.parametrize("num_heads", [1, 2])
def test_groups_of_one_token_are_causal_mha(window, num_heads):
    """With g = 1 each core token is its own key, so every past token is read exactly once, raw or
    pooled; window 64 is the brief's case (the window covers everything, no core tokens at all)."""
    torch.manual_seed(window)
    module = cca.build(16, num_heads=num_heads, group_size=1, window=window)
    dense = mha.build(16, num_heads=num_heads)
    dense.load_state_dict(module.state_dict())
    x = torch.randn(2, 13, 16)
    torch.testing.assert_close(module(x), dense(x), rtol=1e-5, atol=1e-5)


def explicit_cca(module: cca.CoreContextAwareAttention, x: torch.Tensor) -> torch.Tensor:
    """The paper token by token: pool the *inputs* of each group with the last query's significance,
    c_i = s_i X_{G_i}, project the core token, and softmax over [core keys; window keys]."""
    q, k, v = module.proj.split(x)
    batch, heads, length, head_dim = q.shape
    dim, g = heads * head_dim, module.group_size
    weight, bias = module.proj.qkv.weight, module.proj.qkv.bias

    def own_head(
        full: torch.Tensor,
    ) -> torch.Tensor:  # (B, H, D) -> (B, H, d): head h keeps its slice
        return full.view(batch, heads, heads, head_dim).diagonal(dim1=1, dim2=2).transpose(1, 2)

    out = torch.zeros_like(q)
    for t in range(length):
        start = g * (max(t - module.window + 1, 0) // g)
        keys, values = [k[:, :, start : t + 1]], [v[:, :, start : t + 1]]
        for i in range(start // g):
            group = slice(i * g, (i + 1) * g)
            last = q[:, :, (i + 1) * g - 1]
            significance = torch.softmax(
                torch.einsum("bhd,bhgd->bhg", last, k[:, :, group]) / head_dim**0.5, -1
            )
            core = torch.einsum("bhg,bgD->bhD", significance, x[:, group])
            keys.insert(
                0, own_head(core @ weight[dim : 2 * dim].T + bias[dim : 2 * dim]).unsqueeze(2)
            )
            values.insert(0, own_head(core @ weight[2 * dim :].T + bias[2 * dim :]).unsqueeze(2))
        keys, values = torch.cat(keys, 2), torch.cat(values, 2)
        scores = torch.einsum("bhd,bhnd->bhn", q[:, :, t], keys) / head_dim**0.5
        out[:, :, t] = torch.einsum("bhn,bhnd->bhd", torch.softmax(scores, -1), values)
    return module.proj.merge(out)


@pytest.mark.parametrize("group_size,window", [(3, 5), (4, 8), (2, 1), (5, 20)])
def test_equals_the_papers_pooling_and_fused_softmax(group_size, window):
    torch.manual_seed(group_size)
    module = cca.build(16, num_heads=2, group_size=group_size, window=window)
    x = torch.randn(2, 17, 16)
    torch.testing.assert_close(module(x), explicit_cca(module, x), rtol=1e-5, atol=1e-5)


def test_a_core_token_sees_only_its_own_group():
    torch.manual_seed(0)
    module = cca.build(16, num_heads=2, group_size=3).double()
    x = torch.randn(1, 14, 16, dtype=torch.float64)
    base = cca.globality_pooling(*module.proj.split(x), 3)
    for i in range(4):
        for changed_range in (slice(0, 3 * i), slice(3 * (i + 1), 14)):  # before and after group i
            changed = x.clone()
            changed[:, changed_range] = torch.randn_like(changed[:, changed_range])
            moved = cca.globality_pooling(*module.proj.split(changed), 3)
            for before, after in zip(base, moved):
                torch.testing.assert_close(after[:, :, i], before[:, :, i], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("length", [1, 2, 3, 5, 7, 13])
def test_odd_lengths_and_batch_one(length):
    torch.manual_seed(length)
    module = cca.build(24, num_heads=3, group_size=4, window=3)
    x = torch.randn(1, length, 24)
    out = module(x)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out, explicit_cca(module, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "length,group_size,window", [(1, 4, 8), (7, 4, 8), (32, 4, 8), (33, 3, 5), (40, 16, 1)]
)
def test_keys_read_counts_the_mask(length, group_size, window):
    positions = torch.arange(length)
    num_core = length // group_size
    mask = cca.cca_mask_mod(group_size, window, num_core)(
        None, None, positions[:, None], torch.arange(num_core + length)[None, :]
    )
    assert int(mask.sum()) == cca.keys_read(length, group_size, window)


@pytest.mark.parametrize("length", [1, 9, 33])
def test_effective_flops_are_the_masked_share_of_the_measured_dense_flops(length):
    batch, dim, hparams = 2, 16, {"num_heads": 2, "group_size": 4, "window": 8}
    module = cca.build(dim, **hparams)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(torch.randn(batch, length, dim))
    declared = cca.flops(batch, length, dim, **hparams)
    dense_attention = (
        4 * batch * length * (length // 4 + length) * dim
    )  # every query against every key
    assert counter.get_total_flops() == declared.selection + declared.projections + dense_attention
    assert declared.attention <= dense_attention
    assert declared.selection == 6 * batch * (length // 4) * 4 * dim


def test_effective_flops_grow_linearly_past_the_window():
    per_token = [
        cca.flops(1, length, 64, group_size=16, window=1024).attention / length
        for length in (4096, 8192)
    ]
    mha_per_token = [mha.flops(1, length, 64).attention / length for length in (4096, 8192)]
    assert per_token[1] / per_token[0] < 1.3 < mha_per_token[1] / mha_per_token[0]


def test_cache_keeps_core_tokens_and_the_window():
    # 33 tokens, g = 4, s = 8: the last query's window starts at 24, so 6 core tokens and 9 raw
    # tokens.
    cost = cca.cache(33, 64, bytes_per_element=2, group_size=4, window=8)
    assert cost.kv_stored == cost.kv_read_per_token == 2 * (6 + 9) * 64 * 2 and cost.state == 0
    assert cca.cache(33, 64, group_size=1, window=64) == mha.cache(33, 64)
    assert (
        cca.cache(4096, 64, group_size=16, window=1024).kv_stored
        < mha.cache(4096, 64).kv_stored / 2
    )


@pytest.mark.parametrize(
    "bad,name",
    [
        ({"group_size": 0}, "group_size"),
        ({"window": 0}, "window"),
        ({"num_heads": 5}, "num_heads"),
        ({"causal": False}, "causal only"),
    ],
)
def test_impossible_hyperparameters_are_config_errors(bad, name):
    with pytest.raises(ConfigError, match=name):
        cca.build(16, **bad)
