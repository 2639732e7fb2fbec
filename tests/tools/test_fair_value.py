"""tools.fair_value: closed-form P(up), EWMA volatility, and edges after fees."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from core.snapshot import BookTop, Candles, MarketSnapshot
from tools import fair_value as fv
from tools.fair_value import estimate_fair_value, ewma_sigma_per_sqrt_s, prob_up

WINDOW_START = 1_766_723_400.0


@pytest.fixture(autouse=True)
def _closed_form_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the closed form itself: no basis/lag allowance, normal tails, no
    market blend (the builtin parameters).  The versioned model is tested in
    tests/test_forecast_model.py."""
    monkeypatch.setattr(fv, "default_model", lambda: fv.FairValueModel())
WINDOW_END = WINDOW_START + 900.0


def _candles(close: list[float] | np.ndarray, interval_s: float = 60.0) -> Candles:
    c = tuple(float(v) for v in close)
    # The last candle closes at the window start, so any as_of inside the window is valid.
    ts = tuple(WINDOW_START - interval_s * (len(c) - 1 - i) for i in range(len(c)))
    return Candles(interval_s=interval_s, close_ts=ts, open=c, high=c, low=c, close=c)


def _snapshot(
    *,
    price: float = 100_000.0,
    price_to_beat: float | None = 100_000.0,
    as_of: float = WINDOW_START + 300.0,
    candles: Candles | None = None,
    up: BookTop | None = None,
    down: BookTop | None = None,
    fee_rate: float = 0.07,
) -> MarketSnapshot:
    return MarketSnapshot(
        market_id="btc-updown-15m-test",
        as_of=as_of,
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        price_to_beat=price_to_beat,
        price_to_beat_verified=True,
        price=price,
        price_ts=as_of,
        candles=candles if candles is not None else _candles([100_000.0] * 30),
        up=up,
        down=down,
        book_ts=as_of,
        fee_rate=fee_rate,
    )


# --- prob_up -------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [1e-6, 1.0, 60.0, 899.0, 1e6])
@pytest.mark.parametrize("sigma", [1e-6, 6.5e-5, 1e-2])
@pytest.mark.parametrize("dof", [None, 2.5, 4.0, 30.0])
def test_at_the_money_is_exactly_half(tau: float, sigma: float, dof: float | None) -> None:
    assert prob_up(0.0, sigma, tau, dof) == 0.5


@pytest.mark.parametrize("dof", [None, 4.0])
def test_expiry_is_decided_and_ties_go_up(dof: float | None) -> None:
    assert prob_up(1e-9, 6.5e-5, 0.0, dof) == 1.0
    assert prob_up(-1e-9, 6.5e-5, 0.0, dof) == 0.0
    assert prob_up(0.0, 6.5e-5, 0.0, dof) == 1.0
    # Past the close is the same as at it.
    assert prob_up(0.0, 6.5e-5, -5.0, dof) == 1.0
    assert prob_up(-0.01, 6.5e-5, -5.0, dof) == 0.0


def test_deep_in_and_out_of_the_money_clip() -> None:
    assert prob_up(0.05, 6.5e-5, 600.0) == fv.PROB_MAX
    assert prob_up(-0.05, 6.5e-5, 600.0) == fv.PROB_MIN
    assert prob_up(0.003, 6.5e-5, 600.0) > 0.9
    assert prob_up(-0.003, 6.5e-5, 600.0) < 0.1


def test_hand_computed_normal_value() -> None:
    # z = 0.001 / (1e-4 * sqrt(100)) = 1.0 -> Phi(1.0)
    assert prob_up(0.001, 1e-4, 100.0) == pytest.approx(0.841344746, abs=1e-9)
    assert prob_up(-0.001, 1e-4, 100.0) == pytest.approx(1.0 - 0.841344746, abs=1e-9)


