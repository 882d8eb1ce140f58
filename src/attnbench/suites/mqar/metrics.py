"""MQAR accuracy with Zoology's semantics (`zoology/train.py::compute_metrics`).

Accuracy is computed per example over its labelled (query) positions, then averaged over examples;
it is not pooled over tokens, so every example weighs the same whatever its number of queries.
Examples without any labelled position are left out (Zoology would average an empty tensor to NaN).
"""

from __future__ import annotations

import torch

from attnbench.toolkit.lm import IGNORE_INDEX


def per_example_accuracy(
    preds: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Fraction of each example's labelled positions predicted right, as float64 of shape `(n,)`.

    `preds` and `labels` are `(num_examples, seq_len)`; positions where `labels == ignore_index` do
    not count. Examples with no labelled position are dropped, so `n` may be less than
    `num_examples`.
    """
    if preds.shape != labels.shape or labels.dim() != 2:
        raise ValueError(
            f"preds {tuple(preds.shape)} and labels {tuple(labels.shape)} must both be "
            "(num_examples, seq_len)"
        )
    scored = labels != ignore_index
    counts = scored.sum(dim=1)
    hits = ((preds == labels) & scored).sum(dim=1)
    keep = counts > 0
    return hits[keep].double() / counts[keep].double()


def accuracy(preds: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> float:
    """Mean over examples of `per_example_accuracy` (examples without labelled positions excluded).

    Raises `ValueError` when no example has a labelled position, rather than returning NaN.
    """
    per_example = per_example_accuracy(preds, labels, ignore_index)
    if per_example.numel() == 0:
        raise ValueError(
            f"accuracy: no example has a labelled position (every label is {ignore_index})"
        )
    return float(per_example.mean())
