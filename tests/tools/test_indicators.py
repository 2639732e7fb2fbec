"""tools.indicators: values equal TA-Lib's batch functions on recorded BTC closes; warm-up,
vote and bounds."""

from __future__ import annotations

import csv
import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from core.records import IndicatorSignal
from core.snapshot import Candles
from tools import indicators as ind
from tools.indicators import analyse_candles

_RECORDED = "recorded/pm15m_20251226_coinbase1m/prices.csv.gz"
_CANDIDATES = (Path(__file__).resolve().parents[2] / "data" / _RECORDED,)

_FIELDS = (
    "rsi",
    "macd",
    "macd_signal",
    "macd_hist",
    "sma_fast",
    "sma_slow",
    "ema_fast",
    "ema_slow",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "bb_percent_b",
    "volume_ratio",
)


def _load_recorded() -> tuple[np.ndarray, np.ndarray]:
    for path in _CANDIDATES:
        if path.exists():
            with gzip.open(path, "rt", newline="") as fh:
                rows = list(csv.DictReader(fh))
            ts = np.array([float(r["ts"]) for r in rows])
            px = np.array([float(r["price"]) for r in rows])
            return ts, px
    pytest.skip("recorded coinbase 1-minute prices not available")


@pytest.fixture(scope="module")
def recorded() -> tuple[np.ndarray, np.ndarray]:
    return _load_recorded()


def _candles(
    close: np.ndarray | list[float],
    volume: np.ndarray | list[float] | None = None,
    ts: np.ndarray | None = None,
) -> Candles:
    """1-minute candles with open = high = low = close (the recordings are closes only)."""
    c = tuple(float(v) for v in close)
    if ts is None:
        ts = np.arange(1, len(c) + 1, dtype=float) * 60.0
    return Candles(
        interval_s=60.0,
        close_ts=tuple(float(t) for t in ts[: len(c)]),
        open=c,
        high=c,
        low=c,
        close=c,
        volume=None if volume is None else tuple(float(v) for v in volume),
    )


def _expected(close: np.ndarray) -> dict[str, float | None]:
    """Last value of each TA-Lib batch function on the whole prefix (NaN -> None)."""

    def last(a: np.ndarray) -> float | None:
        return None if math.isnan(a[-1]) else float(a[-1])

    m, s, h = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    u, mid, lo = talib.BBANDS(close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0)
    out = {
        "rsi": last(talib.RSI(close, timeperiod=14)),
        "macd": last(m),
        "macd_signal": last(s),
        "macd_hist": last(h),
        "sma_fast": last(talib.SMA(close, timeperiod=9)),
        "sma_slow": last(talib.SMA(close, timeperiod=21)),
        "ema_fast": last(talib.EMA(close, timeperiod=9)),
        "ema_slow": last(talib.EMA(close, timeperiod=21)),
        "bb_upper": last(u),
        "bb_middle": last(mid),
        "bb_lower": last(lo),
        "bb_percent_b": None,
        "volume_ratio": None,
    }
    if out["bb_upper"] is not None:
        out["bb_percent_b"] = (close[-1] - lo[-1]) / (u[-1] - lo[-1])
    return out


def _assert_finite_or_none(sig: IndicatorSignal) -> None:
    for name in _FIELDS:
        v = getattr(sig, name)
        assert v is None or math.isfinite(v), (name, v)
    assert math.isfinite(sig.score)
    assert -1.0 <= sig.score <= 1.0


@pytest.mark.parametrize("cut", [1, 9, 14, 15, 20, 21, 33, 34, 60, 120, 333, 600, -1])
def test_values_equal_talib_batch_on_recorded_prefix(
    recorded: tuple[np.ndarray, np.ndarray], cut: int
) -> None:
    ts, px = recorded
    prefix = px if cut == -1 else px[:cut]
    sig = analyse_candles(_candles(prefix, ts=ts))
    assert sig.candles_used == len(prefix)
    want = _expected(prefix)
    for name, expected in want.items():
        got = getattr(sig, name)
        if expected is None:
            assert got is None, name
        else:
            assert got is not None, name
            assert np.isclose(got, expected, rtol=1e-12, atol=1e-9), (name, got, expected)
    _assert_finite_or_none(sig)


