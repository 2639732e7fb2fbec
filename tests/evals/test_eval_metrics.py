"""evals.metrics against values computed by hand (inputs are small synthetic numbers)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evals import metrics


def test_brier_by_hand() -> None:
    # ((0.8 - 1)^2 + (0.3 - 0)^2) / 2 = (0.04 + 0.09) / 2
    assert metrics.brier([0.8, 0.3], [1, 0]) == pytest.approx(0.065, abs=1e-15)
    assert metrics.brier([0.5] * 7, [1, 0, 1, 1, 0, 0, 1]) == 0.25
    assert metrics.brier([1.0, 0.0], [1, 0]) == 0.0
    assert math.isnan(metrics.brier([], []))


def test_log_loss_by_hand_and_clipping() -> None:
    # -(ln 0.8 + ln 0.7) / 2
    expected = -(math.log(0.8) + math.log(0.7)) / 2
    assert metrics.log_loss([0.8, 0.3], [1, 0]) == pytest.approx(expected, rel=1e-14)
    assert metrics.log_loss([0.5, 0.5], [1, 0]) == pytest.approx(math.log(2), rel=1e-14)
    # Certain and wrong costs -ln(0.001), not infinity; certain and right costs -ln(0.999).
    assert metrics.log_loss([0.0], [1]) == pytest.approx(-math.log(0.001), rel=1e-14)
    assert metrics.log_loss([1.0], [1]) == pytest.approx(-math.log(0.999), rel=1e-14)
    assert metrics.LOG_LOSS_CLIP == 0.001


def test_ece_and_reliability_by_hand() -> None:
    p = [0.05, 0.15, 0.15, 0.95]
    y = [0, 1, 0, 1]
    # bin [0,0.1): |0.05 - 0| * 1/4; bin [0.1,0.2): |0.15 - 0.5| * 2/4; bin [0.9,1]: |0.95-1| * 1/4
    assert metrics.ece(p, y) == pytest.approx(0.0125 + 0.175 + 0.0125, abs=1e-15)
    curve = metrics.reliability_curve(p, y)
    assert [(b.lower, b.n, b.mean_p, b.frequency) for b in curve] == [
        (0.0, 1, 0.05, 0.0), (0.1, 2, 0.15, 0.5), (0.9, 1, 0.95, 1.0)]
    # p = 1 belongs to the last bin, p = 0.1 to the second (bins are [lo, hi)).
    edges = metrics.reliability_curve([1.0, 0.1, 0.0], [1, 0, 0])
    assert [(b.lower, b.n) for b in edges] == [(0.0, 1), (0.1, 1), (0.9, 1)]
    # A perfectly calibrated forecaster in every bin has ECE 0.
    assert metrics.ece([0.5, 0.5, 0.25, 0.25, 0.25, 0.25], [1, 0, 1, 0, 0, 0]) == 0.0


def test_forecast_scores_block() -> None:
    block = metrics.forecast_scores([0.8, 0.3], [1, 0])
    assert set(block) == {"brier", "log_loss", "ece", "n"}
    assert block["n"] == 2
    # bins [0.3,0.4) and [0.8,0.9): |0.3 - 0| / 2 + |0.8 - 1| / 2
    assert block["ece"] == pytest.approx(0.25, abs=1e-15)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        metrics.brier([1.2], [1])
    with pytest.raises(ValueError, match="0 or 1"):
        metrics.brier([0.5], [2])
    with pytest.raises(ValueError, match="outcomes"):
        metrics.log_loss([0.5, 0.5], [1])


def test_auc_by_hand() -> None:
    # Positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs ranked right.
    assert metrics.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert metrics.auc([0.5, 0.5], [0, 1]) == 0.5  # a tie counts one half
    assert math.isnan(metrics.auc([0.2, 0.3], [1, 1]))


def test_max_drawdown_by_hand() -> None:
    # equity 0, 5, 2, -2, 4, -6, -4: peak 5, trough -6
    assert metrics.max_drawdown([5, -3, -4, 6, -10, 2]) == 11.0
    # The curve starts at 0: losing from the start is a drawdown too.
    assert metrics.max_drawdown([-2, 1]) == 2.0
    assert metrics.max_drawdown([1, 2, 3]) == 0.0
    assert metrics.max_drawdown([]) == 0.0
    assert list(metrics.equity_curve([5, -3])) == [5.0, 2.0]


def test_bootstrap_ci_by_hand() -> None:
    # Two windows worth 0 and 10: a resample's total is 0, 10 or 20 with probabilities
    # 1/4, 1/2, 1/4, so the 2.5th and 97.5th percentiles are 0 and 20.
    assert metrics.bootstrap_ci([0.0, 10.0]) == (0.0, 20.0)
    # Identical windows leave nothing to resample.
    assert metrics.bootstrap_ci([1.0, 1.0, 1.0]) == (3.0, 3.0)
    assert metrics.bootstrap_ci([]) == (0.0, 0.0)


def test_bootstrap_ci_is_seeded_and_centred() -> None:
    rng = np.random.default_rng(7)
    per_window = rng.normal(1.0, 5.0, size=40)  # synthetic window P&L
    a = metrics.bootstrap_ci(per_window)
    assert a == metrics.bootstrap_ci(per_window)  # fixed seed: reproducible
    assert a != metrics.bootstrap_ci(per_window, seed=1)
    lo, hi = a
    total = float(per_window.sum())
    assert lo < total < hi
    # Normal theory for a sum of 40 draws: +-1.96 * sd * sqrt(40).
    half = 1.96 * float(per_window.std()) * math.sqrt(40)
    assert hi - lo == pytest.approx(2 * half, rel=0.1)


def test_max_concurrent_exposure() -> None:
    # Open on [opened, closed): 5 + 3 overlap on [5, 10); at 10 one closes as another opens.
    assert metrics.max_concurrent_exposure([(0, 10, 5), (5, 15, 3), (10, 20, 4)]) == 8.0
    assert metrics.max_concurrent_exposure([(0, 900, 30), (900, 1800, 20)]) == 30.0
    assert metrics.max_concurrent_exposure([]) == 0.0


def test_percentiles_in_ms() -> None:
    assert metrics.percentile_ms([0.001, 0.002, 0.003], 50) == pytest.approx(2.0)
    assert metrics.percentile_ms([0.001, 0.002], 99) == pytest.approx(1.99)
    assert math.isnan(metrics.percentile_ms([], 50))