def test_student_t_is_unit_variance_and_heavier_tailed() -> None:
    # Unit-variance t(5): P(T <= z) = t5.cdf(z * sqrt(5 / 3)).
    want = stats.t.cdf(1.0 * math.sqrt(5.0 / 3.0), 5.0)
    assert prob_up(0.001, 1e-4, 100.0, tail_dof=5.0) == pytest.approx(want, abs=1e-12)
    # Same variance, fatter tails: more probability far out of the money than the normal.
    assert prob_up(-0.003, 1e-4, 100.0, tail_dof=5.0) > prob_up(-0.003, 1e-4, 100.0)
    # Very many degrees of freedom converge to the normal.
    assert prob_up(0.001, 1e-4, 100.0, tail_dof=1e7) == pytest.approx(0.841344746, abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=-0.2, max_value=0.2, allow_nan=False),
    st.floats(min_value=0.0, max_value=1e-2, allow_nan=False),
    st.floats(min_value=0.0, max_value=1e5, allow_nan=False),
    st.one_of(st.none(), st.floats(min_value=2.01, max_value=100.0)),
)
def test_symmetry_and_bounds(x: float, sigma: float, tau: float, dof: float | None) -> None:
    p = prob_up(x, sigma, tau, dof)
    q = prob_up(-x, sigma, tau, dof)
    assert 0.0 <= p <= 1.0
    if sigma * math.sqrt(tau) > 0.0 and x != 0.0:
        assert p + q == pytest.approx(1.0, abs=1e-15)
        assert fv.PROB_MIN <= p <= fv.PROB_MAX


@pytest.mark.parametrize("dof", [None, 4.0])
def test_monotone_in_moneyness(dof: float | None) -> None:
    xs = np.linspace(-0.01, 0.01, 401)
    ps = [prob_up(float(x), 6.5e-5, 300.0, dof) for x in xs]
    assert all(b >= a for a, b in itertools.pairwise(ps))
    assert ps[0] < 0.5 < ps[-1]


def test_prob_up_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="tail_dof"):
        prob_up(0.001, 1e-4, 100.0, tail_dof=2.0)
    with pytest.raises(ValueError, match="sigma"):
        prob_up(0.001, -1e-4, 100.0)
    with pytest.raises(ValueError, match="log_moneyness"):
        prob_up(math.nan, 1e-4, 100.0)


# --- ewma_sigma_per_sqrt_s -----------------------------------------------------------------


def test_ewma_hand_computed() -> None:
    # log returns 0.01 then 0.02; lam 0.5 weighs them 0.5 and 1:
    # var = (0.5 * 1e-4 + 1 * 4e-4) / 1.5 = 3e-4 per 4-second interval -> 7.5e-5 per second.
    close = np.exp(np.array([0.0, 0.01, 0.03]))
    got = ewma_sigma_per_sqrt_s(close, interval_s=4.0, lam=0.5, floor=0.0)
    assert got == pytest.approx(math.sqrt(7.5e-5), rel=1e-12)


def test_ewma_constant_absolute_return() -> None:
    # |log return| identical every minute: EWMA variance is that square whatever lambda.
    close = 100.0 * np.exp(0.0005 * np.array([0, 1, 0, 1, 2, 1, 2, 3], dtype=float))
    got = ewma_sigma_per_sqrt_s(close, interval_s=60.0, lam=0.94, floor=0.0)
    assert got == pytest.approx(0.0005 / math.sqrt(60.0), rel=1e-9)


def test_ewma_floor_and_degenerate_input() -> None:
    floor = 2e-5
    assert ewma_sigma_per_sqrt_s(np.full(50, 100.0), 60.0, 0.94, floor) == floor
    assert ewma_sigma_per_sqrt_s(np.array([100.0]), 60.0, 0.94, floor) == floor
    assert ewma_sigma_per_sqrt_s(np.array([], dtype=float), 60.0, 0.94, floor) == floor
    # A volatile series is untouched by the floor.
    rough = 100.0 * np.exp(0.01 * np.array([0, 1, 0, 1, 0], dtype=float))
    assert ewma_sigma_per_sqrt_s(rough, 60.0, 0.94, floor) > floor