def test_rolling_120_candle_windows_match_talib(recorded: tuple[np.ndarray, np.ndarray]) -> None:
    # The live agent passes the latest ~120 candles, not the whole day.
    ts, px = recorded
    for end in range(120, len(px) + 1, 97):
        window = px[end - 120 : end]
        sig = analyse_candles(_candles(window, ts=ts[end - 120 : end]))
        for name, expected in _expected(window).items():
            got = getattr(sig, name)
            assert (got is None) == (expected is None), name
            if expected is not None:
                assert np.isclose(got, expected, rtol=1e-12, atol=1e-9), name


def test_min_candle_constants_match_talib_first_value() -> None:
    # Each constant is the number of candles at which TA-Lib's batch output first has a value.
    x = 100.0 + np.sin(np.arange(60, dtype=float))

    def first_valid(a: np.ndarray) -> int:
        return int(np.argmax(~np.isnan(a))) + 1

    assert first_valid(talib.RSI(x, timeperiod=14)) == ind.RSI_MIN_CANDLES
    assert first_valid(talib.MACD(x, 12, 26, 9)[2]) == ind.MACD_MIN_CANDLES
    assert first_valid(talib.EMA(x, timeperiod=9)) == ind.MA_FAST_MIN_CANDLES
    assert first_valid(talib.SMA(x, timeperiod=21)) == ind.MA_SLOW_MIN_CANDLES
    assert first_valid(talib.BBANDS(x, timeperiod=20)[0]) == ind.BB_MIN_CANDLES
    assert ind.MIN_CANDLES == 34


def test_warm_up_nones(recorded: tuple[np.ndarray, np.ndarray]) -> None:
    _, px = recorded
    vol = np.linspace(1.0, 2.0, 40)
    for n in range(0, 40):
        sig = analyse_candles(_candles(px[:n], volume=vol[:n]))
        assert sig.candles_used == n
        assert (sig.rsi is None) == (n < ind.RSI_MIN_CANDLES), n
        for name in ("macd", "macd_signal", "macd_hist"):
            assert (getattr(sig, name) is None) == (n < ind.MACD_MIN_CANDLES), (name, n)
        for name in ("sma_fast", "ema_fast"):
            assert (getattr(sig, name) is None) == (n < ind.MA_FAST_MIN_CANDLES), (name, n)
        for name in ("sma_slow", "ema_slow"):
            assert (getattr(sig, name) is None) == (n < ind.MA_SLOW_MIN_CANDLES), (name, n)
        for name in ("bb_upper", "bb_middle", "bb_lower", "bb_percent_b"):
            assert (getattr(sig, name) is None) == (n < ind.BB_MIN_CANDLES), (name, n)
        assert (sig.volume_ratio is None) == (n < ind.VOLUME_MIN_CANDLES), n
        if 0 < n < ind.MIN_CANDLES:
            assert any("warm-up" in r for r in sig.reasons)
        _assert_finite_or_none(sig)


def test_no_candles_is_neutral() -> None:
    sig = analyse_candles(Candles(interval_s=60.0))
    assert sig.candles_used == 0
    assert sig.score == 0.0
    assert sig.signal == "neutral"
    assert sig.reasons == ("no candles",)


def test_volume_ratio_hand_computed() -> None:
    # synthetic volumes: previous 20 are 1..20 (mean 10.5), last is 42 -> ratio 4.0.
    volume = [99.0] * 5 + [float(v) for v in range(1, 21)] + [42.0]
    close = 100.0 + np.arange(len(volume), dtype=float)
    sig = analyse_candles(_candles(close, volume=volume))
    assert sig.volume_ratio == pytest.approx(4.0)


def test_volume_ratio_none_without_volume_or_when_mean_is_zero() -> None:
    close = 100.0 + np.arange(30, dtype=float)
    assert analyse_candles(_candles(close)).volume_ratio is None
    assert analyse_candles(_candles(close, volume=[0.0] * 29 + [5.0])).volume_ratio is None


def test_volume_only_amplifies(recorded: tuple[np.ndarray, np.ndarray]) -> None:
    _, px = recorded
    close = px[:120]
    base = analyse_candles(_candles(close))
    assert base.score != 0.0
    quiet = analyse_candles(_candles(close, volume=[10.0] * 119 + [2.0]))
    loud = analyse_candles(_candles(close, volume=[10.0] * 119 + [30.0]))
    assert quiet.score == base.score
    assert abs(loud.score) > abs(base.score)
    assert math.copysign(1.0, loud.score) == math.copysign(1.0, base.score)
    assert any("volume" in r for r in loud.reasons)


