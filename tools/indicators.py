"""Technical indicators on 1-minute candles and the technical analyst's preliminary vote.

Owns ``analyse_candles``: TA-Lib RSI, MACD, SMA/EMA crossovers, Bollinger Bands (%B) and a
volume ratio on the snapshot's candles, folded into an ``IndicatorSignal`` with a score in
[-1, 1], an up/down/neutral signal and short human-readable reasons.

Every indicator value equals the last element of the matching TA-Lib batch function run on the
full candle history given; it is ``None`` while that indicator is still warming up (or is
undefined, e.g. RSI of a perfectly flat series), never NaN.

This signal is context for the trader, not an edge: the project's evidence (docs/venue.md) is
that public-data indicators do not beat the order-book mid after fees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import talib

from core.records import Direction, IndicatorSignal
from core.snapshot import Candles

RSI_PERIOD = 14
RSI_OVERBOUGHT = 70.0
RSI_OVERSOLD = 30.0
MACD_FAST = 12
MACD_SLOW = 26
MACD_SIGNAL = 9
MA_FAST = 9
MA_SLOW = 21
BB_PERIOD = 20
BB_NBDEV = 2.0
VOLUME_LOOKBACK = 20

# Candles needed before each indicator has its first value (TA-Lib lookback + 1).
RSI_MIN_CANDLES = RSI_PERIOD + 1
MACD_MIN_CANDLES = MACD_SLOW + MACD_SIGNAL - 1
MA_FAST_MIN_CANDLES = MA_FAST
MA_SLOW_MIN_CANDLES = MA_SLOW
BB_MIN_CANDLES = BB_PERIOD
VOLUME_MIN_CANDLES = VOLUME_LOOKBACK + 1
# Every indicator warm.
MIN_CANDLES = max(RSI_MIN_CANDLES, MACD_MIN_CANDLES, MA_SLOW_MIN_CANDLES, BB_MIN_CANDLES)

# Vote weights.  Trend (MACD histogram, EMA cross, SMA cross) votes *with* the move; RSI and %B
# extremes vote *against* it (mean reversion).  Why: the three trend voters already count
# momentum, so letting RSI/%B vote momentum too would triple-count one fact; their distinct
# information is that a move is stretched, and at 1-15 minute horizons BTC shows no reliable
# momentum premium while short-term overshoots partly retrace.  The SMA cross is half weight
# because it mostly repeats the EMA cross; the fade voters weigh less than the trend block so a
# stretched strong trend stays a (weaker) trend signal rather than flipping.
W_MACD = 1.0
W_EMA = 1.0
W_SMA = 0.5
W_RSI = 0.75
W_BB = 0.5
# Normalising by the whole panel, not only the warm voters, keeps a short history from
# producing a full-strength score out of one indicator: cold indicators abstain as zeros.
_TOTAL_WEIGHT = W_MACD + W_EMA + W_SMA + W_RSI + W_BB
# Volume only amplifies: above-average volume scales the score up by 0.25 per unit of excess
# ratio, at most x1.5; below-average volume never weakens or flips it.
VOLUME_GAIN_PER_RATIO = 0.25
VOLUME_MAX_GAIN = 1.5
# |score| below this is "neutral": with the weights above, one lone trend voter (0.27) or the
# trend block against both fades (0.33) still clears it, but disagreement does not.
SIGNAL_DEAD_BAND = 0.2
# Trend differences smaller than this fraction of the price are rounding noise (a perfectly
# steady ramp has a MACD histogram of ~1e-16): they abstain rather than vote a random sign.
NOISE_REL = 1e-9

_FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class IndicatorValues:
    """One frame's indicator values after the last candle fed (None while warming up)."""

    candles: int
    last_close: float | None
    rsi: float | None
    macd: float | None
    macd_signal: float | None
    macd_hist: float | None
    sma_fast: float | None
    sma_slow: float | None
    ema_fast: float | None
    ema_slow: float | None
    bb_upper: float | None
    bb_middle: float | None
    bb_lower: float | None
    bb_percent_b: float | None
    volume_ratio: float | None


