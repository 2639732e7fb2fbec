"""Incremental TA-Lib indicators: O(1) work per new candle, values equal to TA-Lib's batch.

``IndicatorStream.update(close, volume)`` advances RSI(14), MACD(12,26,9), SMA/EMA 9/21,
Bollinger(20, 2) and the volume ratio by one candle with constant work (running sums, Wilder's
and TA-Lib's EMA recursions, bounded deques).  After feeding closes ``c[0..n-1]`` every value
equals the last element of the matching TA-Lib batch function on ``c[0..n-1]`` (same seeding:
SMA-seeded EMAs, MACD's fast EMA seeded on the 12 closes ending where the slow one starts, the
signal EMA seeded on the first 9 MACD values, RSI seeded on the mean of the first 14 moves).

``TechnicalAnalyst`` is the live-path cache in front of it.  A snapshot's candles are a
rolling window (the feed keeps the last ~120), so "every candle since the stream began" would
depend on when the process started and on the order evals replay windows in.  Instead the
stream is anchored deterministically: at the oldest candle in the snapshot whose close time is
a whole hour (``ANCHOR_S``).  Ticks inside one minute reuse the cached values (a dict lookup);
each new candle costs one ``update``; once an hour the anchor moves and the stream is rebuilt
from the new anchor (at most 120 updates).  The result is a pure function of the snapshot's
candles: the TA-Lib batch values on the candles from the anchor on.

The 15-minute frame is the same stream on 15-minute candles aggregated from the 1-minute ones
(aligned to multiples of 900 s like the windows; only complete 15-minute candles count).
"""

from __future__ import annotations

import math
from collections import deque

from core.records import IndicatorSignal
from core.snapshot import Candles
from tools import indicators as ind
from tools.indicators import IndicatorValues

FRAME_15M_S = 900.0
# Anchor the 1-minute stream on whole hours: it then always has 60..120 candles of history
# with the feed's 120-candle window, enough for every indicator (34 needed) to be warm.
ANCHOR_S = 3600.0


class _Sma:
    """Running-sum simple moving average over the last ``n`` values (TA-Lib's SMA)."""

    __slots__ = ("buf", "n", "total", "total_sq")

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf: deque[float] = deque(maxlen=n)
        self.total = 0.0
        self.total_sq = 0.0

    def update(self, x: float) -> None:
        if len(self.buf) == self.n:
            old = self.buf[0]
            self.total -= old
            self.total_sq -= old * old
        self.buf.append(x)
        self.total += x
        self.total_sq += x * x

    @property
    def ready(self) -> bool:
        return len(self.buf) == self.n

    @property
    def mean(self) -> float:
        return self.total / self.n

    @property
    def pop_sd(self) -> float:
        # TA-Lib's BBANDS: population variance from the running sums, clipped at 0.
        m = self.total / self.n
        var = self.total_sq / self.n - m * m
        return math.sqrt(var) if var > 0.0 else 0.0


class _Ema:
    """TA-Lib's EMA: seeded with the SMA of the first ``n`` values, then k = 2 / (n + 1)."""

    __slots__ = ("count", "k", "n", "seed_sum", "value")

    def __init__(self, n: int) -> None:
        self.n = n
        self.k = 2.0 / (n + 1.0)
        self.seed_sum = 0.0
        self.count = 0
        self.value: float | None = None

    def seed(self, value: float) -> None:
        self.value = value

    def update(self, x: float) -> None:
        if self.value is None:
            self.seed_sum += x
            self.count += 1
            if self.count == self.n:
                self.value = self.seed_sum / self.n
            return
        self.value = (x - self.value) * self.k + self.value


