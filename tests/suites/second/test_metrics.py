"""SECOND's scores: the golden vector from the official code, and scikit-learn's formulation as
the oracle."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnbench.suites.second.metrics import kappa, scd_scores

# SUITES.md 5.2: computed with SCanNet's SCDD_eval_all.
LABEL_T1 = [[0, 0, 1, 1], [0, 0, 1, 1], [0, 5, 5, 0], [0, 0, 0, 0]]
LABEL_T2 = [[0, 0, 3, 3], [0, 0, 3, 3], [0, 2, 2, 0], [0, 0, 0, 0]]
PRED_T1 = [[0, 0, 1, 1], [0, 0, 1, 0], [0, 5, 2, 0], [0, 0, 0, 4]]
PRED_T2 = [[0, 0, 3, 3], [0, 0, 3, 0], [0, 2, 2, 0], [0, 0, 0, 6]]


def test_the_golden_vector():
    scores = scd_scores(np.array([PRED_T1, PRED_T2]), np.array([LABEL_T1, LABEL_T2]))
    assert scores["mIoU"] == pytest.approx(0.766234, abs=1e-6)
    assert scores["SeK"] == pytest.approx(0.422706, abs=1e-6)
    assert scores["Fscd"] == pytest.approx(0.750000, abs=1e-6)
    assert scores["Score"] == pytest.approx(0.525764, abs=1e-6)
    # 3 of 16 pixels wrong on the first date, 2 on the second: per-map accuracy, averaged.
    assert scores["OA"] == pytest.approx((13 / 16 + 14 / 16) / 2, abs=1e-12)


def sklearn_scores(preds: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    """The independent formulation of SUITES.md 5.2: kappa on the pixels not unchanged in both, IoU
    of the binary change map; a ratio that is 0/0 counts as 0 (the official cal_kappa's
    convention)."""
    from scipy.stats import hmean
    from sklearn.metrics import accuracy_score, cohen_kappa_score, jaccard_score

    pred, label = (
        np.concatenate([p.ravel() for p in preds]),
        np.concatenate([t.ravel() for t in labels]),
    )
    keep = ~((pred == 0) & (label == 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kappa of a single-class sample is 0/0
        kappa_n0 = float(cohen_kappa_score(label[keep], pred[keep])) if keep.any() else 0.0
    kappa_n0 = 0.0 if math.isnan(kappa_n0) else kappa_n0
    iou_changed = jaccard_score(label > 0, pred > 0, pos_label=1, zero_division=0)
    iou_unchanged = jaccard_score(label > 0, pred > 0, pos_label=0, zero_division=0)
    right = ((pred == label) & (label > 0)).sum()
    precision = right / (pred > 0).sum() if (pred > 0).any() else 0.0
    recall = right / (label > 0).sum() if (label > 0).any() else 0.0
    fscd = float(hmean([precision, recall])) if precision and recall else 0.0
    miou = (iou_unchanged + iou_changed) / 2
    sek = kappa_n0 * math.exp(iou_changed - 1)
    return {
        "OA": float(np.mean([accuracy_score(t.ravel(), p.ravel()) for p, t in zip(preds, labels)])),
        "mIoU": miou,
        "SeK": sek,
        "Fscd": fscd,
        "Score": 0.3 * miou + 0.7 * sek,
    }


@st.composite
def map_sets(draw):
    """1-3 pairs of equally sized maps; classes often 0, as in SECOND, and sometimes no change at
    all."""
    count = draw(st.integers(1, 3)) * 2
    height, width = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    change = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)

    def maps():
        classes = rng.integers(1, 7, (count, height, width))
        return np.where(rng.random((count, height, width)) < change, classes, 0)

    return list(maps()), list(maps())


@settings(max_examples=100, deadline=None)
@given(map_sets())
def test_scores_agree_with_sklearn(sets):
    preds, labels = sets
    ours, oracle = scd_scores(preds, labels), sklearn_scores(preds, labels)
    assert set(ours) == {"OA", "mIoU", "SeK", "Fscd", "Score"}
    for name, value in oracle.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name


@settings(max_examples=30, deadline=None)
@given(map_sets())
def test_a_perfect_prediction_has_full_miou_fscd_and_sek_unless_kappa_is_degenerate(sets):
    _, labels = sets
    scores = scd_scores(labels, labels)
    assert scores["OA"] == 1.0
    changed = np.concatenate([m.ravel() for m in labels])
    classes = set(changed[changed > 0].tolist())
    if len(classes) > 1:
        assert scores["SeK"] == pytest.approx(1.0) and scores["Fscd"] == pytest.approx(1.0)
        assert scores["mIoU"] == pytest.approx(1.0 if (changed == 0).any() else 0.5)


def test_oa_averages_each_maps_accuracy_as_eval_scd_does():
    # Eval_SCD.py: AverageMeter over maps of accuracy(pred, label), not trace(hist) / hist.sum();
    # the two agree only when every map has one size (SECOND's 512x512)
    small_pred, small_label = (
        np.zeros((2, 2), dtype=np.uint8),
        np.array([[0, 0], [0, 1]], dtype=np.uint8),
    )
    big = np.zeros((6, 6), dtype=np.uint8)
    scores = scd_scores([small_pred, big], [small_label, big])
    assert scores["OA"] == pytest.approx((3 / 4 + 1) / 2) and scores["OA"] != pytest.approx(39 / 40)


def test_no_change_anywhere_gives_defined_numbers_without_warnings():
    still = np.zeros((4, 5, 5), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = scd_scores(still, still)
        assert scores == {"OA": 1.0, "mIoU": 0.5, "SeK": 0.0, "Fscd": 0.0, "Score": 0.15}
        false_alarm = still.copy()
        false_alarm[0, 0, 0] = 3
        alarmed = scd_scores(false_alarm, still)
    assert (
        alarmed["Fscd"] == 0.0
        and alarmed["SeK"] == 0.0
        and all(math.isfinite(v) for v in alarmed.values())
    )
    assert alarmed["mIoU"] == pytest.approx((99 / 100) / 2)


def test_kappa_follows_the_official_conventions():
    assert kappa(np.zeros((7, 7))) == 0.0
    single = np.zeros((7, 7))
    single[3, 3] = 5  # chance agreement 1
    assert kappa(single) == 0.0
    assert kappa(np.diag([2, 3, 0, 0, 0, 0, 1])) == 1.0


@pytest.mark.parametrize(
    "preds,labels,message",
    [
        ([np.zeros((2, 2), int)], [np.zeros((2, 3), int)], "differ in shape"),
        ([np.full((2, 2), 7)], [np.zeros((2, 2), int)], "prediction holds classes outside 0..6"),
        ([np.zeros((2, 2), int)], [np.full((2, 2), -1)], "label holds classes"),
        ([], [], "no maps"),
    ],
)
def test_bad_maps_are_refused(preds, labels, message):
    with pytest.raises(ValueError, match=message):
        scd_scores(preds, labels)