def test_ewma_drops_bad_closes() -> None:
    clean = np.exp(np.array([0.0, 0.01, 0.03]))
    dirty = np.array([clean[0], math.nan, clean[1], -1.0, 0.0, math.inf, clean[2]])
    assert ewma_sigma_per_sqrt_s(dirty, 4.0, 0.5, 0.0) == ewma_sigma_per_sqrt_s(
        clean, 4.0, 0.5, 0.0
    )


def test_ewma_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="lam"):
        ewma_sigma_per_sqrt_s(np.ones(3), 60.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="interval_s"):
        ewma_sigma_per_sqrt_s(np.ones(3), 0.0, 0.94, 0.0)


# --- estimate_fair_value -------------------------------------------------------------------


def test_none_without_price_to_beat() -> None:
    assert estimate_fair_value(_snapshot(price_to_beat=None)) is None


def test_at_the_money_snapshot_is_half() -> None:
    est = estimate_fair_value(_snapshot(price=100_000.0, price_to_beat=100_000.0))
    assert est is not None
    assert est.fair_up == 0.5
    assert est.log_moneyness == 0.0
    assert est.time_to_close_s == 600.0


@pytest.mark.parametrize(("price", "want"), [(100_001.0, 1.0), (100_000.0, 1.0), (99_999.0, 0.0)])
def test_at_the_close_snapshot_is_decided(price: float, want: float) -> None:
    est = estimate_fair_value(_snapshot(price=price, as_of=WINDOW_END))
    assert est is not None
    assert est.time_to_close_s == 0.0
    assert est.fair_up == want


def test_monotone_in_price() -> None:
    fairs = []
    for price in np.linspace(99_500.0, 100_500.0, 41):
        est = estimate_fair_value(_snapshot(price=float(price)))
        assert est is not None
        fairs.append(est.fair_up)
    assert all(b >= a for a, b in itertools.pairwise(fairs))
    assert fairs[0] < 0.5 < fairs[-1]


def test_sigma_uses_candles_with_lambda_094_per_minute() -> None:
    rng = np.random.default_rng(7)
    close = 100_000.0 * np.exp(np.cumsum(rng.normal(0.0, 5e-4, 120)))
    est = estimate_fair_value(_snapshot(candles=_candles(close)))
    assert est is not None
    want = ewma_sigma_per_sqrt_s(close, 60.0, 0.94, fv.DEFAULT_SIGMA_FLOOR_PER_SQRT_S)
    assert est.sigma_per_sqrt_s == pytest.approx(want, rel=1e-12)
    assert 3e-5 < est.sigma_per_sqrt_s < 2e-4
    # 1-second candles keep the same half-life in seconds: lambda = 0.94 ** (1 / 60).
    est_1s = estimate_fair_value(_snapshot(candles=_candles(close, interval_s=1.0)))
    assert est_1s is not None
    want_1s = ewma_sigma_per_sqrt_s(
        close, 1.0, 0.94 ** (1.0 / 60.0), fv.DEFAULT_SIGMA_FLOOR_PER_SQRT_S
    )
    assert est_1s.sigma_per_sqrt_s == pytest.approx(want_1s, rel=1e-12)


def test_flat_candles_use_the_floor() -> None:
    est = estimate_fair_value(_snapshot(price=100_100.0), sigma_floor_per_sqrt_s=3e-5)
    assert est is not None
    assert est.sigma_per_sqrt_s == 3e-5
    # ln(1.001) / (3e-5 * sqrt(600)) ~ 1.36
    z = math.log(1.001) / (3e-5 * math.sqrt(600.0))
    assert est.fair_up == pytest.approx(0.5 * math.erfc(-z / math.sqrt(2.0)), abs=1e-12)
    with pytest.raises(ValueError, match="sigma_floor"):
        estimate_fair_value(_snapshot(), sigma_floor_per_sqrt_s=0.0)


