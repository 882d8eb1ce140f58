"""Titans (memory as context): the closed-form segment update against the paper's token-by-token
recurrence, the whole module against an explicit loop, causality, gradients, costs as declared."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from attnbench.errors import ConfigError
from attnbench.mechanisms import titans_mac
from attnbench.mechanisms.titans_mac import (
    memory_read,
    segment_update,
    update_coefficients,
)

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


def autograd_surprise(
    w1: torch.Tensor, w2: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """grad of ||M(k) - v||^2 with respect to (W1, W2), per batch element and head, by autograd."""
    with torch.enable_grad():
        w1, w2 = w1.detach().requires_grad_(), w2.detach().requires_grad_()
        loss = (memory_read(w1, w2, k.unsqueeze(2)).squeeze(2) - v).square().sum()
        return torch.autograd.grad(loss, (w1, w2))


def token_by_token(
    memory: tuple[torch.Tensor, ...], k, v, theta, eta, alpha
) -> tuple[torch.Tensor, ...]:
    """Eqs. 13-14 one token at a time: S_t = eta_t S_{t-1} - theta_t u_t, M_t = (1 - alpha_t)
    M_{t-1} + S_t, every u_t the gradient at the memory the segment started with (mini-batch form,
    eq. 16)."""
    start = memory[:2]
    w1, w2, s1, s2 = memory
    for t in range(k.shape[2]):
        u1, u2 = autograd_surprise(*start, k[:, :, t], v[:, :, t])
        scale = [g[:, :, t, None, None] for g in (theta, eta, alpha)]
        s1, s2 = scale[1] * s1 - scale[0] * u1, scale[1] * s2 - scale[0] * u2
        w1, w2 = (1 - scale[2]) * w1 + s1, (1 - scale[2]) * w2 + s2
    return w1, w2, s1, s2


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n,first", [(1, True), (5, True), (8, False), (3, False)])
def test_closed_form_segment_update_equals_the_token_recurrence(dtype, n, first):
    generator = torch.Generator().manual_seed(n)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (scale * torch.randn(*shape, generator=generator, dtype=torch.float64)).to(dtype)

    batch, heads, hidden, width = 2, 3, 6, 4
    w1, w2 = rand(batch, heads, hidden, width), rand(batch, heads, width, hidden, scale=0.5)
    s1, s2 = (None, None) if first else (rand(*w1.shape, scale=0.1), rand(*w2.shape, scale=0.1))
    k = torch.nn.functional.normalize(rand(batch, heads, n, width), dim=-1)
    v = rand(batch, heads, n, width)
    theta, eta, alpha = (torch.sigmoid(rand(batch, heads, n, scale=2.0)) for _ in range(3))
    closed = segment_update(
        (w1, w2, s1, s2), k, v, *update_coefficients(theta, eta.log(), torch.log1p(-alpha))
    )
    zero = (torch.zeros_like(w1), torch.zeros_like(w2))
    looped = token_by_token(
        (w1, w2, *((s1, s2) if s1 is not None else zero)), k, v, theta, eta, alpha
    )
    for a, b in zip(closed, looped):
        torch.testing.assert_close(a, b, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@torch.no_grad()
def explicit_titans(module: titans_mac.TitansMAC, x: torch.Tensor) -> torch.Tensor:
    """The paper token by token: each segment reads h_t = M_{t'}(q_t) (eq. 21) from the memory
    written by the segments before, then writes itself in, one token at a time (eqs. 13-14); token t
    of a segment attends with a softmax over [persistent tokens; h and tokens of its segment up to
    t] (eqs. 22-23)."""
    batch, length, _ = x.shape
    chunk = min(module.chunk_size, length)
    mq, mk, mv = module.memory_inputs(x)
    theta, log_eta, log_keep = module.gate_values(x)
    memory = [module.w1.expand(batch, -1, -1, -1), module.w2.expand(batch, -1, -1, -1)]
    memory += [torch.zeros_like(memory[0]), torch.zeros_like(memory[1])]
    recalled = torch.zeros_like(mq)
    for start in range(0, length, chunk):
        part = slice(start, start + chunk)
        for t in range(start, min(start + chunk, length)):
            recalled[:, :, t] = memory_read(memory[0], memory[1], mq[:, :, t, None])[:, :, 0]
        memory = token_by_token(
            memory,
            mk[:, :, part],
            mv[:, :, part],
            theta[:, :, part],
            log_eta[:, :, part].exp(),
            1 - log_keep[:, :, part].exp(),
        )
    q, k, v = module.proj.split(x)
    recalled_k, recalled_v = module.key_value(recalled.transpose(1, 2).flatten(2))
    persistent_k, persistent_v = (
        t.expand(batch, -1, -1, -1) for t in module.key_value(module.persistent)
    )
    out = torch.zeros_like(q)
    for t in range(length):
        start = chunk * (t // chunk)
        keys = torch.cat(
            [persistent_k, recalled_k[:, :, start : t + 1], k[:, :, start : t + 1]], dim=2
        )
        values = torch.cat(
            [persistent_v, recalled_v[:, :, start : t + 1], v[:, :, start : t + 1]], dim=2
        )
        scores = torch.einsum("bhd,bhnd->bhn", q[:, :, t], keys) / q.shape[-1] ** 0.5
        out[:, :, t] = torch.einsum("bhn,bhnd->bhd", torch.softmax(scores, dim=-1), values)
    return module.proj.merge(out)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "length,chunk_size,num_heads,memory_heads",
    [(1, 4, 1, 1), (13, 4, 2, 4), (24, 8, 1, 2), (10, 3, 4, 1), (6, 16, 2, 2)],
)
def test_module_equals_the_explicit_token_loop(dtype, length, chunk_size, num_heads, memory_heads):
    torch.manual_seed(length)
    module = titans_mac.build(
        16,
        num_heads=num_heads,
        chunk_size=chunk_size,
        memory_heads=memory_heads,
        num_persistent=3,
        max_lr=0.5,
    ).to(dtype)
    x = torch.randn(2, length, 16, dtype=dtype)
    torch.testing.assert_close(
        module(x), explicit_titans(module, x), rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype]
    )


def test_a_segment_reads_only_memory_written_before_it():
    """h_t depends on x_t (its query) and on earlier segments, never on its own segment's other
    tokens."""
    torch.manual_seed(2)
    module = titans_mac.build(16, num_heads=2, chunk_size=4, memory_heads=2).double()
    x = torch.randn(1, 12, 16, dtype=torch.float64)
    base = module.recall(x, 4)
    for t in range(12):
        changed = x.clone()
        others = torch.arange(4 * (t // 4), 12) != t
        changed[:, 4 * (t // 4) :][:, others] = torch.randn(
            1, int(others.sum()), 16, dtype=torch.float64
        )
        torch.testing.assert_close(
            module.recall(changed, 4)[:, t], base[:, t], rtol=1e-12, atol=1e-12
        )
    changed = x.clone()
    changed[:, :4] = torch.randn(1, 4, 16, dtype=torch.float64)
    assert not torch.allclose(
        module.recall(changed, 4)[:, 4:], base[:, 4:]
    )  # the first segment is remembered


def test_every_parameter_learns_the_gates_included():
    torch.manual_seed(3)
    module = titans_mac.build(16, num_heads=2, chunk_size=4, memory_heads=2)
    module(torch.randn(2, 13, 16)).square().sum().backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    rows = module.gates.weight.grad.abs().sum(-1)  # theta, eta and alpha rows for both memory heads
    assert (rows > 0).all()


@pytest.mark.parametrize("length", [1, 2, 3, 7, 11])
def test_odd_lengths_and_batch_one(length):
    torch.manual_seed(length)
    module = titans_mac.build(24, num_heads=3, chunk_size=4, memory_heads=2)
    x = torch.randn(1, length, 24)
    out = module(x)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out, explicit_titans(module, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "length,hparams",
    [
        (1, {}),
        (7, {}),
        (33, {}),
        (32, {"memory_expansion": 3}),
        (20, {"chunk_size": 32, "num_persistent": 1}),
    ],
)
def test_flops_equal_flop_counter(length, hparams):
    batch, dim = 2, 16
    hparams = {"num_heads": 2, "chunk_size": 8, "memory_heads": 4, **hparams}
    module = titans_mac.build(dim, **hparams)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(torch.randn(batch, length, dim))
    assert titans_mac.flops(batch, length, dim, **hparams).total == counter.get_total_flops()


def test_flop_breakdown():
    # 32 tokens, D 16, 4 memory heads of width 4 and hidden 8: 4 segments of 8, three of them
    # written
    cost = titans_mac.flops(1, 32, 16, num_heads=2, chunk_size=8, num_persistent=4, memory_heads=4)
    assert cost.attention == 4 * 32 * (4 + 16) * 16 + 4 * 32 * 16 * 8
    assert cost.selection == 14 * 24 * 16 * 8 + 2 * 32 * 16 * 12
    assert cost.projections == (8 + 6 + 4) * 32 * 16 * 16 + 4 * 4 * 16 * 16
    one_segment = titans_mac.flops(1, 8, 16, chunk_size=8, memory_heads=4)
    assert one_segment.selection == 2 * 8 * 16 * 12  # nothing is written: only the gates
    # linear in the length once segments are fixed, unlike mha
    long = [titans_mac.flops(1, n, 256, chunk_size=512).total for n in (4096, 8192)]
    assert 1.9 < long[1] / long[0] < 2.1


def test_cache_is_the_segment_and_the_memory():
    # 21 tokens in segments of 8: 5 pending tokens, each with its key/value and its retrieval's,
    # plus 4 persistent
    cost = titans_mac.cache(
        21,
        64,
        bytes_per_element=2,
        chunk_size=8,
        num_persistent=4,
        memory_heads=4,
        memory_expansion=2,
    )
    assert cost.kv_stored == cost.kv_read_per_token == 2 * (4 + 2 * 5) * 64 * 2
    assert cost.state == 3 * 4 * (2 * 16 * 32) * 2  # M_{t'}, M_t and S_t: W1 and W2 of 4 heads
    at_boundary = titans_mac.cache(24, 64, chunk_size=8, num_persistent=4)
    assert at_boundary.kv_stored == 2 * 4 * 64 * 2
    assert titans_mac.cache(10**6, 64, chunk_size=8) == titans_mac.cache(
        16, 64, chunk_size=8
    )  # constant


@pytest.mark.parametrize(
    "bad,name",
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"num_persistent": 0}, "num_persistent"),
        ({"memory_heads": 3}, "memory_heads"),
        ({"memory_expansion": 0}, "expansion"),
        ({"max_lr": 0.0}, "max_lr"),
        ({"num_heads": 5}, "num_heads"),
        ({"causal": False}, "causal only"),
    ],
)
def test_impossible_hyperparameters_are_config_errors(bad, name):
    with pytest.raises(ConfigError, match=name):
        titans_mac.build(16, **bad)
