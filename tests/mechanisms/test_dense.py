"""dense: the model's own SDPA, equal to softmax(Q K^T * scaling + mask) V written out, costs as
declared."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

pytest.importorskip("transformers")

from attnbench.mechanism import FlopBreakdown
from attnbench.mechanisms import dense
from tests.support.tiny import qkv


def written_out(query, key, value, keep: torch.Tensor, scaling: float) -> torch.Tensor:
    """Each query head uses key/value head h // (H / Hkv); output (B, Lq, H, Dh)."""
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    scores = (query @ key.transpose(-1, -2) * scaling).masked_fill(~keep, float("-inf"))
    return (torch.softmax(scores, -1) @ value).transpose(1, 2)


@pytest.mark.parametrize("q_len,kv_len", [(9, 9), (1, 9), (3, 9)])
def test_equals_the_written_out_softmax(module, q_len, kv_len):
    query, key, value = qkv(2, q_len, kv_len)
    positions = torch.arange(kv_len)
    causal = positions[None, :] <= positions[kv_len - q_len :, None]
    padding = torch.ones(2, 1, 1, kv_len, dtype=torch.bool)
    padding[1, ..., 0] = False  # the second example is left-padded by one token
    out, weights = dense.build()(
        module, query, key, value, causal & padding, scaling=module.scaling
    )
    assert weights is None
    seen = (
        (causal & padding).any(-1).squeeze(1)
    )  # a padding query that sees no key has no defined output
    torch.testing.assert_close(
        out[seen],
        written_out(query, key, value, causal & padding, module.scaling)[seen],
        rtol=1e-10,
        atol=1e-10,
    )


def test_no_mask_means_causal(module):
    query, key, value = qkv(1, 7, 7)
    out, _ = dense.build()(module, query, key, value, None, scaling=module.scaling)
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    torch.testing.assert_close(
        out, written_out(query, key, value, causal, module.scaling), rtol=1e-10, atol=1e-10
    )


def test_flops_by_hand_and_as_measured(module):
    # 2 (QK^T and AV) x 2 (multiply-add) x B 2 x H 4 x L 10 x L 10 x Dh 16
    assert dense.flops(2, 10, 4, 16) == FlopBreakdown(attention=51_200)
    query, key, value = qkv(2, 33, 33, dtype=torch.float32)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        dense.build()(module, query, key, value, None, scaling=module.scaling)
    assert counter.get_total_flops() == dense.flops(2, 33, 4, 16).total


def test_cache_keeps_every_key_and_value():
    # keys and values x 100 tokens x 2 kv heads x Dh 16 x 2 bytes
    assert dense.cache(100, 2, 16).as_dict() == {
        "kv_stored": 12_800,
        "kv_read_per_token": 12_800,
        "state": 0,
    }