def test_tail_dof_is_passed_through() -> None:
    snap = _snapshot(price=99_900.0)
    normal = estimate_fair_value(snap)
    fat = estimate_fair_value(snap, tail_dof=4.0)
    assert normal is not None
    assert fat is not None
    assert fat.fair_up != normal.fair_up
    at_the_money = estimate_fair_value(_snapshot(), tail_dof=4.0)
    assert at_the_money is not None
    assert at_the_money.fair_up == 0.5


def test_edge_after_fees_hand_computed() -> None:
    # Choose S so that fair_up is 0.60 with the floor volatility (flat candles) and 600 s left.
    sigma, tau = 5e-5, 600.0
    x = float(special.ndtri(0.60)) * sigma * math.sqrt(tau)
    snap = _snapshot(
        price=100_000.0 * math.exp(x),
        up=BookTop(bid=0.48, ask=0.50),
        down=BookTop(bid=0.46, ask=0.48),
    )
    est = estimate_fair_value(snap, sigma_floor_per_sqrt_s=sigma)
    assert est is not None
    assert est.fair_up == pytest.approx(0.60, abs=1e-9)
    # Up: fee 0.07 * 0.5 * 0.5 = 0.0175; edge 0.60 - 0.5175 = 0.0825.
    assert est.up_ask == 0.50
    assert est.fee_up_per_share == pytest.approx(0.0175, abs=1e-15)
    assert est.edge_after_fees_up == pytest.approx(0.0825, abs=1e-9)
    # Down: fee 0.07 * 0.48 * 0.52 = 0.017472; edge 0.40 - 0.497472 = -0.097472.
    assert est.down_ask == 0.48
    assert est.fee_down_per_share == pytest.approx(0.017472, abs=1e-15)
    assert est.edge_after_fees_down == pytest.approx(-0.097472, abs=1e-9)
    assert est.market_up_mid == pytest.approx(0.49)
    assert est.best_side() == "up"


def test_fee_rate_comes_from_the_snapshot() -> None:
    snap = _snapshot(up=BookTop(bid=0.40, ask=0.45), fee_rate=0.0)
    est = estimate_fair_value(snap)
    assert est is not None
    assert est.fee_up_per_share == 0.0
    assert est.edge_after_fees_up == pytest.approx(0.05)


def test_missing_book_sides() -> None:
    est = estimate_fair_value(_snapshot())
    assert est is not None
    assert est.up_ask is None
    assert est.fee_up_per_share is None
    assert est.edge_after_fees_up is None
    assert est.edge_after_fees_down is None
    assert est.market_up_mid is None
    assert est.best_side() is None

    # Up book without an ask: no up edge, mid falls back to the down book.
    est = estimate_fair_value(_snapshot(up=BookTop(bid=0.40), down=BookTop(bid=0.55, ask=0.57)))
    assert est is not None
    assert est.edge_after_fees_up is None
    assert est.edge_after_fees_down is not None
    assert est.market_up_mid == pytest.approx(1.0 - 0.56)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=1.0, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.floats(min_value=0.5, max_value=2.0),
    st.floats(min_value=WINDOW_START, max_value=WINDOW_END),
    st.lists(st.floats(min_value=1.0, max_value=1e6), min_size=0, max_size=130),
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0)),
)
def test_estimate_is_always_finite(
    price: float, ratio: float, as_of: float, close: list[float], ask: float | None
) -> None:
    snap = _snapshot(
        price=price,
        price_to_beat=price * ratio,
        as_of=as_of,
        candles=_candles(close),
        up=BookTop(ask=ask),
        down=BookTop(ask=None if ask is None else 1.0 - ask),
    )
    est = estimate_fair_value(snap)
    assert est is not None
    for name, value in est.model_dump().items():
        if isinstance(value, float):
            assert math.isfinite(value), name
    assert 0.0 <= est.fair_up <= 1.0
    assert est.sigma_per_sqrt_s >= fv.DEFAULT_SIGMA_FLOOR_PER_SQRT_S

