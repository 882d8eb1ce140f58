"""AllMem: the banded window against its mask and `sliding_window`, the chunked memory against a
token loop, causality, gradients, costs as declared."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.mechanisms import allmem, sliding_window
from attnbench.mechanisms.allmem import allmem_mask_mod, windowed_attention
from attnbench.mechanisms.titans_mac import memory_read

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


def dense_mask(mask_mod, length: int) -> torch.Tensor:
    positions = torch.arange(length)
    return mask_mod(None, None, positions[:, None], positions[None, :])


@pytest.mark.parametrize(
    "length,window,chunk", [(1, 8, 8), (7, 3, 4), (17, 5, 4), (33, 8, 8), (20, 64, 6), (9, 1, 3)]
)
def test_banded_window_equals_dense_masked_attention(length, window, chunk):
    generator = torch.Generator().manual_seed(length)
    q, k, v = (torch.randn(2, 3, length, 4, generator=generator) for _ in range(3))
    expected = F.scaled_dot_product_attention(
        q, k, v, attn_mask=dense_mask(allmem_mask_mod(window, chunk), length)
    )
    torch.testing.assert_close(
        windowed_attention(q, k, v, window, min(chunk, length)), expected, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("window", [1, 4, 16])
def test_chunks_of_one_token_are_sliding_window_attention(window):
    assert torch.equal(
        dense_mask(allmem_mask_mod(window, 1), 23),
        dense_mask(sliding_window.window_mask_mod(window, True), 23),
    )
    torch.manual_seed(window)
    reference = sliding_window.build(16, window=window, num_heads=2)
    x = torch.randn(2, 23, 16)
    q, k, v = reference.proj.split(x)
    torch.testing.assert_close(
        reference.proj.merge(windowed_attention(q, k, v, window, 1)),
        reference(x),
        rtol=1e-5,
        atol=1e-5,
    )


def test_every_past_token_is_read_once_raw_or_from_memory():
    """Query t's window starts at c C - w + 1 and its memory holds exactly the tokens before
    that."""
    window, chunk, length = 5, 4, 30
    mask = dense_mask(allmem_mask_mod(window, chunk), length)
    for t in range(length):
        start = max(chunk * (t // chunk) - window + 1, 0)
        assert mask[t].nonzero().flatten().tolist() == list(range(start, t + 1))
        assert window <= t + 1 - start <= window + chunk - 1 or start == 0


def autograd_surprise(
    w1: torch.Tensor, w2: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """grad of ||M(k) - v||^2 with respect to (W1, W2), per batch element and head, by autograd."""
    with torch.enable_grad():
        w1, w2 = w1.detach().requires_grad_(), w2.detach().requires_grad_()
        loss = (memory_read(w1, w2, k.unsqueeze(2)).squeeze(2) - v).square().sum()
        return torch.autograd.grad(loss, (w1, w2))


@torch.no_grad()
def explicit_allmem(module: allmem.AllMem, x: torch.Tensor) -> torch.Tensor:
    """Token by token: query t of chunk c attends over tokens c C - w + 1 .. t; at each chunk start
    the tokens that left the window since the last one are written by one gradient step, every
    token's gradient taken at the memory the step starts from (TTT's mini-batch), one token at a
    time; the per-channel gate fuses the two.
    """
    batch, length, _ = x.shape
    chunk, window = min(module.chunk_size, length), module.window
    q, k, v = module.proj.split(x)
    memory_q, memory_k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    theta = module.max_lr * torch.sigmoid(module.step(x))
    gate = torch.sigmoid(module.gate(x)).view(batch, length, module.proj.num_heads, -1)
    w1, w2 = module.w1.expand(batch, -1, -1, -1), module.w2.expand(batch, -1, -1, -1)
    written = 0
    out = torch.zeros_like(q)
    for t in range(length):
        start = max(chunk * (t // chunk) - window + 1, 0)
        if t % chunk == 0:
            frozen = (w1, w2)
            for j in range(written, start):
                u1, u2 = autograd_surprise(*frozen, memory_k[:, :, j], v[:, :, j])
                step = theta[:, j, :, None, None]
                w1, w2 = w1 - step * u1, w2 - step * u2
            written = start
        scores = (
            torch.einsum("bhd,bhnd->bhn", q[:, :, t], k[:, :, start : t + 1]) / q.shape[-1] ** 0.5
        )
        attended = torch.einsum(
            "bhn,bhnd->bhd", torch.softmax(scores, dim=-1), v[:, :, start : t + 1]
        )
        recalled = memory_read(w1, w2, memory_q[:, :, t, None])[:, :, 0]
        out[:, :, t] = gate[:, t] * attended + (1 - gate[:, t]) * recalled
    return module.proj.merge(out)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "length,window,chunk_size,num_heads",
    [(1, 8, 8, 1), (19, 3, 4, 2), (32, 8, 8, 1), (14, 5, 1, 4), (21, 2, 6, 2), (12, 40, 4, 2)],
)
def test_chunked_memory_equals_the_token_loop(dtype, length, window, chunk_size, num_heads):
    torch.manual_seed(length + window)
    module = allmem.build(
        16,
        num_heads=num_heads,
        window=window,
        chunk_size=chunk_size,
        memory_expansion=2,
        max_lr=0.5,
    ).to(dtype)
    x = torch.randn(2, length, 16, dtype=dtype)
    torch.testing.assert_close(
        module(x), explicit_allmem(module, x), rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype]
    )


def test_the_memory_holds_only_what_left_the_window():
    torch.manual_seed(0)
    module = allmem.build(16, num_heads=2, window=5, chunk_size=4).double()
    q, k, v = (torch.randn(1, 2, 22, 8, dtype=torch.float64) for _ in range(3))
    theta = torch.rand(1, 2, 22, dtype=torch.float64)
    base = module.recall(q, k, v, theta, 4)
    for t in range(22):
        start = max(4 * (t // 4) - 5 + 1, 0)
        moved_k, moved_v, moved_theta = k.clone(), v.clone(), theta.clone()
        moved_k[:, :, start:], moved_v[:, :, start:], moved_theta[:, :, start:] = 0.0, 0.0, 0.5
        torch.testing.assert_close(
            module.recall(q, moved_k, moved_v, moved_theta, 4)[:, :, t],
            base[:, :, t],
            rtol=1e-12,
            atol=1e-12,
        )
        if start:  # and it does hold them
            assert not torch.allclose(module.recall(q, 0 * k, v, theta, 4)[:, :, t], base[:, :, t])


def test_every_parameter_learns_the_step_size_included():
    torch.manual_seed(3)
    module = allmem.build(16, num_heads=2, window=4, chunk_size=4)
    module(torch.randn(2, 13, 16)).square().sum().backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("length", [1, 2, 3, 7, 11])
def test_odd_lengths_and_batch_one(length):
    torch.manual_seed(length)
    module = allmem.build(24, num_heads=3, window=3, chunk_size=4)
    x = torch.randn(1, length, 24)
    out = module(x)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out, explicit_allmem(module, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "length,hparams",
    [
        (1, {}),
        (7, {}),
        (33, {}),
        (33, {"window": 1, "chunk_size": 1}),
        (20, {"window": 64, "memory_expansion": 3}),
        (32, {"window": 8}),
    ],
)
def test_flops_equal_flop_counter(length, hparams):
    batch, dim = 2, 16
    hparams = {"num_heads": 2, "window": 5, "chunk_size": 4, **hparams}
    module = allmem.build(dim, **hparams)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(torch.randn(batch, length, dim))
    assert allmem.flops(batch, length, dim, **hparams).total == counter.get_total_flops()


def test_flop_breakdown():
    # 32 tokens, w 8, C 8, D 16, 2 heads of width 8, hidden 8: bands of 8 + 7 keys, 17 tokens
    # written
    cost = allmem.flops(1, 32, 16, num_heads=2, window=8, chunk_size=8, memory_expansion=1)
    assert cost.attention == 4 * 32 * 15 * 16 + 4 * 32 * 16 * 8
    assert cost.selection == 10 * 17 * 16 * 8 + 2 * 32 * 16 * (2 + 16)
    assert cost.projections == 8 * 32 * 16 * 16
    long = [allmem.flops(1, n, 256, window=4096).attention for n in (16384, 32768)]
    assert 1.9 < long[1] / long[0] < 2.1  # linear past the window, unlike mha


def test_cache_is_the_window_band_and_the_memory():
    # 21 tokens, w 8, C 4: the next query (position 21, chunk 5) reads tokens 13..21, its own slot
    # included
    cost = allmem.cache(
        21, 64, bytes_per_element=2, num_heads=2, window=8, chunk_size=4, memory_expansion=2
    )
    assert cost.kv_stored == cost.kv_read_per_token == 2 * 9 * 64 * 2
    assert cost.state == 2 * 2 * (32 * 64) * 2  # W1 and W2 of each head (width 32, hidden 64)
    assert allmem.cache(3, 64, window=8, chunk_size=4).kv_stored == 2 * 3 * 64 * 2
    assert allmem.cache(10**6, 64, window=8, chunk_size=4) == allmem.cache(
        24, 64, window=8, chunk_size=4
    )
    for length in (1, 5, 40):  # chunks of one token keep what sliding_window keeps
        assert (
            allmem.cache(length, 64, window=8, chunk_size=1).kv_stored
            == sliding_window.cache(length, 64, window=8).kv_stored
        )


@pytest.mark.parametrize(
    "bad,name",
    [
        ({"window": 0}, "window"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"memory_expansion": 0}, "expansion"),
        ({"max_lr": -1.0}, "max_lr"),
        ({"num_heads": 5}, "num_heads"),
        ({"causal": False}, "causal only"),
    ],
)
def test_impossible_hyperparameters_are_config_errors(bad, name):
    with pytest.raises(ConfigError, match=name):
        allmem.build(16, **bad)
