"""Frame metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np

from aunets.core.median import median_filter
from aunets.models.metrics import (
    accuracy_per_column,
    best_thresholds,
    confusion,
    f1_per_column,
    precision_recall,
    smooth_sequences,
    tune_median,
)


def test_f1_and_accuracy_hand_computed() -> None:
    # column 0: TP=2 FP=1 FN=1 TN=2 -> F1 = 4 / (4 + 1 + 1) = 2/3, acc = 4/6
    # column 1: one unknown label (-1) is ignored: TP=1 FP=0 FN=1 TN=3 -> F1 = 2/3, acc = 4/5
    labels = np.array([[1, 1], [1, 0], [1, -1], [0, 1], [0, 0], [0, 0]])
    pred = np.array([[1, 1], [1, 0], [0, 1], [1, 0], [0, 0], [0, 0]], dtype=bool)
    c = confusion(labels, pred)
    assert c["tp"].tolist() == [2, 1] and c["fp"].tolist() == [1, 0]
    assert c["fn"].tolist() == [1, 1] and c["tn"].tolist() == [2, 3]
    np.testing.assert_allclose(f1_per_column(labels, pred), [2 / 3, 2 / 3])
    np.testing.assert_allclose(accuracy_per_column(labels, pred), [4 / 6, 4 / 5])


def test_f1_undefined_is_nan() -> None:
    f1 = f1_per_column(np.array([[0], [0]]), np.array([[False], [False]]))
    assert math.isnan(f1[0])


def test_best_threshold_separates() -> None:
    labels = np.array([[0], [0], [1], [1]])
    probs = np.array([[0.1], [0.3], [0.62], [0.9]], dtype=np.float32)
    t, f = best_thresholds(labels, probs)
    assert 0.3 < t[0] <= 0.62 and f[0] == 1.0


def test_smooth_sequences_is_per_sequence() -> None:
    rng = np.random.default_rng(0)
    probs = rng.random((12, 2)).astype(np.float32)
    seq = np.array([0] * 5 + [1] * 7)
    out = smooth_sequences(probs, seq, 3, 0)
    np.testing.assert_allclose(out[:5], median_filter(probs[:5], 3, 0))
    np.testing.assert_allclose(out[5:], median_filter(probs[5:], 3, 0))


def test_tune_median_prefers_window_that_removes_flicker() -> None:
    # a long positive episode with isolated single-frame dropouts: a window >= 3 removes them.
    labels = np.zeros((60, 1), dtype=int)
    labels[20:45] = 1
    probs = labels.astype(np.float32) * 0.9 + 0.05
    probs[[24, 30, 36]] = 0.05
    probs[[5, 50]] = 0.95
    res = tune_median(labels, probs, np.zeros(60, dtype=int), windows=(1, 3, 5))
    assert res["by_window"][1] < res["by_window"][3]
    assert res["window"] in (3, 5)


def test_precision_recall_per_class() -> None:
    true = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    pr = precision_recall(true, pred, 3)
    np.testing.assert_allclose(pr["precision"][:2], [1 / 2, 2 / 3])
    assert math.isnan(pr["precision"][2])
    np.testing.assert_allclose(pr["recall"], [1 / 2, 1.0, 0.0])
    assert pr["accuracy"] == 3 / 5
