"""MQAR accuracy: per example, then averaged (Zoology's compute_metrics), not pooled over tokens."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnbench.suites.mqar.data import multiquery_ar
from attnbench.suites.mqar.metrics import accuracy, per_example_accuracy

I = -100


def zoology_compute_metrics(
    preds: torch.Tensor, targets: torch.Tensor, ignore_index: int = I
) -> list[float]:
    """zoology/train.py::compute_metrics, transcribed: one accuracy per example (NaN if it has no
    label)."""
    return [(p == t)[t != ignore_index].to(float).mean().item() for p, t in zip(preds, targets)]


def test_per_example_mean_differs_from_token_pooling():
    labels = torch.tensor([[5, I, I, I], [5, 6, 7, 8]])
    preds = torch.tensor([[5, 0, 0, 0], [0, 0, 0, 8]])
    # example 1: 1/1, example 2: 1/4 -> 0.625; pooled over tokens it would be 2/5 = 0.4
    pooled = ((preds == labels) & (labels != I)).sum().item() / (labels != I).sum().item()
    assert pooled == 0.4
    assert per_example_accuracy(preds, labels).tolist() == [1.0, 0.25]
    assert accuracy(preds, labels) == 0.625


def test_perfect_predictions_give_one():
    inputs, labels = multiquery_ar(256, 16, 64, seed=5, num_kv_pairs=4)
    preds = torch.where(labels == I, inputs, labels)  # anything at ignored positions
    assert accuracy(preds, labels) == 1.0
    assert accuracy(torch.zeros_like(labels), labels) == 0.0


def test_ignored_positions_never_count():
    labels = torch.tensor([[I, 3, I, 4]])
    assert accuracy(torch.tensor([[9, 3, 9, 4]]), labels) == 1.0
    assert accuracy(torch.tensor([[I, 0, I, 4]]), labels) == 0.5
    # a prediction equal to the ignore index at an ignored position is not a hit either
    assert accuracy(torch.tensor([[I, 0, I, 0]]), labels) == 0.0


def test_custom_ignore_index():
    labels = torch.tensor([[-1, 3, -1, 4]])
    preds = torch.tensor([[7, 3, 7, 0]])
    assert accuracy(preds, labels, ignore_index=-1) == 0.5
    assert accuracy(preds, labels) == 0.25  # with the default, -1 is an ordinary label


def test_examples_without_labels_are_excluded():
    labels = torch.tensor([[I, I], [1, 2], [I, I]])
    preds = torch.tensor([[0, 0], [1, 0], [5, 5]])
    assert per_example_accuracy(preds, labels).tolist() == [0.5]
    assert accuracy(preds, labels) == 0.5


def test_no_labelled_position_at_all_raises_instead_of_nan():
    with pytest.raises(ValueError, match="no example has a labelled position"):
        accuracy(torch.zeros(2, 3, dtype=torch.long), torch.full((2, 3), I))
    assert (
        per_example_accuracy(torch.zeros(2, 3, dtype=torch.long), torch.full((2, 3), I)).numel()
        == 0
    )


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="preds"):
        accuracy(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="num_examples, seq_len"):
        accuracy(torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 12), st.integers(0, 10_000))
def test_matches_zoology_compute_metrics(n, length, seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n, length), generator=generator)
    labels[torch.rand(n, length, generator=generator) < 0.6] = I
    preds = torch.randint(0, 4, (n, length), generator=generator)
    reference = [a for a in zoology_compute_metrics(preds, labels) if not math.isnan(a)]
    if not reference:
        with pytest.raises(ValueError):
            accuracy(preds, labels)
        return
    assert per_example_accuracy(preds, labels).tolist() == pytest.approx(reference, abs=1e-15)
    assert accuracy(preds, labels) == pytest.approx(sum(reference) / len(reference), abs=1e-12)
    assert accuracy(labels.clamp(min=0), labels) == 1.0
