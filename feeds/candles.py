"""OHLCV candles built from a recorded price path, and the as-of view the graph reads.

This module owns the bucketing rule shared by the replay and any other candle consumer: a
candle's ``close_ts`` is the end of its interval, and a price row whose ``ts`` lies exactly on a
boundary belongs to the candle that *ends* there.  With 1-minute-close data (rows stamped at the
close) every row is therefore its own candle with ``close_ts == ts``, and a candle never holds a
price observed after its close.  Intervals without rows produce no candle: forward-filling would
invent prices nobody traded at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from core.snapshot import Candles

FloatArray = NDArray[np.float64]

# The tail cache only has to hold what a replay revisits (a few candle counts per asset); it is
# cleared when it grows past this, which bounds memory without an LRU's bookkeeping.
_TAIL_CACHE_MAX = 512


@dataclass(frozen=True, eq=False, slots=True)
class CandleSeries:
    """Columnar candles, oldest first; ``volume`` is None when the price path carries none."""

    interval_s: float
    close_ts: FloatArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray | None = None
    # Candles are immutable and decisions revisit the same minute many times (1 s cadence on
    # 1-minute candles), so a built ``Candles`` is reused instead of re-validated each call.
    _cache: dict[tuple[int, int], Candles] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {self.interval_s}")
        n = len(self.close_ts)
        cols = [self.open, self.high, self.low, self.close]
        if self.volume is not None:
            cols.append(self.volume)
        if any(len(c) != n for c in cols):
            raise ValueError("candle columns have different lengths")

    def __len__(self) -> int:
        return len(self.close_ts)

    def count_at(self, as_of: float) -> int:
        """How many candles have closed by ``as_of`` (``close_ts <= as_of``)."""
        return int(np.searchsorted(self.close_ts, as_of, side="right"))

    def tail(self, as_of: float, n: int) -> Candles:
        """The last ``n`` candles with ``close_ts <= as_of`` (fewer if history is short)."""
        end = self.count_at(as_of)
        start = max(0, end - n) if n > 0 else end
        key = (start, end)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        # model_construct skips re-validating ~600 floats per new candle (≈100 µs): alignment
        # and interval_s > 0 are checked once in __post_init__, close_ts <= as_of by the slice,
        # and MarketSnapshot still checks that the last close is not after its as_of.
        candles = Candles.model_construct(
            interval_s=self.interval_s,
            close_ts=tuple(self.close_ts[start:end].tolist()),
            open=tuple(self.open[start:end].tolist()),
            high=tuple(self.high[start:end].tolist()),
            low=tuple(self.low[start:end].tolist()),
            close=tuple(self.close[start:end].tolist()),
            volume=None if self.volume is None else tuple(self.volume[start:end].tolist()),
        )
        if len(self._cache) >= _TAIL_CACHE_MAX:
            self._cache.clear()
        self._cache[key] = candles
        return candles


def build_candles(
    ts: NDArray[np.floating] | NDArray[np.integer],
    price: NDArray[np.floating] | NDArray[np.integer],
    volume: NDArray[np.floating] | NDArray[np.integer] | None,
    interval_s: float = 60.0,
) -> CandleSeries:
    """Bucket a price path (ticks, 1 s or 1 m closes) into OHLCV candles of ``interval_s``.

    ``ts`` must be strictly increasing.  A row at ``ts`` goes to the candle closing at
    ``ceil(ts / interval_s) * interval_s``.  Volume is summed per candle (a missing value, NaN,
    makes that candle's volume NaN rather than silently undercounting it).
    """
    if not interval_s > 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s}")
    t = np.asarray(ts, dtype=np.float64)
    p = np.asarray(price, dtype=np.float64)
    v = None if volume is None else np.asarray(volume, dtype=np.float64)
    if t.ndim != 1 or p.shape != t.shape or (v is not None and v.shape != t.shape):
        raise ValueError("ts, price and volume must be 1-D arrays of the same length")
    if len(t) and not np.all(np.isfinite(t)):
        raise ValueError("ts must be finite")
    if len(t) > 1 and not np.all(np.diff(t) > 0):
        raise ValueError("ts must be strictly increasing")
    if len(t) == 0:
        empty = np.empty(0, dtype=np.float64)
        return CandleSeries(
            interval_s=float(interval_s),
            close_ts=empty,
            open=empty,
            high=empty,
            low=empty,
            close=empty,
            volume=None if v is None else empty,
        )

    bucket = np.ceil(t / interval_s)
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ends = np.concatenate((starts[1:], [len(t)]))
    return CandleSeries(
        interval_s=float(interval_s),
        close_ts=bucket[starts] * interval_s,
        open=p[starts],
        high=np.maximum.reduceat(p, starts),
        low=np.minimum.reduceat(p, starts),
        close=p[ends - 1],
        volume=None if v is None else np.add.reduceat(v, starts),
    )
