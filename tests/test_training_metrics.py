"""Metrics against values computed by hand on small tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import (
    _rank_auc,
    compute_metrics,
    equal_error_rate,
    grouped_auc_interval,
    log_loss,
    roc_auc,
    roc_curve,
)


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


def test_rank_auc_equals_the_trapezoid_auc_with_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        y = np.r_[0, 1, rng.integers(0, 2, int(rng.integers(0, 40)))]
        s = rng.integers(0, 4, y.size).astype(float)  # many ties
        assert _rank_auc(y, s) == pytest.approx(roc_auc(y, s), abs=1e-12)


def _paired_groups(count: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """``count`` groups of one real and one fake, the fake scoring higher on average."""
    y = np.tile([0, 1], count)
    s = rng.normal(size=y.size) + 0.8 * y
    g = np.repeat([f"g{i}" for i in range(count)], 2)
    return y, s, g


def test_grouped_interval_brackets_the_auc_and_is_seeded() -> None:
    y, s, g = _paired_groups(30, np.random.default_rng(0))
    ci = grouped_auc_interval(y, s, g, resamples=500)
    assert ci is not None and ci.groups == 30 and ci.resamples == 500 and ci.level == 0.95
    assert ci.low < roc_auc(y, s) < ci.high
    assert grouped_auc_interval(y, s, g, resamples=500) == ci
    assert grouped_auc_interval(y, s, g, resamples=500, seed=1) != ci


def test_grouped_interval_narrows_with_more_groups() -> None:
    rng = np.random.default_rng(1)
    few = grouped_auc_interval(*_paired_groups(6, rng), resamples=500)
    many = grouped_auc_interval(*_paired_groups(200, rng), resamples=500)
    assert few is not None and many is not None
    assert many.high - many.low < (few.high - few.low) / 2


def test_copies_inside_a_group_do_not_narrow_the_interval() -> None:
    # ten identical copies of each row: resampling groups sees 12 groups, as in the collapsed
    # data; resampling rows would count 240 independent rows and report a far tighter interval
    y, s, g = _paired_groups(12, np.random.default_rng(2))
    collapsed = grouped_auc_interval(y, s, g, resamples=1000)
    copies = grouped_auc_interval(
        np.repeat(y, 10), np.repeat(s, 10), np.repeat(g, 10), resamples=1000
    )
    rows = grouped_auc_interval(
        np.repeat(y, 10), np.repeat(s, 10), np.arange(240).astype(str), resamples=1000
    )
    assert collapsed is not None and copies is not None and rows is not None
    assert copies.low == pytest.approx(collapsed.low, abs=0.03)
    assert copies.high == pytest.approx(collapsed.high, abs=0.03)
    assert rows.high - rows.low < (copies.high - copies.low) / 2


def test_grouped_interval_is_none_without_enough_to_resample() -> None:
    assert grouped_auc_interval(np.array([0, 1]), np.array([0.1, 0.9]), ["a", "a"]) is None
    assert grouped_auc_interval(np.array([1, 1]), np.array([0.1, 0.9]), ["a", "b"]) is None
    # one group holds every fake: resampling could only reshuffle it
    y = np.r_[np.zeros(29), 1, 1]
    groups = np.array([str(i) for i in range(29)] + ["f", "f"], dtype=object)
    assert grouped_auc_interval(y, np.linspace(0, 1, 31), groups) is None
    groups[-1] = "f2"
    assert grouped_auc_interval(y, np.linspace(0, 1, 31), groups) is not None
    with pytest.raises(ValueError, match="groups"):
        grouped_auc_interval(np.array([0, 1]), np.array([0.1, 0.9]), ["a"])
    perfect = grouped_auc_interval(*_paired_groups_perfect())
    assert perfect is not None and perfect.low == perfect.high == 1.0


def _paired_groups_perfect() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.tile([0, 1], 5)
    return y, y + 0.0, np.repeat(np.arange(5).astype(str), 2)
