"""Analytic FLOPs against torch.utils.flop_counter.FlopCounterMode on SDPA's math path."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from attnbench.mechanisms import linear, mha, sliding_window
from attnbench.toolkit.lm import LMConfig, MixerLM, forward_flops, training_step_flops


def measured(fn) -> int:
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("batch,length,dim,heads", [(1, 7, 16, 1), (2, 33, 32, 4), (3, 64, 48, 8)])
@pytest.mark.parametrize("causal", [True, False])
def test_mha_flops_equal_flop_counter(batch, length, dim, heads, causal):
    module = mha.build(dim, causal=causal, num_heads=heads)
    x = torch.randn(batch, length, dim)
    declared = mha.flops(batch, length, dim, num_heads=heads, causal=causal)
    assert measured(lambda: module(x)) == declared.total
    assert declared.attention == 4 * batch * length * length * dim
    assert declared.projections == 8 * batch * length * dim * dim


@pytest.mark.parametrize(
    "batch,length,dim,heads,chunk", [(1, 7, 16, 1, 64), (2, 33, 32, 4, 8), (2, 64, 32, 2, 16)]
)
@pytest.mark.parametrize("causal", [True, False])
def test_linear_flops_equal_flop_counter(batch, length, dim, heads, chunk, causal):
    module = linear.build(dim, causal=causal, num_heads=heads, chunk_size=chunk)
    x = torch.randn(batch, length, dim)
    declared = linear.flops(batch, length, dim, num_heads=heads, chunk_size=chunk, causal=causal)
    assert measured(lambda: module(x)) == declared.total


def test_sliding_window_declares_banded_work():
    batch, length, dim = 2, 40, 32
    full = mha.flops(batch, length, dim, num_heads=4)
    wide = sliding_window.flops(batch, length, dim, window=length, num_heads=4)
    narrow = sliding_window.flops(batch, length, dim, window=8, num_heads=4)
    assert wide == full
    assert narrow.attention == 4 * batch * length * 8 * dim
    assert narrow.projections == full.projections
    bidirectional = sliding_window.flops(batch, length, dim, window=8, num_heads=4, causal=False)
    assert bidirectional.attention == 4 * batch * length * 15 * dim
    module = sliding_window.build(dim, window=8, num_heads=4)
    dense_measured = measured(lambda: module(torch.randn(batch, length, dim)))
    assert dense_measured == full.total  # the masked reference does the dense work


@pytest.mark.parametrize("mlp", [False, True])
def test_training_step_flops_equal_flop_counter_for_dense_model(mlp):
    config = LMConfig(vocab_size=50, seq_len=24, d_model=32, n_layers=2, mlp=mlp)
    hparams = {"num_heads": 2}
    model = MixerLM(config, mha.SPEC, hparams)
    tokens = torch.randint(0, 50, (3, 24))

    def step():
        logits = model(tokens)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()

    assert measured(step) == training_step_flops(config, mha.SPEC, hparams, batch=3)
    assert (
        measured(lambda: model(tokens))
        == forward_flops(config, mha.SPEC, hparams, batch=3)["total"]
    )


def test_short_conv_model_flops_equal_flop_counter():
    config = LMConfig(
        vocab_size=50, seq_len=24, d_model=32, n_layers=2, mlp=True, positions="none", short_conv=4
    )
    hparams = {"num_heads": 2}
    model = MixerLM(config, mha.SPEC, hparams)
    tokens = torch.randint(0, 50, (3, 24))
    declared = forward_flops(config, mha.SPEC, hparams, batch=3)
    assert declared["short_conv"] == 2 * 3 * 24 * 32 * 4 * 2
    assert measured(lambda: model(tokens)) == declared["total"]
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(tokens).flatten(0, 1), tokens.flatten()).backward()
    # FlopCounterMode's convolution_backward formula ignores `groups` and counts a depth-wise kernel
    # as a dense one (torch 2.13); the true backward of a convolution is twice its forward.
    conv_backward = sum(
        n
        for op, n in counter.get_flop_counts()["Global"].items()
        if "convolution_backward" in str(op)
    )
    assert counter.get_total_flops() - conv_backward + 2 * declared[
        "short_conv"
    ] == training_step_flops(config, mha.SPEC, hparams, batch=3)


def test_flops_at_another_length_equal_flop_counter():
    """The needle suite trains at one length and evaluates at others: FLOPs follow the actual
    length."""
    config = LMConfig(
        vocab_size=50, seq_len=24, d_model=32, positions="none", short_conv=3, mlp=True
    )
    model = MixerLM(config, mha.SPEC, {"num_heads": 2})
    tokens = torch.randint(0, 50, (2, 41))
    assert (
        measured(lambda: model(tokens))
        == forward_flops(config, mha.SPEC, {"num_heads": 2}, 2, seq_len=41)["total"]
    )


def test_learned_positions_refuse_longer_inputs():
    model = MixerLM(LMConfig(vocab_size=10, seq_len=8, d_model=16), mha.SPEC, {"num_heads": 1})
    with pytest.raises(ValueError, match="exceed the 8 learned positions"):
        model(torch.zeros(1, 9, dtype=torch.long))
