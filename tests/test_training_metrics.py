"""Metrics against values computed by hand on small tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import compute_metrics, equal_error_rate, log_loss, roc_auc, roc_curve


@pytest.mark.parametrize(
    ("labels", "scores", "auc"),
    [
        # 4 (fake, real) pairs: 0.35 > 0.1, 0.35 < 0.4, 0.8 > both -> 3 / 4
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),
        # a tie between a fake and a real counts one half: (0.5 + 1 + 1 + 1) / 4
        ([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9], 0.875),
        # everything tied: chance
        ([0, 1, 0, 1, 1], [0.3] * 5, 0.5),
        # 2 fakes x 3 reals; pairs won: 0.7 beats 0.2, 0.6 (tie 0.7 -> 0.5); 0.9 beats all
        ([0, 0, 0, 1, 1], [0.2, 0.6, 0.7, 0.7, 0.9], (2.5 + 3) / 6),
        ([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], 1.0),
        ([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], 0.0),
    ],
)
def test_auc_hand_computed(labels: list[int], scores: list[float], auc: float) -> None:
    assert roc_auc(np.array(labels), np.array(scores)) == pytest.approx(auc)


def test_roc_points_with_ties() -> None:
    fpr, tpr, thresholds = roc_curve(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.2, 0.9]))
    # thresholds inf, 0.9, 0.5 (one fake and one real at once), 0.2
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]
    assert thresholds[1:].tolist() == [0.9, 0.5, 0.2]


@pytest.mark.parametrize(
    ("labels", "scores", "eer"),
    [
        ([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], 0.0),
        # ROC (0,0) (0,.5) (.5,.5) (.5,1) (1,1): FPR = FNR = 0.5 exactly at (.5, .5)
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.5),
        # ROC (0,0) (0,1/3) (1/3,1/3) (1/3,2/3): FPR = 1/3 = FNR at the fourth point
        ([1, 0, 1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], 1 / 3),
        # one tie of a fake and a real: segment (0,0)->(1,1) of a 1x1 table crosses at 0.5
        ([0, 1], [0.3, 0.3], 0.5),
    ],
)
def test_eer_hand_computed(labels: list[int], scores: list[float], eer: float) -> None:
    assert equal_error_rate(np.array(labels), np.array(scores)) == pytest.approx(eer)


def test_eer_interpolates_inside_a_segment() -> None:
    # 2 fakes, 1 real; ROC points (0,0) (0,1/2) (1,1/2) (1,1). On the segment from (0,1/2) to
    # (1,1/2) FNR stays 1/2 while FPR runs from 0 to 1: they are equal half-way, EER = 1/2,
    # a point that is on no ROC vertex.
    labels, scores = np.array([1, 0, 1]), np.array([0.9, 0.5, 0.1])
    assert equal_error_rate(labels, scores) == pytest.approx(0.5)


def test_log_loss_hand_computed() -> None:
    value = log_loss(np.array([1, 0]), np.array([0.8, 0.4]))
    assert value == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert log_loss(np.array([1]), np.array([0.0])) == pytest.approx(-math.log(1e-7))


def test_threshold_metrics_hand_computed() -> None:
    # predictions at 0.5: FAKE for .6, .8, .5 (at the threshold counts as FAKE)
    m = compute_metrics(np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.6, 0.4, 0.8, 0.5]))
    tp, fp, fn = 2, 1, 1
    assert (m.n, m.fakes) == (5, 3)
    assert m.accuracy == pytest.approx(3 / 5)
    assert m.precision == pytest.approx(tp / (tp + fp))
    assert m.recall == pytest.approx(tp / (tp + fn))
    assert m.f1 == pytest.approx(2 / 3)


def test_single_class_gives_nan_auc_not_an_error() -> None:
    m = compute_metrics(np.array([0, 0]), np.array([0.2, 0.7]))
    assert math.isnan(m.auc) and math.isnan(m.eer) and m.to_json()["auc"] is None
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.array([1, 1]), np.array([0.1, 0.2]))
