"""RULER's string_match_all / string_match_part: hand vectors, an independent exact oracle,
properties."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnbench.errors import ConfigError
from attnbench.suites.needle import string_match_all, string_match_part
from attnbench.suites.needle.metrics import postprocess_pred

ALPHABET = "abcXYZ019 -."
texts = st.text(alphabet=ALPHABET, max_size=30)
refs_lists = st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=4), min_size=1, max_size=5)
batches = st.lists(st.tuples(texts, refs_lists), min_size=1, max_size=8)


def oracle(preds, refs, any_of):
    """Exact rational mean of per-example scores, x100 (written apart from the code under test)."""
    total = Fraction(0)
    for pred, ref in zip(preds, refs):
        found = [r.casefold() in pred.casefold() for r in ref]
        total += Fraction(int(any(found))) if any_of else Fraction(sum(found), len(found))
    return total * 100 / len(preds)


@pytest.mark.parametrize(
    "metric, preds, refs, expected",
    [
        (string_match_all, ["The numbers are 123 and 456."], [["123", "456", "789"]], 66.67),
        (string_match_part, ["The numbers are 123 and 456."], [["123", "456", "789"]], 100.0),
        (string_match_all, ["ABC"], [["abc"]], 100.0),
        (string_match_all, ["a b", "x"], [["a", "b"], ["y"]], 50.0),
        (string_match_all, ["a"], [["a", "b", "c"]], 33.33),
        (string_match_part, ["a", "b", "c"], [["a"], ["z"], ["z"]], 33.33),
        (string_match_part, ["q", "b", "c"], [["q"], ["b"], ["z"]], 66.67),
        (string_match_all, ["no"], [["yes"]], 0.0),
        # lm-eval's string_match_part gives 50 here (fraction of references); RULER's scores any-of
        (string_match_part, ["Paris"], [["Paris", "France"]], 100.0),
        (string_match_all, ["Paris"], [["Paris", "France"]], 50.0),
        (
            string_match_all,
            ["1234567 and 7654321", "7654321"],
            [["1234567", "7654321"], ["1234567", "7654321"]],
            75.0,
        ),
    ],
)
def test_hand_vectors(metric, preds, refs, expected):
    assert metric(preds, refs) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("  The answer is 42.  ", "The answer is 42."),
        ("a\tb\x00c", "a\nb\nc"),
        ("\x01abc\x1f", "abc"),
        ("\n\n", ""),
    ],
)
def test_postprocess_pred(text, expected):
    assert postprocess_pred(text) == expected


@settings(max_examples=150, deadline=None)
@given(batches)
def test_matches_exact_oracle_to_two_decimals(batch):
    preds, refs = [p for p, _ in batch], [r for _, r in batch]
    for metric, any_of in ((string_match_all, False), (string_match_part, True)):
        score = metric(preds, refs)
        assert score == round(score, 2)
        assert 0 <= score <= 100
        assert abs(Fraction(score) - oracle(preds, refs, any_of)) <= Fraction(1, 200) + Fraction(
            1, 10**9
        )


@settings(max_examples=100, deadline=None)
@given(batches)
def test_case_insensitive_and_all_below_part(batch):
    preds, refs = [p for p, _ in batch], [r for _, r in batch]
    swapped_preds = [p.swapcase() for p in preds]
    swapped_refs = [[r.upper() for r in ref] for ref in refs]
    assert string_match_all(swapped_preds, swapped_refs) == string_match_all(preds, refs)
    assert string_match_part(swapped_preds, swapped_refs) == string_match_part(preds, refs)
    assert string_match_all(preds, refs) <= string_match_part(preds, refs)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=ALPHABET, min_size=1, max_size=40), st.data())
def test_refs_that_are_substrings_score_full(pred, data):
    spans = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(pred) - 1), st.integers(1, 10)), min_size=1, max_size=4
        )
    )
    refs = [pred[i : i + n] for i, n in spans if pred[i : i + n]]
    assert string_match_all([pred], [refs]) == 100.0
    assert string_match_part([pred], [refs]) == 100.0


@given(refs_lists)
def test_empty_prediction_scores_zero(refs):
    assert string_match_all([""], [refs]) == 0.0
    assert string_match_part([""], [refs]) == 0.0


@given(st.integers(1, 9), st.data())
def test_multi_value_partial_credit(n, data):
    values = [f"{1000000 + 7919 * i}" for i in range(n)]
    found = data.draw(st.integers(0, n))
    pred = "The special magic numbers are " + ", ".join(values[:found]) + "."
    assert string_match_all([pred], [values]) == round(100 * found / n, 2)
    assert string_match_part([pred], [values]) == (100.0 if found else 0.0)


@pytest.mark.parametrize("metric", [string_match_all, string_match_part])
@pytest.mark.parametrize(
    "preds, refs, message",
    [
        (["a", "b"], [["a"]], "2 predictions but 1 reference"),
        ([], [], "no predictions"),
        (["a"], [[]], r"refs\[0\] is empty"),
        (["a"], ["a"], r"refs\[0\] must be a list"),
        ("a", [["a"]], "not a string"),
        ([None], [["a"]], r"preds\[0\] is NoneType"),
        (["a"], [[1]], r"refs\[0\] must be a list of strings"),
    ],
)
def test_bad_input_raises_config_error(metric, preds, refs, message):
    with pytest.raises(ConfigError, match=message):
        metric(preds, refs)


def test_package_reexports_without_torch():
    code = (
        "import sys, attnbench.suites.needle as n; "
        "assert n.string_match_all(['x'], [['X']]) == 100.0; assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
