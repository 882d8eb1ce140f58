"""SECOND's semantic change detection scores, as the SCanNet / Bi-SRNet evaluation defines them.

The official code (DingLei14/SCanNet `Eval_SCD.py` and `utils/utils.py::SCDD_eval_all`, read as a
reference; it carries no licence) builds one 7x7 histogram `hist[pred, label]` over both dates of
every image, and derives:

* `OA`: the pixel accuracy of each map (one date of one image), averaged over all maps, as
  `Eval_SCD.py`'s `AverageMeter` does (`train_SCD_psd.py`'s validation averages (acc_1 + acc_2) / 2
  per image, the same number). It is not read from the histogram; for maps of one size, as SECOND's
  512x512 are, it equals trace(hist) / hist.sum().
* `mIoU`: the mean of the IoUs of "no change" and "change" on the binary change map (a pixel is
  changed where its class is not 0).
* `SeK`: Cohen's kappa of the histogram with its unchanged-unchanged cell zeroed, times
  exp(IoU_change - 1).
* `Fscd`: the harmonic mean of semantic-change precision and recall, with the true positives the
  changed pixels whose class is right (the trace of hist[1:, 1:]).
* `Score`: 0.3 mIoU + 0.7 SeK.

Where the official code divides 0 by 0 (no change predicted and none labelled, so IoU_change,
precision and recall are undefined) it returns NaN; here every such ratio is 0, the convention the
official `cal_kappa` already uses for an empty histogram, so a set without change gets defined,
comparable numbers. Everything else is the official arithmetic.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

NUM_CLASSES = 7  # unchanged + SECOND's 6 land-cover classes


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def histogram(
    preds: Iterable[np.ndarray], labels: Iterable[np.ndarray], num_classes: int = NUM_CLASSES
) -> tuple[np.ndarray, list[float]]:
    """The (pred, label) histogram over all maps and each map's pixel accuracy; maps must match in
    shape and hold classes 0..num_classes-1 (the official code asserts the same of predictions)."""
    hist = np.zeros((num_classes, num_classes), dtype=np.int64)
    accuracies = []
    count = 0
    for pred, label in zip(preds, labels, strict=True):
        pred, label = np.asarray(pred), np.asarray(label)
        if pred.shape != label.shape:
            raise ValueError(
                f"map {count}: prediction {pred.shape} and label {label.shape} differ in shape"
            )
        if pred.size == 0:
            raise ValueError(f"map {count} has no pixels")
        for name, values in (("prediction", pred), ("label", label)):
            if values.min() < 0 or values.max() >= num_classes:
                raise ValueError(f"map {count}: {name} holds classes outside 0..{num_classes - 1}")
        pred, label = pred.astype(np.int64).ravel(), label.astype(np.int64).ravel()
        hist += np.bincount(num_classes * pred + label, minlength=num_classes**2).reshape(
            num_classes, num_classes
        )
        accuracies.append(float((pred == label).mean()))
        count += 1
    if not count:
        raise ValueError("no maps to score")
    return hist, accuracies


def kappa(hist: np.ndarray) -> float:
    """Cohen's kappa of a confusion histogram; 0 for an empty one or when chance agreement is 1
    (official)."""
    total = hist.sum()
    if total == 0:
        return 0.0
    observed = np.trace(hist) / total
    expected = float(hist.sum(axis=1) @ hist.sum(axis=0)) / total**2
    return 0.0 if expected == 1 else float((observed - expected) / (1 - expected))


def scd_scores(
    preds: Iterable[np.ndarray], labels: Iterable[np.ndarray], num_classes: int = NUM_CLASSES
) -> dict[str, float]:
    """OA, mIoU, SeK, Fscd and Score (all 0-1) of semantic change maps.

    `preds` and `labels` are sequences of 2-D class maps in matching order: both dates of every
    image (the official code passes the first dates' maps, then the second dates'); a (N, H, W)
    array works.
    """
    hist, accuracies = histogram(preds, labels, num_classes)
    unchanged_both = hist[0, 0]
    predicted_changed = hist.sum() - hist[0].sum()  # rows are predictions
    labelled_changed = hist.sum() - hist[:, 0].sum()  # columns are labels
    both_changed = hist[1:, 1:].sum()
    iou_unchanged = _ratio(unchanged_both, hist[0].sum() + hist[:, 0].sum() - unchanged_both)
    iou_changed = _ratio(both_changed, predicted_changed + labelled_changed - both_changed)
    miou = (iou_unchanged + iou_changed) / 2
    without_unchanged = hist.copy()
    without_unchanged[0, 0] = 0
    sek = kappa(without_unchanged) * math.exp(iou_changed - 1)
    true_positives = np.trace(hist[1:, 1:])
    precision, recall = (
        _ratio(true_positives, predicted_changed),
        _ratio(true_positives, labelled_changed),
    )
    fscd = _ratio(2 * precision * recall, precision + recall)
    return {
        "OA": float(np.mean(accuracies)),
        "mIoU": miou,
        "SeK": sek,
        "Fscd": fscd,
        "Score": 0.3 * miou + 0.7 * sek,
    }
