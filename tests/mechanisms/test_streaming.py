"""StreamingLLM: the sink + window pattern, dense when the window covers the input, blind to a token
outside both (on the attention function and through a model), decoding with a cache equal to the
full pass, costs.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from attnbench.errors import ConfigError
from attnbench.mechanism import FlopBreakdown
from attnbench.mechanisms import dense, streaming
from attnbench.registry import MECHANISMS
from attnbench.toolkit.pretrained import install
from tests.support.tiny import qkv, tiny_llama

TOL = dict(rtol=1e-5, atol=1e-5)


def test_mask_keeps_the_sinks_and_the_window():
    allowed = streaming.streaming_mask(
        streaming.sink_window_mask_mod(num_sinks=2, window=3), 8, 8, "cpu"
    )
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0, 0],
            [1, 1, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 1, 0, 0, 0],
            [1, 1, 0, 1, 1, 1, 0, 0],
            [1, 1, 0, 0, 1, 1, 1, 0],
            [1, 1, 0, 0, 0, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(allowed, expected)
    decoding = streaming.streaming_mask(streaming.sink_window_mask_mod(2, 3), 1, 8, "cpu")
    assert torch.equal(decoding, expected[-1:])  # one new query is the last position


def mask_of(kind: str, q_len: int, kv_len: int):
    """The masks a model may pass: none (causal), boolean keep-mask, or additive float mask."""
    if kind == "none":
        return None
    positions = torch.arange(kv_len)
    keep = (
        (positions[None, :] <= positions[kv_len - q_len :, None])[None, None]
        .expand(2, 1, q_len, kv_len)
        .clone()
    )
    keep[1, ..., 0] = False  # left padding in the second example
    if kind == "bool":
        return keep
    return torch.zeros(keep.shape, dtype=torch.float32).masked_fill(
        ~keep, torch.finfo(torch.float32).min
    )


# transformers passes no mask only where causality needs none: Lq == Lk (prefill) or Lq == 1
# (decoding)
@pytest.mark.parametrize(
    "kind,q_len,kv_len",
    [
        ("none", 24, 24),
        ("none", 1, 24),
        ("bool", 24, 24),
        ("bool", 1, 24),
        ("bool", 5, 24),
        ("float", 24, 24),
        ("float", 5, 24),
    ],
)
def test_a_window_covering_the_input_is_dense(module, kind, q_len, kv_len):
    query, key, value = qkv(2, q_len, kv_len, dtype=torch.float32)
    mask = mask_of(kind, q_len, kv_len)
    wide, _ = streaming.build(num_sinks=4, window=kv_len)(
        module, query, key, value, mask, scaling=module.scaling
    )
    full, _ = dense.build()(module, query, key, value, mask, scaling=module.scaling)
    torch.testing.assert_close(wide, full, **TOL)


@pytest.mark.parametrize("q_len", [40, 1])
def test_a_key_outside_sinks_and_window_has_no_influence(module, q_len):
    query, key, value = qkv(1, q_len, 40)
    attention = streaming.build(num_sinks=4, window=8)
    needle = 10  # not a sink; outside the window of every query at position >= 18
    moved_key, moved_value = key.clone(), value.clone()
    moved_key[:, :, needle], moved_value[:, :, needle] = 100.0, -100.0
    before, _ = attention(module, query, key, value, None, scaling=module.scaling)
    after, _ = attention(module, query, moved_key, moved_value, None, scaling=module.scaling)
    blind = torch.arange(40 - q_len, 40) >= needle + 8
    assert torch.equal(before[:, blind], after[:, blind])
    for seen in (3, 35):  # a sink, and a key in the last query's window, do matter
        moved = value.clone()
        moved[:, :, seen] = -100.0
        assert not torch.allclose(
            attention(module, query, key, moved, None, scaling=module.scaling)[0][:, -1],
            before[:, -1],
        )


def logits(model, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens).logits


def test_through_a_model_wide_window_is_dense_and_a_far_token_is_invisible():
    model = tiny_llama(layers=2)
    tokens = torch.randint(4, 45, (1, 48), generator=torch.Generator().manual_seed(0))
    own = logits(model, tokens)
    install(model, MECHANISMS.get("streaming"), {"num_sinks": 4, "window": 48})
    torch.testing.assert_close(logits(model, tokens), own, **TOL)

    install(model, MECHANISMS.get("streaming"), {"num_sinks": 4, "window": 8})
    needle = tokens.clone()
    needle[0, 10] = 5 if tokens[0, 10] != 5 else 6
    # the changed token reaches window - 1 positions further per layer: 10 .. 10 + 2 x 7 = 24,
    # nothing after
    torch.testing.assert_close(
        logits(model, needle)[:, 25:], logits(model, tokens)[:, 25:], rtol=0, atol=1e-6
    )
    assert not torch.allclose(logits(model, needle)[:, 10:25], logits(model, tokens)[:, 10:25])


def test_decoding_with_a_cache_equals_the_full_pass():
    model = tiny_llama()
    install(model, MECHANISMS.get("streaming"), {"num_sinks": 4, "window": 8})
    prompt = torch.randint(4, 45, (1, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model.generate(
            prompt,
            do_sample=False,
            max_new_tokens=6,
            eos_token_id=None,
            pad_token_id=0,
            output_logits=True,
            return_dict_in_generate=True,
        )
    steps = torch.stack(
        out.logits, 1
    )  # the prefill's last position, then one cached step per new token
    torch.testing.assert_close(steps, logits(model, out.sequences)[:, 23:29], **TOL)


def test_costs_count_the_sinks_and_the_window():
    # 2 x 2 x B 2 x H 4 x L 100 x (4 sinks + 16 recent keys) x Dh 16
    assert streaming.flops(2, 100, 4, 16, num_sinks=4, window=16) == FlopBreakdown(
        attention=1_024_000
    )
    assert streaming.flops(2, 100, 4, 16, num_sinks=4, window=96) == dense.flops(2, 100, 4, 16)
    assert streaming.flops(2, 100, 4, 16, num_sinks=4, window=500) == dense.flops(2, 100, 4, 16)
    # keys and values x 20 tokens x 2 kv heads x Dh 16 x 2 bytes
    assert streaming.cache(100, 2, 16, num_sinks=4, window=16).kv_stored == 2_560
    assert streaming.cache(10, 2, 16, num_sinks=4, window=16) == dense.cache(10, 2, 16)


def test_an_empty_window_is_refused():
    with pytest.raises(ConfigError, match="window=0"):
        streaming.build(num_sinks=4, window=0)