def _last(values: _FloatArray) -> float | None:
    """The last element of a TA-Lib output, or None while it is NaN (warm-up)."""
    v = float(values[-1])
    return v if math.isfinite(v) else None


def _volume_ratio(volume: _FloatArray) -> float | None:
    if volume.shape[0] < VOLUME_MIN_CANDLES:
        return None
    mean_prev = float(volume[-VOLUME_MIN_CANDLES:-1].mean())
    last = float(volume[-1])
    if not (mean_prev > 0.0 and math.isfinite(mean_prev) and math.isfinite(last)):
        return None
    return last / mean_prev


def batch_values(candles: Candles) -> IndicatorValues:
    """Every indicator by TA-Lib's batch functions on all of ``candles`` (last values)."""
    n = len(candles.close)
    close = np.asarray(candles.close, dtype=np.float64)
    rsi = macd = macd_signal = macd_hist = None
    sma_fast = sma_slow = ema_fast = ema_slow = None
    bb_upper = bb_middle = bb_lower = bb_percent_b = None
    # TA-Lib returns an all-NaN array for short input; skipping the call is only a speed-up.
    if n >= RSI_MIN_CANDLES and close.min() != close.max():
        # A perfectly flat series has RSI 0/0; TA-Lib reports 0 ("oversold"), which would
        # mislead, so it is left undefined.
        rsi = _last(talib.RSI(close, timeperiod=RSI_PERIOD))
    if n >= MACD_MIN_CANDLES:
        m, s, h = talib.MACD(
            close, fastperiod=MACD_FAST, slowperiod=MACD_SLOW, signalperiod=MACD_SIGNAL
        )
        macd, macd_signal, macd_hist = _last(m), _last(s), _last(h)
    if n >= MA_FAST_MIN_CANDLES:
        sma_fast = _last(talib.SMA(close, timeperiod=MA_FAST))
        ema_fast = _last(talib.EMA(close, timeperiod=MA_FAST))
    if n >= MA_SLOW_MIN_CANDLES:
        sma_slow = _last(talib.SMA(close, timeperiod=MA_SLOW))
        ema_slow = _last(talib.EMA(close, timeperiod=MA_SLOW))
    if n >= BB_MIN_CANDLES:
        # TA-Lib's default matype is SMA, the classic Bollinger middle band.
        u, mid, lo = talib.BBANDS(close, timeperiod=BB_PERIOD, nbdevup=BB_NBDEV, nbdevdn=BB_NBDEV)
        bb_upper, bb_middle, bb_lower = _last(u), _last(mid), _last(lo)
        last_close = float(close[-1])
        if bb_upper is not None and bb_lower is not None and bb_middle is not None:
            width = bb_upper - bb_lower
            # Zero-width bands (flat window) make %B 0/0; rounding noise would make it huge.
            if width > 1e-12 * abs(bb_middle) and math.isfinite(last_close):
                bb_percent_b = (last_close - bb_lower) / width

    volume_ratio = None
    if candles.volume is not None:
        volume_ratio = _volume_ratio(np.asarray(candles.volume, dtype=np.float64))

    return IndicatorValues(
        candles=n, last_close=float(close[-1]) if n else None, rsi=rsi, macd=macd,
        macd_signal=macd_signal, macd_hist=macd_hist, sma_fast=sma_fast, sma_slow=sma_slow,
        ema_fast=ema_fast, ema_slow=ema_slow, bb_upper=bb_upper, bb_middle=bb_middle,
        bb_lower=bb_lower, bb_percent_b=bb_percent_b, volume_ratio=volume_ratio)


def analyse_candles(candles: Candles) -> IndicatorSignal:
    """Indicators on ``candles.close`` (and volume when present) plus the preliminary vote."""
    if len(candles.close) == 0:
        return IndicatorSignal(candles_used=0, reasons=("no candles",))
    return signal_from_values(batch_values(candles))


