"""Fair value under TWAP settlement (the close is the mean of the last L seconds).

Closed-form checks of ``settlement_moments`` / ``model_prob_up`` by hand, then Monte Carlo on
SYNTHETIC Brownian paths (seeded numpy draws, no market data) against the derivation in the
``tools.fair_value`` docstring, then the snapshot wiring of ``estimate_fair_value``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats

from core.snapshot import Candles, MarketSnapshot
from tools import fair_value as fv
from tools.fair_value import model_prob_up, prob_up, settlement_moments

SIGMA = 6.5e-5  # a typical BTC per-sqrt-second volatility
L = 60.0
START = 1_786_060_800.0  # 2026-08-07: TWAP settlement
END = START + 900.0


# --- closed form ----------------------------------------------------------------------------


def test_point_settlement_is_the_old_model() -> None:
    for tau in (0.0, 30.0, 60.0, 300.0):
        mean, var = settlement_moments(0.001, SIGMA, tau, 2.0, 1e-4, 0.8)
        assert mean == 0.001
        assert var == pytest.approx(0.8 * SIGMA**2 * (tau + 2.0) + 1e-8, rel=1e-12)
        assert model_prob_up(0.001, SIGMA, tau, 2.0, 1e-4, None, 0.8) == pytest.approx(
            fv.prob_up_from_moments(mean, var, None), rel=1e-12)


def test_window_ahead_variance_is_tau_minus_two_thirds_of_the_window() -> None:
    # tau = 300 s, L = 60: sigma^2 (300 - 40) = 260 sigma^2 (no lag, no basis, scale 1).
    mean, var = settlement_moments(0.002, SIGMA, 300.0, 0.0, 0.0, settlement="twap", window_s=L)
    assert mean == 0.002
    assert var == pytest.approx(260.0 * SIGMA**2, rel=1e-12)
    # Hand value: z = 0.002 / (6.5e-5 sqrt(260)) = 1.908..., Phi(z) = 0.9718...
    z = 0.002 / (SIGMA * math.sqrt(260.0))
    assert model_prob_up(0.002, SIGMA, 300.0, 0.0, 0.0, None, settlement="twap",
                         window_s=L) == pytest.approx(stats.norm.cdf(z), rel=1e-12)
    # Lag, basis and the scale enter as in the point model.
    _, var2 = settlement_moments(0.0, SIGMA, 300.0, 3.0, 1e-4, 0.5, settlement="twap",
                                 window_s=L)
    assert var2 == pytest.approx(0.5 * SIGMA**2 * (260.0 + 3.0) + 1e-8, rel=1e-12)


def test_inside_the_window_with_the_elapsed_mean_known() -> None:
    # r = 15 s of 60 left: w = 1/4; E = 3/4 ln(M/K) + 1/4 ln(S/K); Var = sigma^2 r^3 / (3 L^2).
    mean, var = settlement_moments(0.004, SIGMA, 15.0, 0.0, 0.0, settlement="twap",
                                   window_s=L, partial_log_moneyness=-0.001)
    assert mean == pytest.approx(0.75 * -0.001 + 0.25 * 0.004, rel=1e-12)
    assert var == pytest.approx(SIGMA**2 * 15.0**3 / (3 * 60.0**2), rel=1e-12)
    # Lag and basis weigh w^2.
    _, var2 = settlement_moments(0.0, SIGMA, 15.0, 2.0, 1e-4, settlement="twap", window_s=L,
                                 partial_log_moneyness=0.0)
    assert var2 == pytest.approx(SIGMA**2 * 15.0**3 / (3 * 60.0**2)
                                 + 0.0625 * (SIGMA**2 * 2.0 + 1e-8), rel=1e-12)


def test_inside_the_window_with_the_elapsed_mean_unknown() -> None:
    # w = 1/2: ahead w^2 sigma^2 r/3 + behind (1-w)^2 sigma^2 (L - r)/3.
    mean, var = settlement_moments(0.001, SIGMA, 30.0, 0.0, 0.0, settlement="twap", window_s=L)
    assert mean == 0.001
    assert var == pytest.approx(SIGMA**2 * (0.25 * 10.0 + 0.25 * 10.0), rel=1e-12)
    # Lag and basis apply to all of it (the whole mean is estimated from the exchange).
    _, var2 = settlement_moments(0.0, SIGMA, 30.0, 2.0, 1e-4, settlement="twap", window_s=L)
    assert var2 == pytest.approx(var + SIGMA**2 * 2.0 + 1e-8, rel=1e-12)


def test_the_variance_is_continuous_where_the_window_begins() -> None:
    for partial in (None, 0.0):
        _, at = settlement_moments(0.0, SIGMA, L, 1.0, 1e-4, settlement="twap", window_s=L,
                                   partial_log_moneyness=partial)
        _, inside = settlement_moments(0.0, SIGMA, L - 1e-9, 1.0, 1e-4, settlement="twap",
                                       window_s=L, partial_log_moneyness=partial)
        assert inside == pytest.approx(at, rel=1e-9)
        assert at == pytest.approx(SIGMA**2 * (L / 3 + 1.0) + 1e-8, rel=1e-12)


def test_twap_is_more_certain_than_a_point_close_at_the_same_moneyness() -> None:
    for tau in (60.0, 120.0, 300.0):
        point = model_prob_up(0.0005, SIGMA, tau, 0.0, 0.0, None)
        twap = model_prob_up(0.0005, SIGMA, tau, 0.0, 0.0, None, settlement="twap", window_s=L)
        assert 0.5 < point < twap


def test_at_the_close_the_observed_mean_decides() -> None:
    # r = 0: nothing is random any more; the mean of the window alone decides (ties go Up).
    assert model_prob_up(0.01, SIGMA, 0.0, 0.0, 0.0, None, settlement="twap", window_s=L,
                         partial_log_moneyness=-1e-6) == 0.0
    assert model_prob_up(-0.01, SIGMA, 0.0, 0.0, 0.0, None, settlement="twap", window_s=L,
                         partial_log_moneyness=0.0) == 1.0
    # Five seconds left, the window averaged 0.1% above K, the price now 0.05% below it:
    # E = 55/60 * 0.001 - 5/60 * 0.0005 > 0 and the sd is tiny, so Up is all but certain.
    p = model_prob_up(-0.0005, SIGMA, 5.0, 0.0, 0.0, None, settlement="twap", window_s=L,
                      partial_log_moneyness=0.001)
    assert p == fv.PROB_MAX


def test_bad_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window_s"):
        settlement_moments(0.0, SIGMA, 10.0, 0.0, 0.0, settlement="twap", window_s=0.0)


# --- Monte Carlo on synthetic Brownian paths ----------------------------------------------


def _synthetic_paths(rng: np.random.Generator, n: int, seconds: float, dt: float
                     ) -> np.ndarray:
    """SYNTHETIC: n Brownian log-price paths (sigma SIGMA) at dt steps from 0, shape
    (n, steps + 1), starting at 0."""
    steps = round(seconds / dt)
    inc = rng.standard_normal((n, steps)) * (SIGMA * math.sqrt(dt))
    out: np.ndarray = np.concatenate([np.zeros((n, 1)), np.cumsum(inc, axis=1)], axis=1)
    return out


def _average(path: np.ndarray, dt: float) -> np.ndarray:
    """Time average of each row by the trapezoid rule (the continuous mean as dt -> 0)."""
    width = (path.shape[1] - 1) * dt
    out: np.ndarray = (path[:, 1:] + path[:, :-1]).sum(axis=1) * dt / 2.0 / width
    return out


@pytest.mark.parametrize("tau", [60.0, 150.0, 300.0])
def test_monte_carlo_window_ahead(tau: float) -> None:
    rng = np.random.default_rng(20260807)
    dt, n = 0.5, 40_000
    paths = _synthetic_paths(rng, n, tau, dt)
    close = _average(paths[:, round((tau - L) / dt):], dt)
    _, var = settlement_moments(0.0, SIGMA, tau, 0.0, 0.0, settlement="twap", window_s=L)
    assert float(close.mean()) == pytest.approx(0.0, abs=4 * math.sqrt(var / n))
    assert float(close.var()) == pytest.approx(var, rel=0.03)  # sd of the estimate ~0.7%
    x = 0.5 * math.sqrt(var)  # half a standard deviation in the money
    p = model_prob_up(x, SIGMA, tau, 0.0, 0.0, None, settlement="twap", window_s=L)
    assert float((x + close >= 0.0).mean()) == pytest.approx(p, abs=0.01)


@pytest.mark.parametrize("r", [5.0, 20.0, 45.0])
def test_monte_carlo_inside_the_window(r: float) -> None:
    rng = np.random.default_rng(int(r))
    dt, n = 0.25, 40_000
    elapsed = L - r
    # The whole window from its start: the first L - r seconds are "observed" per path.
    paths = _synthetic_paths(rng, n, L, dt)
    k = round(elapsed / dt)
    observed_mean = _average(paths[:, :k + 1], dt)
    now = paths[:, k]
    close = _average(paths, dt)
    # Known M: the close given (M, x0) has mean (1-w) M + w x0 and variance w^2 sigma^2 r/3.
    w = r / L
    residual = close - ((1 - w) * observed_mean + w * now)
    _, var_known = settlement_moments(0.0, SIGMA, r, 0.0, 0.0, settlement="twap", window_s=L,
                                      partial_log_moneyness=0.0)
    assert float(residual.mean()) == pytest.approx(0.0, abs=4 * math.sqrt(var_known / n))
    assert float(residual.var()) == pytest.approx(var_known, rel=0.03)
    # Unknown M: around the price seen now the close has variance
    # w^2 sigma^2 r/3 + (1-w)^2 sigma^2 (L-r)/3.
    _, var_unknown = settlement_moments(0.0, SIGMA, r, 0.0, 0.0, settlement="twap", window_s=L)
    assert float((close - now).var()) == pytest.approx(var_unknown, rel=0.03)
    # P(up) with one path's own M and x0, against the paths sharing (nearly) them: checked
    # through the standardised residual's CDF at a few points instead.
    z = residual / math.sqrt(var_known)
    for q in (-1.0, 0.0, 0.7):
        assert float((z <= q).mean()) == pytest.approx(stats.norm.cdf(q), abs=0.01)


# --- the snapshot ---------------------------------------------------------------------------


def _snapshot(*, as_of: float, price: float, partial: float | None = None,
              settlement: str = "twap") -> MarketSnapshot:
    c = (100_000.0, 100_060.0, 99_990.0, 100_030.0, 100_000.0) * 6
    ts = tuple(START - 60.0 * (len(c) - 1 - i) for i in range(len(c)))
    return MarketSnapshot(
        market_id="btc-updown-15m-1786060800", as_of=as_of, window_start=START,
        window_end=END, price_to_beat=100_000.0, price_to_beat_verified=True, price=price,
        price_ts=as_of, candles=Candles(interval_s=60.0, close_ts=ts, open=c, high=c, low=c,
                                        close=c),
        settlement=settlement,  # type: ignore[arg-type]
        settlement_window_s=L, settlement_partial_mean=partial)


def test_estimate_uses_the_snapshot_settlement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fv, "default_model", lambda: fv.FairValueModel())
    point = fv.estimate_fair_value(_snapshot(as_of=END - 120.0, price=100_020.0,
                                             settlement="point"))
    twap = fv.estimate_fair_value(_snapshot(as_of=END - 120.0, price=100_020.0))
    assert point is not None
    assert twap is not None
    sigma = point.sigma_per_sqrt_s
    x = math.log(100_020.0 / 100_000.0)
    assert point.model_up == pytest.approx(prob_up(x, sigma, 120.0), rel=1e-12)
    assert twap.model_up == pytest.approx(prob_up(x, sigma, 120.0 - 40.0), rel=1e-12)
    # In the final minute the partial mean counts with weight (L - r) / L.
    late = fv.estimate_fair_value(_snapshot(as_of=END - 15.0, price=99_990.0,
                                            partial=100_030.0))
    assert late is not None
    assert late.model_up is not None
    mean = 0.75 * math.log(100_030.0 / 100_000.0) + 0.25 * math.log(99_990.0 / 100_000.0)
    var = late.sigma_per_sqrt_s**2 * 15.0**3 / (3 * L**2)
    assert late.model_up == pytest.approx(prob_up(mean, 1.0, var), rel=1e-12)
    assert late.model_up > 0.5 > prob_up(math.log(99_990.0 / 100_000.0), sigma, 15.0)


def test_partial_mean_only_in_the_final_window_of_a_twap_market() -> None:
    with pytest.raises(ValidationError, match="settlement_partial_mean"):
        _snapshot(as_of=END - 15.0, price=100_000.0, partial=100_000.0, settlement="point")
    with pytest.raises(ValidationError, match="settlement_partial_mean"):
        _snapshot(as_of=END - 120.0, price=100_000.0, partial=100_000.0)
    snap = _snapshot(as_of=END - 15.0, price=100_000.0, partial=100_000.0)
    assert snap.settlement_elapsed_s == 45.0
    assert _snapshot(as_of=END - 120.0, price=1.0).settlement_elapsed_s == 0.0
