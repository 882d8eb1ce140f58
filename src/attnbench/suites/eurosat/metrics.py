"""EuroSAT's metrics, computed with scikit-learn as the EuroSAT papers' code computes them.

* `accuracy`: overall accuracy, top-1 over every test image (`accuracy_score`; torchgeo's micro
  `MulticlassAccuracy`, "OA"). The primary metric, 0-1.
* `macro_accuracy`: the mean of per-class accuracies over the classes present in the labels
  (`balanced_accuracy_score`; torchgeo's macro `MulticlassAccuracy`, "AA", when every class is
  present, as in every EuroSAT split).
* `kappa`: Cohen's kappa (`cohen_kappa_score`), reported by the balanced-attention paper.
* `accuracy/<Class>`: per-class accuracy (recall), diagonal over row sum of the confusion matrix,
  for the classes present in the labels.

A value that is undefined (kappa when labels and predictions are one and the same class) is left out
rather than stored as NaN.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np


def confusion(labels: Sequence[int], predictions: Sequence[int], num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts: row = true class, column = predicted class."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(labels, predictions, labels=list(range(num_classes)))


def classification_metrics(
    labels: Sequence[int], predictions: Sequence[int], classes: Sequence[str]
) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score

    y_true, y_pred = np.asarray(labels), np.asarray(predictions)
    matrix = confusion(y_true, y_pred, len(classes))
    with (
        warnings.catch_warnings()
    ):  # classes absent from the labels or predictions are expected, not news
        warnings.simplefilter("ignore")
        metrics = {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
            "kappa": float(cohen_kappa_score(y_true, y_pred, labels=list(range(len(classes))))),
        }
    support = matrix.sum(axis=1)
    metrics.update(
        {
            f"accuracy/{name}": float(matrix[i, i] / support[i])
            for i, name in enumerate(classes)
            if support[i]
        }
    )
    return {name: value for name, value in metrics.items() if math.isfinite(value)}
