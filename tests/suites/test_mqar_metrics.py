"""MQAR accuracy: per example, then averaged (Zoology's compute_metrics), not pooled over tokens."""
from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnbench.suites.mqar.metrics import accuracy, per_example_accuracy

I = -100


def test_per_example_mean_differs_from_token_pooling():
    labels = torch.tensor([[5, I, I, I], [5, 6, 7, 8]])
    preds = torch.tensor([[5, 0, 0, 0], [0, 0, 0, 8]])
    # example 1: 1/1, example 2: 1/4 -> 0.625; pooled over tokens would be 2/5 = 0.4
    assert accuracy(preds, labels) == 0.625


def test_ignored_positions_never_count():
    labels = torch.tensor([[I, 3, I, 4]])
    assert accuracy(torch.tensor([[9, 3, 9, 4]]), labels) == 1.0
    assert accuracy(torch.tensor([[I, 0, I, 4]]), labels) == 0.5


def test_examples_without_labels_are_excluded():
    labels = torch.tensor([[I, I], [1, 2]])
    assert per_example_accuracy(torch.tensor([[0, 0], [1, 0]]), labels).tolist() == [0.5]
    assert math.isnan(accuracy(torch.zeros(1, 2, dtype=torch.long), torch.full((1, 2), I)))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8), st.integers(1, 12), st.integers(0, 10_000))
def test_matches_a_python_oracle(n, length, seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n, length), generator=generator)
    labels[torch.rand(n, length, generator=generator) < 0.5] = I
    labels[:, 0] = 1  # every example has a label
    preds = torch.randint(0, 4, (n, length), generator=generator)
    oracle = []
    for p, t in zip(preds.tolist(), labels.tolist()):
        scored = [a == b for a, b in zip(p, t) if b != I]
        oracle.append(sum(scored) / len(scored))
    assert abs(accuracy(preds, labels) - sum(oracle) / len(oracle)) < 1e-12
    assert accuracy(labels.clamp(min=0), labels) == 1.0