class IndicatorStream:
    """Every technical indicator of ``tools.indicators`` advanced one candle at a time."""

    __slots__ = (
        "_bb",
        "_ema_fast",
        "_ema_slow",
        "_first_close",
        "_macd",
        "_macd_fast",
        "_macd_seed",
        "_macd_signal",
        "_macd_slow",
        "_rsi_flat",
        "_rsi_gain",
        "_rsi_loss",
        "_rsi_sum_gain",
        "_rsi_sum_loss",
        "_sma_fast",
        "_sma_slow",
        "_volume_ratio",
        "_volume_sum",
        "_volumes",
        "last_close",
        "n",
        "prev_close",
    )

    def __init__(self) -> None:
        self.n = 0
        self.last_close: float | None = None
        self.prev_close: float | None = None
        self._rsi_gain: float | None = None
        self._rsi_loss = 0.0
        self._rsi_sum_gain = 0.0
        self._rsi_sum_loss = 0.0
        # analyse_candles leaves RSI undefined on a perfectly flat history: track it.
        self._rsi_flat = True
        self._first_close: float | None = None
        self._macd_seed: deque[float] = deque(maxlen=ind.MACD_SLOW)
        self._macd_fast = _Ema(ind.MACD_FAST)
        self._macd_slow = _Ema(ind.MACD_SLOW)
        self._macd_signal = _Ema(ind.MACD_SIGNAL)
        self._macd: float | None = None
        self._sma_fast = _Sma(ind.MA_FAST)
        self._sma_slow = _Sma(ind.MA_SLOW)
        self._ema_fast = _Ema(ind.MA_FAST)
        self._ema_slow = _Ema(ind.MA_SLOW)
        self._bb = _Sma(ind.BB_PERIOD)
        self._volumes: deque[float] = deque(maxlen=ind.VOLUME_LOOKBACK + 1)
        self._volume_sum = 0.0
        self._volume_ratio: float | None = None

    def update(self, close: float, volume: float | None = None) -> None:
        """Feed the next candle's close (and volume, None when the source has none)."""
        self.n += 1
        prev = self.last_close
        self.prev_close, self.last_close = prev, close
        if self._first_close is None:
            self._first_close = close
        elif close != self._first_close:
            self._rsi_flat = False
        self._update_rsi(prev, close)
        self._update_macd(close)
        self._sma_fast.update(close)
        self._sma_slow.update(close)
        self._ema_fast.update(close)
        self._ema_slow.update(close)
        self._bb.update(close)
        self._update_volume(volume)

    def _update_rsi(self, prev: float | None, close: float) -> None:
        if prev is None:
            return
        move = close - prev
        gain, loss = (move, 0.0) if move > 0.0 else (0.0, -move)
        period = ind.RSI_PERIOD
        if self._rsi_gain is None:
            self._rsi_sum_gain += gain
            self._rsi_sum_loss += loss
            if self.n - 1 == period:
                self._rsi_gain = self._rsi_sum_gain / period
                self._rsi_loss = self._rsi_sum_loss / period
            return
        # Wilder's smoothing, written as TA-Lib computes it (multiply, add, divide).
        self._rsi_gain = (self._rsi_gain * (period - 1) + gain) / period
        self._rsi_loss = (self._rsi_loss * (period - 1) + loss) / period

    def _update_macd(self, close: float) -> None:
        slow, fast = self._macd_slow, self._macd_fast
        if slow.value is None:
            self._macd_seed.append(close)
            if len(self._macd_seed) < ind.MACD_SLOW:
                return
            # TA-Lib starts both EMAs at the slow one's first output: the slow seed is the mean
            # of the first 26 closes, the fast seed the mean of the 12 closes ending there.
            seed = list(self._macd_seed)
            slow.seed(sum(seed) / ind.MACD_SLOW)
            fast.seed(sum(seed[-ind.MACD_FAST:]) / ind.MACD_FAST)
        else:
            slow.update(close)
            fast.update(close)
        if fast.value is None or slow.value is None:
            return  # unreachable: both are seeded above
        self._macd = fast.value - slow.value
        self._macd_signal.update(self._macd)

    def _update_volume(self, volume: float | None) -> None:
        if volume is None or not math.isfinite(volume):
            # A source without volume: the ratio is unknown from here on until it refills.
            self._volumes.clear()
            self._volume_sum = 0.0
            self._volume_ratio = None
            return
        vols = self._volumes
        if len(vols) == vols.maxlen:
            self._volume_sum -= vols[0]
        vols.append(volume)
        self._volume_sum += volume
        self._volume_ratio = None
        if len(vols) == vols.maxlen:
            mean_prev = (self._volume_sum - volume) / ind.VOLUME_LOOKBACK
            if mean_prev > 0.0 and math.isfinite(mean_prev):
                self._volume_ratio = volume / mean_prev

    def values(self) -> IndicatorValues:
        """The indicator values after the last candle (TA-Lib's last batch element)."""
        rsi = None
        if self._rsi_gain is not None and not self._rsi_flat:
            total = self._rsi_gain + self._rsi_loss
            rsi = 100.0 * self._rsi_gain / total if total != 0.0 else 0.0
        macd = signal = hist = None
        if self._macd_signal.value is not None and self._macd is not None:
            macd, signal = self._macd, self._macd_signal.value
            hist = macd - signal
        upper = middle = lower = pct_b = None
        if self._bb.ready:
            middle = self._bb.mean
            sd = self._bb.pop_sd
            upper, lower = middle + ind.BB_NBDEV * sd, middle - ind.BB_NBDEV * sd
            width = upper - lower
            if (width > 1e-12 * abs(middle) and self.last_close is not None
                    and math.isfinite(self.last_close)):
                pct_b = (self.last_close - lower) / width
        return IndicatorValues(
            candles=self.n,
            last_close=self.last_close,
            rsi=rsi,
            macd=macd,
            macd_signal=signal,
            macd_hist=hist,
            sma_fast=self._sma_fast.mean if self._sma_fast.ready else None,
            sma_slow=self._sma_slow.mean if self._sma_slow.ready else None,
            ema_fast=self._ema_fast.value,
            ema_slow=self._ema_slow.value,
            bb_upper=upper,
            bb_middle=middle,
            bb_lower=lower,
            bb_percent_b=pct_b,
            volume_ratio=self._volume_ratio,
        )


