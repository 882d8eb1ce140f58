"""MQAR generator: bit-for-bit Zoology on golden arrays, invariants on random configurations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from attnbench.errors import ConfigError
from attnbench.suites.mqar.data import (
    _generate,
    check_config,
    multiquery_ar,
    query_gap_probabilities,
)

# Made once by running zoology/data/multiquery_ar.py (HazyResearch/zoology @d88d6f5, imports
# stubbed) with torch.manual_seed(seed) right before each call; arrays stored as int16. "docstring"
# is Zoology's docstring example, which fails Zoology's own `vocab_size > input_seq_len` assert and
# so was made under `python -O` (asserts off).
GOLDEN = np.load(Path(__file__).resolve().parents[2] / "fixtures" / "mqar_golden.npz")
VALID_GOLDEN = ["small", "random_fill", "test_seed", "paper_scale"]


def golden_config(name: str) -> dict:
    prefix = f"{name}__config__"
    return {k[len(prefix) :]: GOLDEN[k].item() for k in GOLDEN.files if k.startswith(prefix)}


@pytest.mark.parametrize("name", VALID_GOLDEN)
def test_bit_for_bit_zoology(name):
    inputs, labels = multiquery_ar(**golden_config(name))
    np.testing.assert_array_equal(inputs.numpy(), GOLDEN[f"{name}__inputs"])
    np.testing.assert_array_equal(labels.numpy(), GOLDEN[f"{name}__labels"])


def test_golden_fixture_covers_the_random_filler():
    assert (
        golden_config("random_fill")["random_non_queries"]
        and golden_config("test_seed")["random_non_queries"]
    )
    assert golden_config("test_seed")["seed"] >= 2**31  # Zoology's test seeds lie in [2**31, 2**32)


def test_zoology_docstring_example():
    config = golden_config("docstring")
    assert config == dict(
        vocab_size=12,
        num_examples=1,
        input_seq_len=16,
        seed=0,
        power_a=0.01,
        num_kv_pairs=2,
        random_non_queries=False,
    )
    # Zoology's own assert rejects its docstring example (vocab 12 is not > length 16); so do we ...
    with pytest.raises(ConfigError, match="vocab_size"):
        multiquery_ar(**config)
    # ... but the unchecked generator still reproduces what Zoology makes with asserts disabled.
    inputs, labels = _generate(**config)
    np.testing.assert_array_equal(inputs.numpy(), GOLDEN["docstring__inputs"])
    np.testing.assert_array_equal(labels.numpy(), GOLDEN["docstring__labels"])
    assert inputs.tolist() == [[3, 6, 1, 8, 0, 0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0]]
    assert {i: v for i, v in enumerate(labels[0].tolist()) if v != -100} == {6: 8, 8: 6}


def test_small_valid_example_layout():
    inputs, labels = multiquery_ar(
        vocab_size=20,
        num_examples=1,
        input_seq_len=16,
        seed=0,
        num_kv_pairs=2,
        random_non_queries=False,
    )
    # as printed by Zoology's function for this call
    assert inputs.tolist() == [[8, 13, 3, 11, 0, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0]]
    assert {i: v for i, v in enumerate(labels[0].tolist()) if v != -100} == {6: 11, 10: 13}


@st.composite
def configs(draw):
    num_kv_pairs = draw(st.integers(1, 8))
    input_seq_len = 2 * draw(st.integers(2 * num_kv_pairs, 2 * num_kv_pairs + 24))
    vocab_size = draw(st.integers(input_seq_len + 1, input_seq_len + 300))
    return dict(
        vocab_size=vocab_size,
        num_examples=draw(st.integers(1, 10)),
        input_seq_len=input_seq_len,
        seed=draw(st.integers(0, 2**32 - 1)),
        num_kv_pairs=num_kv_pairs,
        power_a=draw(st.sampled_from([0.01, 0.3, 1.0, 2.0])),
        random_non_queries=draw(st.booleans()),
    )


@settings(max_examples=80, deadline=None)
@given(configs())
def test_invariants(config):
    inputs, labels = multiquery_ar(**config)
    n, length, kv, vocab = (
        config["num_examples"],
        config["input_seq_len"],
        config["num_kv_pairs"],
        config["vocab_size"],
    )
    assert inputs.shape == labels.shape == (n, length)
    assert inputs.dtype == labels.dtype == torch.int64
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
        assert sorted(x[i] for i in queried) == sorted(keys)  # every key queried exactly once
        assert all(pairs[x[i]] == y[i] for i in queried)
        if not config["random_non_queries"]:
            assert all(x[i] == 0 for i in range(context, length) if i not in queried)


@settings(max_examples=25, deadline=None)
@given(configs())
def test_same_seed_same_output(config):
    first, second = multiquery_ar(**config), multiquery_ar(**config)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.booleans())
def test_different_seed_different_output(seed, other, random_non_queries):
    if seed == other:
        other = (seed + 1) % 2**32
    config = dict(
        vocab_size=64,
        num_examples=4,
        input_seq_len=32,
        num_kv_pairs=4,
        random_non_queries=random_non_queries,
    )
    a, b = multiquery_ar(seed=seed, **config), multiquery_ar(seed=other, **config)
    assert not torch.equal(a[0], b[0])


@pytest.mark.parametrize("random_non_queries", [False, True])
def test_no_global_random_state_is_read_or_changed(random_non_queries):
    def snapshot():
        return np.random.get_state(), torch.get_rng_state()

    def assert_same(before, after):
        (name0, keys0, pos0, gauss0, cached0), (name1, keys1, pos1, gauss1, cached1) = (
            before[0],
            after[0],
        )
        assert (name0, pos0, gauss0, cached0) == (name1, pos1, gauss1, cached1) and np.array_equal(
            keys0, keys1
        )
        assert torch.equal(before[1], after[1])

    config = dict(
        vocab_size=128,
        num_examples=10,
        input_seq_len=32,
        seed=3,
        num_kv_pairs=4,
        random_non_queries=random_non_queries,
    )
    np.random.seed(1)
    torch.manual_seed(1)
    before = snapshot()
    a = multiquery_ar(**config)
    assert_same(before, snapshot())
    np.random.seed(99)
    torch.manual_seed(99)
    before = snapshot()
    b = multiquery_ar(**config)
    assert_same(before, snapshot())
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize(
    "changes,name",
    [
        (dict(input_seq_len=63), "input_seq_len"),
        (dict(input_seq_len=0), "input_seq_len"),
        (dict(vocab_size=64), "vocab_size"),
        (dict(vocab_size=10), "vocab_size"),
        (dict(vocab_size=256.0), "vocab_size"),
        (dict(num_kv_pairs=17), "num_kv_pairs"),
        (dict(num_kv_pairs=0), "num_kv_pairs"),
        (dict(num_kv_pairs=-2), "num_kv_pairs"),
        (dict(num_kv_pairs=True), "num_kv_pairs"),
        (dict(num_examples=0), "num_examples"),
        (dict(power_a=0.0), "power_a"),
        (dict(power_a=-1.0), "power_a"),
        (dict(power_a=math.nan), "power_a"),
        (dict(power_a=math.inf), "power_a"),
        (dict(seed=-1), "seed"),
        (dict(seed=2**32), "seed"),
        (dict(seed=1.5), "seed"),
    ],
)
def test_impossible_configurations_raise_clear_errors(changes, name):
    config = dict(vocab_size=256, num_examples=4, input_seq_len=64, seed=0, num_kv_pairs=4)
    config.update(changes)
    with pytest.raises(ConfigError, match=rf"^MQAR {name}=") as caught:
        multiquery_ar(**config)
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 80), st.integers(1, 80), st.integers(1, 30))
def test_zoology_constraints_imply_distinct_keys_values_and_gaps(
    vocab_size, input_seq_len, num_kv_pairs
):
    try:
        check_config(vocab_size, 1, input_seq_len, 0.01, num_kv_pairs)
    except ConfigError:
        return
    space = (input_seq_len - 2 * num_kv_pairs) // 2
    assert vocab_size // 2 - 1 >= num_kv_pairs  # keys: [1, V/2) without replacement
    assert vocab_size - vocab_size // 2 >= num_kv_pairs  # values: [V/2, V) without replacement
    assert space >= num_kv_pairs  # gaps without replacement


@pytest.mark.parametrize("random_non_queries", [False, True])
def test_tightest_possible_configurations_work(random_non_queries):
    for kv in (1, 2, 5):
        length = 4 * kv
        inputs, labels = multiquery_ar(
            vocab_size=length + 1,
            num_examples=3,
            input_seq_len=length,
            seed=0,
            num_kv_pairs=kv,
            random_non_queries=random_non_queries,
        )
        assert inputs.shape == (3, length) and ((labels != -100).sum(dim=1) == kv).all()


def test_query_gap_probabilities_match_the_formula():
    p = query_gap_probabilities(6, 0.01)
    np.testing.assert_allclose(p, [0.405, 0.204, 0.137, 0.103, 0.082, 0.069], atol=5e-4)
    np.testing.assert_allclose(query_gap_probabilities(5, 1.0), np.full(5, 0.2))


@pytest.mark.parametrize("power_a", [0.01, 0.3, 1.0])
def test_query_gaps_follow_the_power_law(power_a):
    # With one pair a gap is a single draw from p (with more pairs the no-replacement draws are
    # not).
    length, n = 64, 4000
    _, labels = multiquery_ar(512, n, length, seed=11, num_kv_pairs=1, power_a=power_a)
    positions = (labels != -100).nonzero()[:, 1]
    assert len(positions) == n
    gaps = ((positions - 2) // 2).numpy()
    space = (length - 2) // 2
    observed = np.bincount(gaps, minlength=space)
    expected = query_gap_probabilities(space, power_a) * n
    assert stats.chisquare(observed, expected).pvalue > 1e-3
