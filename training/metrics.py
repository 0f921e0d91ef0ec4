"""Binary classification metrics in plain numpy: ROC, AUC (ties count half), log-loss, EER and
the threshold metrics. Label 1 = FAKE (positive), scores are P(fake).

Threshold metrics call a score FAKE at or above the threshold, as ``dfstream`` does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

LOG_LOSS_EPS = 1e-7


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores: expected equal lengths but got {y.size}, {s.size}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels: expected only 0 (REAL) and 1 (FAKE)")
    return y, s


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """(fpr, tpr, thresholds): one point per distinct score, from (0, 0) to (1, 1).

    Tied scores form one step, so the curve through a tie is a diagonal segment.
    """
    y, s = _check(labels, scores)
    positives, negatives = int(y.sum()), int(y.size - y.sum())
    if positives == 0 or negatives == 0:
        raise ValueError("ROC needs both classes")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), y.size - 1]
    tp = np.cumsum(y)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    thresholds = np.r_[np.inf, s[last_of_tie]]
    return fpr, tpr, thresholds


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids): the chance that a random fake scores above a
    random real, ties counting one half."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """The rate where false positives equal false negatives, interpolated along the ROC."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    diff = fpr - fnr  # rises from -1 to +1 along the curve
    cross = int(np.flatnonzero(diff >= 0)[0])
    if diff[cross] == 0 or cross == 0:
        return float(fpr[cross])
    a, b = cross - 1, cross
    t = -diff[a] / (diff[b] - diff[a])
    return float(fpr[a] + t * (fpr[b] - fpr[a]))


def log_loss(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean binary cross-entropy, probabilities clipped to [1e-7, 1 - 1e-7]."""
    y, s = _check(labels, scores)
    p = np.clip(s, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@dataclass(frozen=True)
class Metrics:
    """Every metric of one level (frame, window or video); NaN where undefined."""

    n: int
    fakes: int
    auc: float
    log_loss: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    eer: float

    def to_json(self) -> dict[str, float | int | None]:
        """A JSON-safe dict (NaN becomes null)."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


def compute_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> Metrics:
    """All metrics of one table of (label, score) rows."""
    y, s = _check(labels, scores)
    predicted = s >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    if math.isnan(precision) or math.isnan(recall):
        f1 = math.nan
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both = 0 < int(y.sum()) < y.size
    return Metrics(
        n=int(y.size),
        fakes=int(y.sum()),
        auc=roc_auc(y, s) if both else math.nan,
        log_loss=log_loss(y, s) if y.size else math.nan,
        accuracy=_ratio(int(np.sum(predicted == (y == 1))), y.size),
        precision=precision,
        recall=recall,
        f1=f1,
        eer=equal_error_rate(y, s) if both else math.nan,
    )