def test_signal_on_recorded_rising_and_falling_segments(
    recorded: tuple[np.ndarray, np.ndarray],
) -> None:
    # The strongest 30-minute rise and fall in the recording, judged with the history up to
    # the end of each move.
    ts, px = recorded
    move = px[30:] - px[:-30]
    rise_end = int(np.argmax(move)) + 31
    fall_end = int(np.argmin(move)) + 31
    assert move.max() > 0 > move.min()
    up = analyse_candles(_candles(px[:rise_end], ts=ts))
    down = analyse_candles(_candles(px[:fall_end], ts=ts))
    assert up.signal == "up"
    assert up.score >= ind.SIGNAL_DEAD_BAND
    assert down.signal == "down"
    assert down.score <= -ind.SIGNAL_DEAD_BAND
    assert any(r.startswith("macd hist") for r in up.reasons)


def test_signal_on_synthetic_ramps() -> None:
    # synthetic: a gently accelerating climb and its mirror image.
    t = np.arange(120, dtype=float)
    synthetic_rising = 100.0 + 0.05 * t + 0.0005 * t * t
    synthetic_falling = 200.0 - 0.05 * t - 0.0005 * t * t
    up = analyse_candles(_candles(synthetic_rising))
    down = analyse_candles(_candles(synthetic_falling))
    assert up.signal == "up"
    assert down.signal == "down"
    assert up.macd_hist is not None
    assert up.macd_hist > 0
    assert down.macd_hist is not None
    assert down.macd_hist < 0
    # The fade voters see the stretched RSI but do not flip the trend.
    assert up.rsi is not None
    assert up.rsi > ind.RSI_OVERBOUGHT
    assert any("overbought" in r for r in up.reasons)
    assert down.rsi is not None
    assert down.rsi < ind.RSI_OVERSOLD
    assert up.score < (ind.W_MACD + ind.W_EMA + ind.W_SMA) / 3.75


def test_rounding_noise_does_not_vote() -> None:
    # synthetic: a perfectly steady ramp has a MACD histogram of pure rounding noise.
    synthetic_ramp = 100.0 + 0.05 * np.arange(120, dtype=float)
    sig = analyse_candles(_candles(synthetic_ramp))
    assert sig.macd_hist is not None
    assert abs(sig.macd_hist) < 1e-9
    assert not any(r.startswith("macd") for r in sig.reasons)
    assert any(r.startswith("ema9 >") for r in sig.reasons)


def test_rsi_extremes_fade_when_trend_is_cold() -> None:
    # synthetic: 20 falling closes: RSI is warm and oversold, MACD not yet warm.
    synthetic_falling = 100.0 - 0.5 * np.arange(20, dtype=float)
    sig = analyse_candles(_candles(synthetic_falling))
    assert sig.rsi is not None
    assert sig.rsi < ind.RSI_OVERSOLD
    assert sig.macd_hist is None
    assert sig.score > 0.0
    assert any(r.startswith("rsi") and "oversold" in r for r in sig.reasons)


def test_flat_series_is_neutral_and_undefined_not_nan() -> None:
    sig = analyse_candles(_candles([100.0] * 60, volume=[1.0] * 60))
    assert sig.rsi is None  # 0/0; TA-Lib's 0.0 would read as "oversold"
    assert sig.bb_percent_b is None
    assert sig.macd_hist == 0.0
    assert sig.score == 0.0
    assert sig.signal == "neutral"
    _assert_finite_or_none(sig)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False),
        min_size=0,
        max_size=150,
    ),
    st.booleans(),
    st.data(),
)
def test_score_bounded_and_never_nan(
    close: list[float], with_volume: bool, data: st.DataObject
) -> None:
    volume = None
    if with_volume:
        volume = data.draw(
            st.lists(
                st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False),
                min_size=len(close),
                max_size=len(close),
            )
        )
    sig = analyse_candles(_candles(close, volume=volume))
    _assert_finite_or_none(sig)
    if sig.signal == "up":
        assert sig.score >= ind.SIGNAL_DEAD_BAND
    elif sig.signal == "down":
        assert sig.score <= -ind.SIGNAL_DEAD_BAND
    else:
        assert abs(sig.score) < ind.SIGNAL_DEAD_BAND

