"""TCA-Attention: dense when every token is kept (attention function and model), the least redundant
keys are the core tokens, an evicted key is invisible, decoding with a cache equals the full pass,
measured budget = declared, calibration."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from attnbench.errors import ConfigError
from attnbench.mechanisms import dense, tca
from attnbench.registry import MECHANISMS
from attnbench.toolkit.pretrained import install
from tests.support.tiny import char_tokenizer, qkv, tiny_llama

TOL = dict(rtol=1e-5, atol=1e-5)  # float32; the gathered softmax sums in another order than SDPA
SMALL = dict(block_size=4, window=8, keep=2, budgets=None)


def installed(model, **hparams):
    """The model with tca installed, and the attention function transformers now calls."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS[install(model, MECHANISMS.get("tca"), {**SMALL, **hparams})]


@pytest.mark.parametrize("q_len,kv_len", [(40, 40), (1, 40), (6, 40)])
def test_keeping_every_token_is_dense(module, q_len, kv_len):
    query, key, value = qkv(2, q_len, kv_len, dtype=torch.float32)
    positions = torch.arange(kv_len)
    mask = (positions[None, :] <= positions[kv_len - q_len :, None])[None, None].repeat(2, 1, 1, 1)
    mask[1, ..., 0] = False  # left padding in the second example
    out, _ = tca.build(block_size=4, window=8, keep=4)(
        module, query, key, value, mask, scaling=module.scaling
    )
    torch.testing.assert_close(
        out, dense.build()(module, query, key, value, mask, scaling=module.scaling)[0], **TOL
    )


def test_keeping_every_token_through_the_model_gives_dense_logits():
    model = tiny_llama()
    tokens = torch.randint(4, 45, (2, 50), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        own = model(tokens).logits
        installed(model, keep=4)
        torch.testing.assert_close(model(tokens).logits, own, **TOL)


def test_the_least_redundant_keys_are_kept():
    key = torch.randn(1, 1, 8, 16, generator=torch.Generator().manual_seed(0))
    key[0, 0, 1:4] = key[0, 0, 0]  # block 0: four copies of one key, block 1: distinct keys
    key[0, 0, 3] += 0.01 * torch.randn(16, generator=torch.Generator().manual_seed(1))
    _, blocks = tca.redundancy(key, 4)
    assert blocks[0, 0, 0] > 0.6 > blocks[0, 0, 1]
    kept = tca.kept_keys(key, 4, 1, None)
    assert kept[0, 0, :4].tolist() == [
        False,
        False,
        False,
        True,
    ]  # the perturbed copy is the least redundant
    assert int(kept[0, 0, 4:].sum()) == 1


def test_an_evicted_key_is_invisible_once_out_of_the_window(module):
    query, key, value = qkv(1, 40, 40)
    attention = tca.build(block_size=4, window=8, keep=1)
    kept = tca.kept_keys(key, 4, 1, None)
    evicted = int((~kept[0, 0, :4]).nonzero()[0])  # a key of block 0 that key/value head 0 drops
    moved = value.clone()
    moved[:, 0, evicted] = 100.0
    before, _ = attention(module, query, key, value, None, scaling=module.scaling)
    after, _ = attention(module, query, key, moved, None, scaling=module.scaling)
    # block 0 leaves the raw window of query t once w_t >= 4, i.e. from t = 11 on
    assert torch.equal(after[:, 11:], before[:, 11:]) and not torch.equal(
        after[:, :11], before[:, :11]
    )


def test_decoding_with_a_cache_equals_the_full_pass():
    model = tiny_llama()
    attention = installed(model)
    prompt = torch.randint(4, 45, (1, 30), generator=torch.Generator().manual_seed(1))
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
        steps = torch.stack(out.logits, 1)
        torch.testing.assert_close(steps, model(out.sequences).logits[:, 29:35], **TOL)
    # after the last decoding step the cache keeps the raw window and one core pair per older block
    assert (
        attention.last_stats["kv_bytes_kept"]
        == tca.cache(36, 2, 16, bytes_per_element=4, **SMALL).kv_stored
    )


def test_the_measured_budget_is_the_declared_one(module):
    query, key, value = qkv(2, 45, 45, dtype=torch.float32)
    attention = tca.build(block_size=4, window=8, keep=2)
    attention(module, query, key, value, None, scaling=module.scaling)
    stats = attention.last_stats
    assert stats["pairs"] == 2 * 4 * tca.pairs_per_head(45, 4, 8, 2) and stats["density"] < 0.75
    declared = tca.flops(2, 45, 4, 16, num_kv_heads=2, **SMALL)
    assert (
        declared.attention == stats["attention_flops"]
        and declared.selection == stats["selection_flops"]
    )
    assert (
        stats["kv_bytes_kept"] == 2 * tca.cache(45, 2, 16, bytes_per_element=4, **SMALL).kv_stored
    )


def test_calibration_sets_per_head_budgets():
    model, tokenizer = tiny_llama(), char_tokenizer()
    texts = [
        "the quick brown fox jumps over the lazy dog, " * 2,
        "0123456789 abcdefghij klmnop qrstuv wxyz. " * 2,
    ]
    strict = tca.calibrate(model, tokenizer, texts, block_size=4, window=8, tolerance=0.0)
    assert strict.keys() == {"0", "1"} and all(len(layer["cuts"]) == 2 for layer in strict.values())
    assert all(
        k == 4 for layer in strict.values() for k in layer["mean_keep"]
    )  # nothing may change: keep all
    loose = tca.calibrate(model, tokenizer, texts, block_size=4, window=8, tolerance=10.0)
    means = [k for layer in loose.values() for k in layer["mean_keep"]]
    assert all(k < 2 for k in means)  # the sparsest candidate everywhere
    assert all(
        cuts == sorted(cuts, reverse=True) for layer in loose.values() for cuts in layer["cuts"]
    )
    tokens = tokenizer(texts[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        own = model(tokens).logits
        installed(model, budgets=strict)
        torch.testing.assert_close(model(tokens).logits, own, **TOL)
        attention = installed(model, budgets=loose)
        model(tokens)
    assert attention.last_stats["density"] < 0.75
    calibrated = tca.flops(1, 100, 4, 16, **{**SMALL, "budgets": loose})
    assert calibrated.attention < tca.flops(1, 100, 4, 16, **SMALL).attention


@pytest.mark.parametrize("bad", [{"block_size": 6}, {"keep": 0}, {"keep": 65}, {"window": 0}])
def test_impossible_settings_are_refused(bad):
    with pytest.raises(ConfigError, match="tca needs"):
        tca.build(**bad)
