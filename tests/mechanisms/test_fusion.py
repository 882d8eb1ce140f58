"""The fusion built-ins against equivalent references and the properties their papers define."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from attnbench.errors import ConfigError
from attnbench.mechanism import FusionMasks
from attnbench.mechanisms import ccam, coguided, cross, cue_bottleneck, mutual

D, H = 16, 4


def _built(module, **hparams):
    torch.manual_seed(0)
    return module.build(D, num_heads=H, **hparams).double()


def _tokens(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_cross_equals_torch_multihead_attention_with_a_key_padding_mask():
    mine = _built(cross)
    reference = nn.MultiheadAttention(D, H, batch_first=True, kdim=D, vdim=D).double()
    q_weight = mine.attn.q.weight
    k_weight, v_weight = mine.attn.kv.weight.chunk(2)
    with torch.no_grad():
        reference.in_proj_weight.copy_(torch.cat([q_weight, k_weight, v_weight]))
        reference.in_proj_bias.copy_(torch.cat([mine.attn.q.bias, mine.attn.kv.bias]))
        reference.out_proj.weight.copy_(mine.attn.out.weight)
        reference.out_proj.bias.copy_(mine.attn.out.bias)
    x, context = _tokens(2, 5, D), _tokens(2, 7, D, seed=1)
    real = torch.tensor([[True] * 7, [True] * 3 + [False] * 4])
    expected, _ = reference(x, context, context, key_padding_mask=~real)
    assert torch.allclose(mine(x, context, FusionMasks(context=real)), expected, atol=1e-12)


def test_ccam_mask_is_video_ccams_block_mask_and_plain_causal_when_square():
    assert torch.equal(
        ccam.causal_cross_mask(5, 5, None), torch.ones(5, 5, dtype=torch.bool).tril()
    )
    # 6 queries, 3 frames of 4 tokens: query block b = i // 2 reads frames 0..b.
    mask = ccam.causal_cross_mask(6, 12, 3)
    for i in range(6):
        assert mask[i].tolist() == [j // 4 <= i // 2 for j in range(12)]
    assert ccam.causal_cross_mask(3, 10, 1).all()  # one frame: every query reads everything
    assert ccam.causal_cross_mask(1, 9, None).all()  # the last query always reads everything


@settings(max_examples=25, deadline=None)
@given(
    q_len=st.integers(1, 9),
    kv_len=st.integers(1, 12),
    frames=st.one_of(st.none(), st.integers(1, 15)),
)
def test_ccam_queries_never_read_later_frames(q_len, kv_len, frames):
    module = _built(ccam, frames=frames)
    x, context = _tokens(1, q_len, D), _tokens(1, kv_len, D, seed=1)
    allowed = ccam.causal_cross_mask(q_len, kv_len, frames)
    changed = torch.where(
        allowed[-1][None, :, None] & ~allowed[0][None, :, None],
        _tokens(1, kv_len, D, seed=2),
        context,
    )
    with torch.no_grad():
        moved = (module(x, changed) - module(x, context)).abs().amax(-1)[0]
    unread = ~(allowed & ~allowed[0]).any(-1)  # queries that read none of the changed tokens
    assert (moved[unread] < 1e-12).all()
    assert allowed[-1].all() and allowed[0, 0]


def test_ccam_with_one_frame_is_cross():
    x, context = _tokens(2, 4, D), _tokens(2, 6, D, seed=1)
    assert torch.allclose(_built(ccam, frames=1)(x, context), _built(cross)(x, context), atol=1e-12)


def test_mutual_mask_is_akis_causal_mask_plus_the_image_to_question_block():
    mask = mutual.joint_mask(3, 2, mutual=True)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    assert torch.equal(mutual.joint_mask(3, 2, mutual=False), causal)
    expected = causal.clone()
    expected[:3, 3:] = True
    assert torch.equal(mask, expected)


def test_mutual_lets_the_image_read_the_whole_question_and_causal_does_not():
    x, context = _tokens(1, 6, D), _tokens(1, 5, D, seed=1)
    later = torch.cat([x[:, :3], _tokens(1, 3, D, seed=3)], 1)  # change question tokens 3..5
    with torch.no_grad():
        causal = _built(mutual, mask="causal")
        assert torch.allclose(causal(x, context)[:, :3], causal(later, context)[:, :3], atol=1e-12)
        both = _built(mutual)
        assert not torch.allclose(both(x, context)[:, :3], both(later, context)[:, :3], atol=1e-6)
    with pytest.raises(ConfigError, match="mask='bidirectional'"):
        mutual.build(D, mask="bidirectional")


def test_cue_bottleneck_reads_the_image_only_through_its_cues():
    module = _built(cue_bottleneck, num_cues=3)
    x, context = _tokens(2, 5, D), _tokens(2, 7, D, seed=1)
    real = torch.tensor([[True] * 7, [True] * 2 + [False] * 5])
    with torch.no_grad():
        out = module(x, context, FusionMasks(context=real))
        queries = module.cues + module.condition(x.mean(1)).unsqueeze(1)
        cues = module.extract(queries, context, real[:, None, :])
        assert torch.allclose(out, module.read(x, cues, None), atol=1e-12)
        other_question = module.extract(
            module.cues + module.condition(x.mean(1) + 1).unsqueeze(1), context, real[:, None, :]
        )
        assert not torch.allclose(cues, other_question)  # the cues are question-conditioned
        restored = _built(cue_bottleneck, num_cues=3, stage="restored")
        assert not torch.allclose(restored(x, context), module(x, context))
    assert cue_bottleneck.flops(1, 5, 7, D, num_cues=3).attention == 4 * D * (3 * 7 + 5 * 3)
    with pytest.raises(ConfigError, match="num_cues"):
        cue_bottleneck.build(D, num_cues=0)


def test_coguided_gates_the_question_with_the_guided_image():
    x, context = _tokens(2, 4, D), _tokens(2, 6, D, seed=1)
    with torch.no_grad():
        module = _built(coguided)
        out = module(x, context)
        gate = out / (module.psai * x)
        assert ((gate > 0) & (gate < 1)).all()  # psai * sigmoid(g) * x
        assert torch.equal(_built(coguided, psai=0.0)(x, context), torch.zeros_like(x))
        silent = torch.cat([x[:, :2], torch.zeros(2, 2, D, dtype=torch.float64)], 1)
        assert torch.equal(
            module(silent, context)[:, 2:], torch.zeros(2, 2, D, dtype=torch.float64)
        )


BUILT_INS = [
    (cross, {}),
    (coguided, {}),
    (mutual, {}),
    (mutual, {"mask": "causal"}),
    (ccam, {}),
    (ccam, {"frames": 3}),
    (cue_bottleneck, {}),
    (cue_bottleneck, {"stage": "restored"}),
]


@pytest.mark.parametrize(
    "module,hparams", BUILT_INS, ids=lambda v: getattr(v, "__name__", str(v)).split(".")[-1]
)
def test_fully_masked_rows_give_finite_outputs_and_gradients(module, hparams):
    built = _built(module, **hparams)
    for x_real, context_real in (
        ((True, False), (True, True)),
        ((True, True), (True, False)),
        ((False, True), (True, False)),
        ((False, False), (False, False)),
    ):
        x = _tokens(2, 5, D).requires_grad_(True)
        context = _tokens(2, 7, D, seed=1).requires_grad_(True)
        masks = FusionMasks(
            torch.tensor(x_real)[:, None].expand(2, 5).clone(),
            torch.tensor(context_real)[:, None].expand(2, 7).clone(),
        )
        built.zero_grad()
        out = built(x, context, masks)
        out.square().sum().backward()
        assert (
            torch.isfinite(out).all()
            and torch.isfinite(x.grad).all()
            and torch.isfinite(context.grad).all()
        )
        assert all(torch.isfinite(p.grad).all() for p in built.parameters() if p.grad is not None)
        for row in range(2):
            if not context_real[row] and module in (cross, ccam):
                # nothing to read: the heads give zeros, so the update is the output projection's
                # bias
                assert torch.equal(out[row], built.attn.out.bias.expand_as(out[row]))


def test_ccam_orders_the_real_question_words_whatever_the_padding():
    mask = ccam.padded_causal_cross_mask(
        torch.tensor([[True] * 2 + [False] * 4]), torch.ones(1, 6, dtype=torch.bool), None
    )[0]
    assert mask[:2].tolist() == ccam.causal_cross_mask(2, 6, None).tolist()
    assert mask[1].all()  # the last real word reads the whole image
    assert mask[2:].all()  # padded queries (never read) sit after the last real one
