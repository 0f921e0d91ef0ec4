"""Binary classification metrics in plain numpy: ROC, AUC (ties count half), log-loss, EER and
the threshold metrics, and a group-wise bootstrap interval of the AUC. Label 1 = FAKE
(positive), scores are P(fake).

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


def _rank_auc(y: np.ndarray, s: np.ndarray) -> float:
    """AUC by the Mann-Whitney U statistic (average ranks for ties); equal to ``roc_auc``."""
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # 1-based average rank of ties
    positives = int(y.sum())
    negatives = y.size - positives
    return float(
        (ranks[y == 1].sum() - positives * (positives + 1) / 2.0) / (positives * negatives)
    )


@dataclass(frozen=True)
class AucInterval:
    """A percentile bootstrap interval of the AUC, resampling whole groups."""

    low: float
    high: float
    level: float
    groups: int
    resamples: int  # resamples that held both classes (the others are skipped)

    def to_json(self) -> dict[str, float | int]:
        """A plain dict for result files."""
        return asdict(self)


def grouped_auc_interval(
    labels: np.ndarray,
    scores: np.ndarray,
    groups: list[str] | np.ndarray,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> AucInterval | None:
    """How far the AUC could move on other data like this: a percentile bootstrap that draws
    whole groups (a face model, a person, a clip) with replacement, so that correlated rows of
    one group move together and the interval is not narrowed by counting them as independent.

    Returns None unless at least two groups hold a FAKE row and two a REAL one (with fewer, the
    interval would only reshuffle one group's rows). Resamples that draw one class only are
    skipped and counted. Seeded: the same inputs give the same interval.
    """
    y, s = _check(labels, scores)
    names = np.asarray(groups, dtype=object).ravel()
    if names.shape != y.shape:
        raise ValueError(f"groups: expected {y.size} entries but got {names.size}")
    members = [np.flatnonzero(names == g) for g in dict.fromkeys(names.tolist())]
    with_fake = sum(bool(y[m].any()) for m in members)
    with_real = sum(not bool(y[m].all()) for m in members)
    if with_fake < 2 or with_real < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        picked = np.concatenate([members[i] for i in rng.integers(len(members), size=len(members))])
        yy = y[picked]
        if 0 < int(yy.sum()) < yy.size:
            values.append(_rank_auc(yy, s[picked]))
    if not values:  # only possible with very few resamples
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return AucInterval(float(low), float(high), level, len(members), len(values))


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
