"""MQAR accuracy with Zoology's semantics (`zoology/train.py::compute_metrics`).

Accuracy is computed per example over its query positions, then averaged over examples; it is
not pooled over tokens, so every example weighs the same whatever its number of queries.
"""
from __future__ import annotations

import torch

IGNORE_INDEX = -100


def per_example_accuracy(preds: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Fraction of each example's labelled positions predicted right; examples with none are dropped."""
    scored = labels != ignore_index
    counts = scored.sum(dim=1)
    hits = ((preds == labels) & scored).sum(dim=1)
    keep = counts > 0
    return hits[keep].double() / counts[keep].double()


def accuracy(preds: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> float:
    """Mean of the per-example accuracies (NaN when no example has a labelled position)."""
    per_example = per_example_accuracy(preds, labels, ignore_index)
    return float(per_example.mean()) if per_example.numel() else float("nan")
