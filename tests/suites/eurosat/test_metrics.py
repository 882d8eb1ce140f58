"""EuroSAT's metrics against a from-scratch oracle and scikit-learn, on random label vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("sklearn")

from attnbench.suites.eurosat.metrics import classification_metrics, confusion  # noqa: E402

CLASSES = tuple(f"C{i}" for i in range(6))


@st.composite
def label_vectors(draw):
    """(labels, predictions): predictions drawn from a subset of classes, so some classes are
    never predicted."""
    size = draw(st.integers(1, 60))
    labels = draw(st.lists(st.integers(0, len(CLASSES) - 1), min_size=size, max_size=size))
    predicted = draw(
        st.lists(st.integers(0, len(CLASSES) - 1), min_size=1, max_size=3, unique=True)
    )
    predictions = draw(st.lists(st.sampled_from(predicted), min_size=size, max_size=size))
    return np.array(labels), np.array(predictions)


def oracle(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    k = len(CLASSES)
    matrix = np.zeros((k, k))
    for t, p in zip(labels, predictions):
        matrix[t, p] += 1
    n = matrix.sum()
    observed = np.trace(matrix) / n
    expected = (matrix.sum(1) * matrix.sum(0)).sum() / n**2
    present = matrix.sum(1) > 0
    per_class = np.diag(matrix)[present] / matrix.sum(1)[present]
    result = {"accuracy": observed, "macro_accuracy": per_class.mean()}
    if expected != 1:
        result["kappa"] = (observed - expected) / (1 - expected)
    result.update(
        {f"accuracy/{CLASSES[i]}": matrix[i, i] / matrix[i].sum() for i in range(k) if present[i]}
    )
    return result


@pytest.mark.filterwarnings(
    "ignore::UserWarning"
)  # scikit-learn's notes on classes missing from a vector
@settings(max_examples=100, deadline=None)
@given(label_vectors())
def test_metrics_equal_the_oracle_and_scikit_learn(vectors):
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    labels, predictions = vectors
    got = classification_metrics(labels, predictions, CLASSES)
    expected = oracle(labels, predictions)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-12), name
    assert got["accuracy"] == accuracy_score(labels, predictions)
    assert math.isclose(
        got["macro_accuracy"], balanced_accuracy_score(labels, predictions), abs_tol=1e-12
    )
    assert 0 <= got["accuracy"] <= 1 and 0 <= got["macro_accuracy"] <= 1


def test_a_class_never_predicted_scores_zero_and_an_absent_one_is_left_out():
    labels = np.array([0, 0, 1, 1, 2])
    predictions = np.array([0, 0, 0, 0, 2])
    got = classification_metrics(labels, predictions, CLASSES)
    assert got["accuracy/C1"] == 0.0 and got["accuracy/C0"] == 1.0
    assert "accuracy/C3" not in got
    assert math.isclose(got["macro_accuracy"], 2 / 3)


def test_undefined_kappa_is_left_out_not_stored_as_nan():
    got = classification_metrics(np.array([3, 3]), np.array([3, 3]), CLASSES)
    assert got["accuracy"] == 1.0 and "kappa" not in got


def test_confusion_rows_are_true_classes_over_every_class():
    matrix = confusion([0, 1, 1], [1, 1, 5], len(CLASSES))
    assert matrix.shape == (6, 6)
    assert matrix[0, 1] == 1 and matrix[1, 1] == 1 and matrix[1, 5] == 1 and matrix.sum() == 3
