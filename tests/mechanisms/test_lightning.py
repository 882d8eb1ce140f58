"""Lightning attention: blockwise decayed linear attention, against linear, the recurrence and
the dense mask."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.mechanisms import lightning, linear
from attnbench.mechanisms.lightning import alibi_slopes, lightning_attention

AS_LINEAR = {
    "feature": "elu1",
    "normalize": True,
    "decay": False,
    "output_norm": False,
    "output_gate": False,
}


def recurrent(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slopes: torch.Tensor
) -> torch.Tensor:
    """Token by token: S_t = lambda S_{t-1} + k_t v_t^T, out_t = q_t S_t, lambda = exp(-s) per
    head."""
    decay = torch.exp(-slopes).view(1, -1, 1, 1)
    state = q.new_zeros(q.shape[0], q.shape[1], q.shape[-1], v.shape[-1])
    out = []
    for t in range(q.shape[2]):
        state = decay * state + k[:, :, t, :, None] * v[:, :, t, None, :]
        out.append((q[:, :, t, None, :] @ state).squeeze(2))
    return torch.stack(out, dim=2)


@pytest.mark.parametrize(
    "num_heads,length,block_size,chunk_size",
    [(1, 1, 8, 4), (1, 13, 4, 4), (2, 33, 8, 5), (4, 20, 64, 64)],
)
def test_same_feature_map_normaliser_and_no_decay_is_linear(
    num_heads, length, block_size, chunk_size
):
    torch.manual_seed(length)
    blocks = lightning.build(16, num_heads=num_heads, block_size=block_size, **AS_LINEAR)
    reference = linear.build(16, num_heads=num_heads, chunk_size=chunk_size)
    reference.load_state_dict(blocks.state_dict())  # the same projections, nothing else
    x = torch.randn(2, length, 16)
    torch.testing.assert_close(blocks(x), reference(x), rtol=1e-5, atol=1e-5)


def test_no_decay_core_with_ones_column_is_linear_cumsum_form():
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 19, 8, generator=generator) for _ in range(3))
    out = lightning_attention(
        linear.feature_map(q),
        linear.feature_map(k),
        linear.with_ones_column(v),
        torch.zeros(3),
        block_size=4,
    )
    expected = linear.linear_attention_cumsum(q, k, v)
    torch.testing.assert_close(
        out[..., :8] / (out[..., 8:] + linear.EPS), expected, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("length,block_size", [(1, 4), (7, 4), (16, 4), (19, 8), (10, 64), (9, 1)])
def test_decayed_blocks_equal_the_step_by_step_recurrence(length, block_size):
    generator = torch.Generator().manual_seed(length)
    q, k, v = (torch.randn(2, 4, length, 6, generator=generator) for _ in range(3))
    slopes = torch.tensor([0.5, 0.1, 0.01, 0.0])  # one head without decay
    torch.testing.assert_close(
        lightning_attention(q, k, v, slopes, block_size),
        recurrent(q, k, v, slopes),
        rtol=1e-5,
        atol=1e-5,
    )


def test_decayed_blocks_equal_the_dense_decay_mask():
    """The official torch reference: [(Q K^T) ⊙ M] V with M_ij = lambda^(i-j) below the diagonal,
    all L x L."""
    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 21, 4, generator=generator) for _ in range(3))
    slopes = torch.tensor([0.3, 0.05])
    i = torch.arange(21.0)
    distance = i[:, None] - i[None, :]
    mask = torch.where(distance >= 0, torch.exp(-slopes.view(2, 1, 1) * distance.clamp(min=0)), 0.0)
    torch.testing.assert_close(
        lightning_attention(q, k, v, slopes, 8),
        ((q @ k.transpose(-1, -2)) * mask) @ v,
        rtol=1e-5,
        atol=1e-5,
    )


def test_module_is_transnormer_attention():
    """SiLU on q, k, v; ALiBi decay; SimpleRMSNorm; sigmoid gate through a head-wide bottleneck;
    output projection."""
    torch.manual_seed(0)
    module = lightning.build(16, num_heads=2, block_size=4)
    x = torch.randn(2, 11, 16)
    q, k, v = (F.silu(t) for t in module.proj.split(x))
    heads = recurrent(q, k, v, alibi_slopes(2)).transpose(1, 2).reshape(2, 11, 16)
    normed = heads / heads.square().mean(-1, keepdim=True).add(1e-6).sqrt()
    gate = torch.sigmoid(module.gate[1](module.gate[0](x)))
    assert module.gate[0].out_features == 8
    torch.testing.assert_close(module(x), module.proj.out_proj(normed * gate), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("block_size", [1, 3, 8])
def test_block_size_changes_the_schedule_not_the_result(block_size):
    torch.manual_seed(0)
    module = lightning.build(16, num_heads=4, block_size=64)
    tiled = lightning.build(16, num_heads=4, block_size=block_size)
    tiled.load_state_dict(module.state_dict())
    x = torch.randn(2, 17, 16)
    torch.testing.assert_close(tiled(x), module(x), rtol=1e-5, atol=1e-5)


def test_no_cumsum_over_the_sequence(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("cumsum called")

    monkeypatch.setattr(torch, "cumsum", refuse)
    monkeypatch.setattr(torch.Tensor, "cumsum", refuse)
    lightning.build(16, num_heads=2, block_size=4)(torch.randn(1, 10, 16))


def test_alibi_slopes():
    assert alibi_slopes(8).tolist() == [2.0**-h for h in range(1, 9)]
    assert alibi_slopes(1).tolist() == [2.0**-8]
    assert alibi_slopes(6).tolist() == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]


@pytest.mark.parametrize(
    "hparams,length",
    [
        ({}, 1),
        ({}, 7),
        ({"block_size": 4}, 16),
        ({"block_size": 4}, 19),
        ({"block_size": 5, **AS_LINEAR}, 13),
        ({"num_heads": 1, "block_size": 8, "normalize": True}, 33),
    ],
)
def test_flops_equal_flop_counter(hparams, length):
    hparams = {"num_heads": 4, **hparams}
    module = lightning.build(32, **hparams)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.randn(3, length, 32))
    assert lightning.flops(3, length, 32, **hparams).total == counter.get_total_flops()


def test_flops_formula():
    cost = lightning.flops(
        2, 100, 64, num_heads=4, block_size=32
    )  # blocks 32, 32, 32, 4; d = e = 16
    intra = 64 * (3 * 32 * 32 + 4 * 4)
    inter = 2 * 16 * 16 * (100 - 32) + 2 * 16 * 16 * (100 - 4)
    assert cost.attention == 2 * 4 * (intra + inter)
    assert cost.selection == 4 * 2 * 100 * 64 * 16  # the gate: D -> d -> D
    assert lightning.flops(2, 100, 64, num_heads=4, output_gate=False).selection == 0


def test_cache_is_one_state_per_head():
    cost = lightning.cache(1000, 256, bytes_per_element=2, num_heads=8)
    assert cost.kv_stored == 0 and cost.state == cost.kv_read_per_token == 8 * 32 * 32 * 2
    assert lightning.cache(10, 256, num_heads=8) == cost  # independent of the length
    assert lightning.cache(10, 256, num_heads=8, normalize=True).state == 8 * 32 * 33 * 2


@pytest.mark.parametrize(
    "hparams,message",
    [
        ({"block_size": 0}, "^block_size=0 "),
        ({"feature": "relu"}, "^feature='relu' "),
        ({"num_heads": 5}, "num_heads=5"),
    ],
)
def test_impossible_hyper_parameters(hparams, message):
    with pytest.raises(ConfigError, match=message):
        lightning.build(16, **hparams)
    with pytest.raises(ConfigError, match=message):
        lightning.flops(1, 8, 16, **hparams)


def test_causal_only():
    with pytest.raises(ConfigError, match="causal only"):
        lightning.build(16, causal=False)
    assert not lightning.SPEC.supports_bidirectional
