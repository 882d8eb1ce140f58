"""MQAR generator: bit-for-bit Zoology on golden arrays, invariants on random configurations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from attnbench.errors import ConfigError
from attnbench.suites.mqar.data import multiquery_ar, query_gap_probabilities
from tests.conftest import REPO

# Made once by running zoology/data/multiquery_ar.py (HazyResearch/zoology @d88d6f5) with
# torch.manual_seed(seed) right before each call; arrays stored as int16.
GOLDEN = np.load(REPO / "tests" / "fixtures" / "mqar_zoology_golden.npz")


def golden_config(name: str) -> dict:
    prefix = f"{name}__config__"
    return {k[len(prefix):]: GOLDEN[k].item() for k in GOLDEN.files if k.startswith(prefix)}


@pytest.mark.parametrize("name", ["small", "random_fill", "paper_scale"])
def test_bit_for_bit_zoology(name):
    inputs, labels = multiquery_ar(**golden_config(name))
    np.testing.assert_array_equal(inputs.numpy(), GOLDEN[f"{name}__inputs"])
    np.testing.assert_array_equal(labels.numpy(), GOLDEN[f"{name}__labels"])


def test_small_example_layout():
    inputs, labels = multiquery_ar(vocab_size=20, num_examples=1, input_seq_len=16, seed=0, num_kv_pairs=2,
                                   random_non_queries=False)
    assert inputs.tolist() == [[8, 13, 3, 11, 0, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0]]
    assert {i: v for i, v in enumerate(labels[0].tolist()) if v != -100} == {6: 11, 10: 13}


@st.composite
def configs(draw):
    num_kv_pairs = draw(st.integers(1, 8))
    input_seq_len = 2 * draw(st.integers(2 * num_kv_pairs, 2 * num_kv_pairs + 24))
    vocab_size = draw(st.integers(max(input_seq_len + 1, 2 * num_kv_pairs + 2), input_seq_len + 200))
    return dict(vocab_size=vocab_size, num_examples=draw(st.integers(1, 12)), input_seq_len=input_seq_len,
                seed=draw(st.integers(0, 2**31)), num_kv_pairs=num_kv_pairs,
                power_a=draw(st.sampled_from([0.01, 0.5, 1.0])), random_non_queries=draw(st.booleans()))


@settings(max_examples=60, deadline=None)
@given(configs())
def test_invariants(config):
    inputs, labels = multiquery_ar(**config)
    n, length, kv, vocab = config["num_examples"], config["input_seq_len"], config["num_kv_pairs"], config["vocab_size"]
    assert inputs.shape == labels.shape == (n, length) and inputs.dtype == labels.dtype == torch.int64
    assert inputs.min() >= 0 and inputs.max() < vocab
    context = 2 * kv
    for x, y in zip(inputs.tolist(), labels.tolist()):
        keys, values = x[0:context:2], x[1:context:2]
        assert all(1 <= k < vocab // 2 for k in keys) and len(set(keys)) == kv
        assert all(vocab // 2 <= v < vocab for v in values) and len(set(values)) == kv
        pairs = dict(zip(keys, values))
        queried = [i for i, label in enumerate(y) if label != -100]
        assert len(queried) == kv
        assert all(i >= context and (i - context) % 2 == 0 for i in queried)
        assert sorted(x[i] for i in queried) == sorted(keys)
        assert all(pairs[x[i]] == y[i] for i in queried)
        if not config["random_non_queries"]:
            assert all(x[i] == 0 for i in range(context, length) if i not in queried)


@settings(max_examples=20, deadline=None)
@given(configs())
def test_seed_determines_everything(config):
    first, second = multiquery_ar(**config), multiquery_ar(**config)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    other = multiquery_ar(**{**config, "seed": config["seed"] + 1})
    assume(config["num_examples"] * config["num_kv_pairs"] >= 4)
    assert not torch.equal(first[0], other[0])


def test_no_global_random_state_is_read_or_changed():
    np.random.seed(1)
    torch.manual_seed(1)
    numpy_state, torch_state = np.random.get_state(), torch.get_rng_state()
    a = multiquery_ar(128, 10, 32, seed=3, num_kv_pairs=4)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1]) and torch.equal(torch.get_rng_state(), torch_state)
    np.random.seed(99)
    torch.manual_seed(99)
    b = multiquery_ar(128, 10, 32, seed=3, num_kv_pairs=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("kwargs,name", [
    (dict(input_seq_len=63), "input_seq_len"),
    (dict(vocab_size=64), "vocab_size"),
    (dict(num_kv_pairs=17), "num_kv_pairs"),
    (dict(num_kv_pairs=0), "num_kv_pairs"),
    (dict(num_examples=0), "num_examples"),
    (dict(power_a=0.0), "power_a"),
])
def test_impossible_configurations_raise_clear_errors(kwargs, name):
    config = dict(vocab_size=256, num_examples=4, input_seq_len=64, seed=0, num_kv_pairs=4)
    config.update(kwargs)
    with pytest.raises(ConfigError, match=name) as caught:
        multiquery_ar(**config)
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)


def test_tightest_possible_configuration_works():
    inputs, _ = multiquery_ar(vocab_size=17, num_examples=3, input_seq_len=16, seed=0, num_kv_pairs=4)
    assert inputs.shape == (3, 16)


def test_query_gaps_follow_the_power_law():
    length, kv, n = 64, 1, 4000
    _, labels = multiquery_ar(512, n, length, seed=11, num_kv_pairs=kv, power_a=0.3)
    positions = (labels != -100).nonzero()[:, 1]
    gaps = ((positions - 2 * kv) // 2).numpy()
    space = (length - 2 * kv) // 2
    observed = np.bincount(gaps, minlength=space)
    expected = query_gap_probabilities(space, 0.3) * n
    assert stats.chisquare(observed, expected).pvalue > 1e-3
