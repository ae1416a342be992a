"""Frame-level metrics: F1 and accuracy per AU (labels 1/0, -1 = unknown and ignored), threshold and median
window tuning, and per-class precision/recall for the view classifier.

F1 of a column is ``2 TP / (2 TP + FP + FN)`` over its annotated frames; it is NaN when the column has
neither positives nor predicted positives (undefined), and means over AUs skip NaN (``nanmean``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from aunets.core.median import median_filter


def _as_masked(labels: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    pred = np.asarray(pred).astype(bool)
    if labels.shape != pred.shape:
        raise ValueError(f"labels {labels.shape} and predictions {pred.shape} differ in shape")
    if labels.ndim == 1:
        labels, pred = labels[:, None], pred[:, None]
    valid = labels >= 0
    return labels == 1, pred, valid


def confusion(labels: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per column TP, FP, FN, TN counts (int64 (K,)) over annotated frames. ``labels`` (N, K) 1/0/-1,
    ``pred`` (N, K) bool."""
    pos, p, valid = _as_masked(labels, pred)
    return {
        "tp": np.sum(pos & p & valid, axis=0),
        "fp": np.sum(~pos & p & valid, axis=0),
        "fn": np.sum(pos & ~p & valid, axis=0),
        "tn": np.sum(~pos & ~p & valid, axis=0),
    }


def f1_per_column(labels: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """F1 per column, float64 (K,), NaN where undefined (see the module docstring)."""
    c = confusion(labels, pred)
    denom = 2 * c["tp"] + c["fp"] + c["fn"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * c["tp"] / np.maximum(denom, 1), np.nan)


def accuracy_per_column(labels: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Fraction of annotated frames predicted right, per column (NaN for a column with no annotations)."""
    c = confusion(labels, pred)
    n = c["tp"] + c["fp"] + c["fn"] + c["tn"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (c["tp"] + c["tn"]) / np.maximum(n, 1), np.nan)


def mean_ignoring_nan(values: np.ndarray) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(v)) if np.any(~np.isnan(v)) else float("nan")


THRESHOLD_GRID: tuple[float, ...] = tuple(float(t) for t in np.round(np.arange(0.05, 0.951, 0.025), 3))


def best_thresholds(labels: np.ndarray, probs: np.ndarray,
                    grid: Sequence[float] = THRESHOLD_GRID) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the threshold of ``grid`` maximising F1 (ties: the one closest to 0.5).
    Returns (thresholds (K,), their F1 (K,)); a column with undefined F1 everywhere keeps 0.5."""
    labels = np.asarray(labels)
    probs = np.asarray(probs)
    k = probs.shape[1]
    best_t = np.full(k, 0.5)
    best_f = np.full(k, np.nan)
    for t in sorted(grid, key=lambda x: abs(x - 0.5)):
        f = f1_per_column(labels, probs >= t)
        better = ~np.isnan(f) & (np.isnan(best_f) | (f > best_f + 1e-12))
        best_t[better] = t
        best_f[better] = f[better]
    return best_t, best_f


def smooth_sequences(probs: np.ndarray, sequence_ids: np.ndarray, window: int, lookahead: int) -> np.ndarray:
    """Median-filter (:func:`aunets.core.median.median_filter`) each sequence separately. ``probs`` (N, K) in
    frame order within each sequence; ``sequence_ids`` (N,)."""
    if window == 1:
        return np.asarray(probs, dtype=np.float32).copy()
    out = np.empty_like(probs, dtype=np.float32)
    ids = np.asarray(sequence_ids)
    for s in np.unique(ids):
        idx = np.flatnonzero(ids == s)
        out[idx] = median_filter(np.asarray(probs[idx], dtype=np.float32), window, lookahead)
    return out


def tune_median(labels: np.ndarray, probs: np.ndarray, sequence_ids: np.ndarray,
                windows: Sequence[int] = (3, 5, 7, 9, 11), causal: bool = True) -> dict[str, Any]:
    """Pick the median window (and per-column thresholds on the smoothed probabilities) maximising mean F1.

    Returns ``{"window", "thresholds" (K,), "f1" (K,), "mean_f1", "by_window": {w: mean F1}}``; window 1 (no
    median) is included as a candidate reference but only chosen if it beats every window in ``windows``."""
    by_window: dict[int, float] = {}
    best: dict[str, Any] = {}
    best_mean = -1.0
    for w in windows:
        smooth = smooth_sequences(probs, sequence_ids, w, 0 if causal else (w - 1) // 2)
        t, f = best_thresholds(labels, smooth)
        m = mean_ignoring_nan(f)
        by_window[int(w)] = m
        if m > best_mean:
            best_mean = m
            best = {"window": int(w), "thresholds": t, "f1": f, "mean_f1": m}
    best["by_window"] = by_window
    return best


def precision_recall(true: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Multi-class: per class precision and recall (float64 (n_classes,), NaN where undefined) and accuracy."""
    true = np.asarray(true)
    pred = np.asarray(pred)
    precision = np.full(n_classes, np.nan)
    recall = np.full(n_classes, np.nan)
    for c in range(n_classes):
        tp = np.sum((pred == c) & (true == c))
        if np.sum(pred == c):
            precision[c] = tp / np.sum(pred == c)
        if np.sum(true == c):
            recall[c] = tp / np.sum(true == c)
    acc = float(np.mean(true == pred)) if len(true) else float("nan")
    return {"precision": precision, "recall": recall, "accuracy": acc}
