"""RCMHA: causal depth-wise convolutions on Q, K, V plus Transformer-XL relative scores."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.mechanisms import mha, rcmha


def as_plain_mha(module: rcmha.RelativeConvolutionalAttention) -> None:
    """Identity kernel (1 at the last tap, no bias) and zero relative terms: what is left is mha."""
    with torch.no_grad():
        module.conv.weight.zero_()
        module.conv.weight[:, 0, -1] = 1.0
        module.conv.bias.zero_()
        module.relative_keys.zero_()
        module.u.zero_()
        module.v.zero_()


@pytest.mark.parametrize("num_heads,length", [(1, 1), (1, 9), (4, 13)])
def test_identity_kernel_and_no_relative_terms_is_causal_mha(num_heads, length):
    torch.manual_seed(length)
    module = rcmha.build(16, num_heads=num_heads, max_distance=6)
    dense = mha.build(16, num_heads=num_heads)
    module.proj.load_state_dict(dense.proj.state_dict())
    as_plain_mha(module)
    x = torch.randn(2, length, 16)
    torch.testing.assert_close(module(x), dense(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [1, 3, 4])
def test_depthwise_convolution_is_left_padded_and_per_channel(kernel_size):
    """Explicit sum: c_t = b + sum_m w_m y_{t-(K-1)+m} over the projected y, zero before the
    sequence."""
    torch.manual_seed(kernel_size)
    module = rcmha.build(8, num_heads=2, kernel_size=kernel_size).double()
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    y = F.pad(module.proj.qkv(x), (0, 0, kernel_size - 1, 0))
    weight = module.conv.weight[:, 0]  # (3D, K)
    convolved = module.conv.bias + sum(weight[:, m] * y[:, m : m + 6] for m in range(kernel_size))
    expected = convolved.view(1, 6, 3, 2, 4).permute(2, 0, 3, 1, 4)
    for got, want in zip(module.convolved_qkv(x), expected.unbind(0)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("max_distance", [2, 50])
def test_scores_are_transformer_xl_relative_scores(causal, max_distance):
    """[(q_i + u)^T k_j + (q_i + v)^T r_clip(i-j)] / sqrt(d), from an explicit (L, L) table of
    embeddings."""
    torch.manual_seed(max_distance)
    module = rcmha.build(16, num_heads=2, max_distance=max_distance, causal=causal).double()
    with torch.no_grad():
        module.u.normal_()
        module.v.normal_()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    q, k, v = module.convolved_qkv(x)
    i = torch.arange(9)
    distance = (i[:, None] - i[None, :]).clamp(-max_distance, max_distance)
    r = module.relative_keys[:, distance + max_distance]  # (H, L, L, d)
    scores = (
        (q + module.u) @ k.transpose(-1, -2) + torch.einsum("bhid,hijd->bhij", q + module.v, r)
    ) / 8**0.5
    if causal:
        scores = scores.masked_fill(distance < 0, float("-inf"))
    expected = module.proj.merge(torch.softmax(scores, dim=-1) @ v)
    torch.testing.assert_close(module(x), expected, rtol=1e-10, atol=1e-10)


def test_bidirectional_convolution_sees_the_next_token():
    torch.manual_seed(0)
    module = rcmha.build(8, num_heads=1, causal=False)
    x = torch.randn(1, 5, 8)
    changed = x.clone()
    changed[:, 3] += 1.0
    q_before, q_after = module.convolved_qkv(x)[0], module.convolved_qkv(changed)[0]
    assert not torch.allclose(
        q_before[:, :, 2], q_after[:, :, 2]
    )  # centred kernel: position 2 reads 3
    torch.testing.assert_close(q_before[:, :, :2], q_after[:, :, :2])


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(
    "num_heads,kernel_size,max_distance,length",
    [(1, 3, 4096, 1), (2, 3, 3, 7), (4, 4, 32, 13), (8, 1, 5, 10)],
)
def test_flops_equal_flop_counter(causal, num_heads, kernel_size, max_distance, length):
    hparams = {"num_heads": num_heads, "kernel_size": kernel_size, "max_distance": max_distance}
    module = rcmha.build(32, causal=causal, **hparams)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(torch.randn(3, length, 32))
    assert rcmha.flops(3, length, 32, causal=causal, **hparams).total == counter.get_total_flops()


def test_flops_are_mha_plus_position_term_and_convolution():
    dense = mha.flops(2, 64, 256, num_heads=8)
    cost = rcmha.flops(2, 64, 256, num_heads=8, kernel_size=3, max_distance=16)
    assert cost.attention == dense.attention + 2 * 2 * 64 * 17 * 256  # distances 0..16 causal
    assert cost.projections == dense.projections + 2 * 2 * 64 * 3 * 256 * 3
    assert (
        rcmha.flops(2, 64, 256, max_distance=16, causal=False).attention
        == dense.attention + 2 * 2 * 64 * 33 * 256
    )


def test_cache_is_full_kv_plus_the_convolution_window():
    cost = rcmha.cache(100, 256, bytes_per_element=2, kernel_size=3)
    dense = mha.cache(100, 256, bytes_per_element=2)
    assert (cost.kv_stored, cost.kv_read_per_token) == (dense.kv_stored, dense.kv_read_per_token)
    assert cost.state == 3 * 2 * 256 * 2  # q, k and v inputs of the last K - 1 = 2 tokens
    assert rcmha.cache(100, 256, kernel_size=1).state == 0


@pytest.mark.parametrize("name,value", [("kernel_size", 0), ("max_distance", 0)])
def test_impossible_hyper_parameters(name, value):
    with pytest.raises(ConfigError, match=f"^{name}={value} "):
        rcmha.build(16, num_heads=2, **{name: value})
    with pytest.raises(ConfigError, match=name):
        rcmha.flops(1, 8, 16, num_heads=2, **{name: value})
    with pytest.raises(ConfigError, match=name):
        rcmha.cache(8, 16, **{name: value})
    with pytest.raises(ConfigError, match="num_heads=5"):
        rcmha.build(16, num_heads=5)