def signal_from_values(values: IndicatorValues, frame: IndicatorValues | None = None
                       ) -> IndicatorSignal:
    """The preliminary vote on one frame's values (1-minute); ``frame`` (15-minute values) is
    reported beside it but does not vote (it adds no measured skill: see evals/forecast.py)."""
    n = values.candles
    rsi, macd_hist, bb_percent_b = values.rsi, values.macd_hist, values.bb_percent_b
    ema_fast, ema_slow = values.ema_fast, values.ema_slow
    sma_fast, sma_slow = values.sma_fast, values.sma_slow
    volume_ratio = values.volume_ratio
    last_close = values.last_close if values.last_close is not None else 0.0
    vote = 0.0
    reasons: list[str] = []
    noise = NOISE_REL * abs(float(last_close))
    if macd_hist is not None and abs(macd_hist) > noise:
        vote += W_MACD if macd_hist > 0 else -W_MACD
        reasons.append(f"macd hist {macd_hist:+.3g} {'>' if macd_hist > 0 else '<'} 0")
    if ema_fast is not None and ema_slow is not None and abs(ema_fast - ema_slow) > noise:
        up = ema_fast > ema_slow
        vote += W_EMA if up else -W_EMA
        reasons.append(
            f"ema{MA_FAST} {'>' if up else '<'} ema{MA_SLOW} by {ema_fast - ema_slow:+.2f}"
        )
    if sma_fast is not None and sma_slow is not None and abs(sma_fast - sma_slow) > noise:
        up = sma_fast > sma_slow
        vote += W_SMA if up else -W_SMA
        reasons.append(
            f"sma{MA_FAST} {'>' if up else '<'} sma{MA_SLOW} by {sma_fast - sma_slow:+.2f}"
        )
    if rsi is not None:
        if rsi > RSI_OVERBOUGHT:
            vote -= W_RSI
            reasons.append(f"rsi {rsi:.1f} > {RSI_OVERBOUGHT:g} overbought, fade")
        elif rsi < RSI_OVERSOLD:
            vote += W_RSI
            reasons.append(f"rsi {rsi:.1f} < {RSI_OVERSOLD:g} oversold, fade")
    if bb_percent_b is not None:
        if bb_percent_b > 1.0:
            vote -= W_BB
            reasons.append(f"%b {bb_percent_b:.2f} > 1 above upper band, fade")
        elif bb_percent_b < 0.0:
            vote += W_BB
            reasons.append(f"%b {bb_percent_b:.2f} < 0 below lower band, fade")

    score = vote / _TOTAL_WEIGHT
    if volume_ratio is not None and volume_ratio > 1.0 and score != 0.0:
        gain = min(VOLUME_MAX_GAIN, 1.0 + VOLUME_GAIN_PER_RATIO * (volume_ratio - 1.0))
        score *= gain
        reasons.append(f"volume x{volume_ratio:.2f} of {VOLUME_LOOKBACK}-candle mean, x{gain:.2f}")
    score = min(1.0, max(-1.0, score))

    if n < MIN_CANDLES:
        reasons.append(f"warm-up: {n} candles, all indicators need {MIN_CANDLES}")

    signal: Direction = "neutral"
    if score >= SIGNAL_DEAD_BAND:
        signal = "up"
    elif score <= -SIGNAL_DEAD_BAND:
        signal = "down"

    return IndicatorSignal(
        candles_used=n,
        rsi=rsi,
        macd=values.macd,
        macd_signal=values.macd_signal,
        macd_hist=macd_hist,
        sma_fast=sma_fast,
        sma_slow=sma_slow,
        ema_fast=ema_fast,
        ema_slow=ema_slow,
        bb_upper=values.bb_upper,
        bb_middle=values.bb_middle,
        bb_lower=values.bb_lower,
        bb_percent_b=bb_percent_b,
        volume_ratio=volume_ratio,
        score=score,
        signal=signal,
        reasons=tuple(reasons),
        candles_15m=frame.candles if frame is not None else 0,
        rsi_15m=frame.rsi if frame is not None else None,
        macd_hist_15m=frame.macd_hist if frame is not None else None,
        ema_fast_15m=frame.ema_fast if frame is not None else None,
        ema_slow_15m=frame.ema_slow if frame is not None else None,
        bb_percent_b_15m=frame.bb_percent_b if frame is not None else None,
    )