def _anchor_index(close_ts: tuple[float, ...], interval_s: float) -> int:
    """Index of the first candle of the stream: the oldest whole-hour close in the window
    (with coarse candles, the whole window)."""
    if interval_s > 60.0:
        return 0
    for i, t in enumerate(close_ts):
        if t % ANCHOR_S == 0.0:
            return i
    return 0


def frame_15m(candles: Candles) -> tuple[list[float], list[float | None]]:
    """Complete 15-minute closes (and volumes) aggregated from 1-minute candles, aligned to
    multiples of 900 s: a 15-minute candle counts once its last minute has closed."""
    closes: list[float] = []
    volumes: list[float | None] = []
    if candles.interval_s != 60.0:
        return closes, volumes
    vol = candles.volume
    bucket_end = None
    acc: float | None = 0.0
    count = 0
    for i, t in enumerate(candles.close_ts):
        end = math.ceil(t / FRAME_15M_S) * FRAME_15M_S
        if end != bucket_end:
            bucket_end, acc, count = end, 0.0, 0
        count += 1
        v = vol[i] if vol is not None else None
        acc = None if (acc is None or v is None) else acc + v
        if t == end and count == 15:
            closes.append(candles.close[i])
            volumes.append(acc)
    return closes, volumes


class TechnicalAnalyst:
    """The technical analyst's live path: cached, incrementally advanced indicator streams."""

    def __init__(self) -> None:
        # (anchor close_ts, anchor close, last close_ts, last close) of what the stream holds:
        # the closes guard against another path with the same times (tests, other datasets).
        self._key: tuple[float, float, float, float] | None = None
        self._stream = IndicatorStream()
        self._signal: IndicatorSignal | None = None
        self._signal_key: tuple[float, float, float, float, int] | None = None
        self._frame_key: tuple[float, int, float] | None = None
        self._frame_values: IndicatorValues | None = None

    def analyse(self, candles: Candles) -> IndicatorSignal:
        n = len(candles)
        if n == 0:
            return IndicatorSignal(candles_used=0, reasons=("no candles",))
        ts = candles.close_ts
        a = _anchor_index(ts, candles.interval_s)
        anchor, last = ts[a], ts[-1]
        close = candles.close
        key = (anchor, close[a], last, close[-1], n - a)
        if key == self._signal_key and self._signal is not None:
            return self._signal  # same candles as the last tick: nothing to compute
        vol = candles.volume
        start = None
        held = self._key
        if held is not None and held[:2] == (anchor, close[a]) and held[2] <= last:
            # Same anchor, later candles: feed only the new ones (binary search on time).
            j = _index_after(ts, held[2], a)
            if j is not None and close[j - 1] == held[3]:
                start = j
        if start is None:
            self._stream = IndicatorStream()
            start = a
        for i in range(start, n):
            self._stream.update(candles.close[i], vol[i] if vol is not None else None)
        self._key = (anchor, close[a], last, close[-1])
        values = self._stream.values()
        frame = self._frame(candles)
        self._signal = ind.signal_from_values(values, frame=frame)
        self._signal_key = key
        return self._signal

    def _frame(self, candles: Candles) -> IndicatorValues | None:
        """15-minute frame values: recomputed only when a new 15-minute candle completes."""
        closes, volumes = frame_15m(candles)
        if not closes:
            return None
        key = (candles.close_ts[-1] - candles.close_ts[-1] % FRAME_15M_S, len(closes),
               closes[-1])
        if key != self._frame_key:
            stream = IndicatorStream()
            for c, v in zip(closes, volumes, strict=True):
                stream.update(c, v)
            self._frame_key, self._frame_values = key, stream.values()
        return self._frame_values


def _index_after(ts: tuple[float, ...], t: float, lo: int) -> int | None:
    """The index of the first candle closing after ``t`` given ``t`` is a close time in
    ``ts[lo:]``; None when ``t`` is not one (the path changed: rebuild)."""
    hi = len(ts) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if ts[mid] < t:
            lo = mid + 1
        elif ts[mid] > t:
            hi = mid - 1
        else:
            return mid + 1
    return None
