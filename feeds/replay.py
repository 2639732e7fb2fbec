"""Replay of a recorded dataset as a stream of as-of snapshots, with no look-ahead.

This module owns turning a :class:`~feeds.recorded.RecordedDataset` into the
:class:`~core.snapshot.MarketSnapshot` the graph sees at time ``t``, and the settlement the
eval scores against.  At ``t`` it uses only price rows with ``ts <= t``, candles with
``close_ts <= t`` and the market's latest book row with ``ts <= t``.

Interpretation rules (the recorded files are not the venue's own reference data):

* ``price_to_beat`` is the ``markets.csv`` value when given, else the last price at or before
  ``start_ts``.  Either way ``price_to_beat_verified`` is False: the venue settles on Chainlink
  Data Streams, and neither a file column nor an exchange price is that.  Before ``start_ts`` the
  snapshot carries no price_to_beat at all (it is not known yet).
* A window whose price_to_beat must be derived but has no *present* price at its start (or
  whose asset has no price rows) cannot be replayed honestly: it is left out of
  :attr:`ReplayFeed.markets` and counted in :attr:`ReplayFeed.skipped` by reason.
* Coverage (given a decision cadence): the price path is *present* at ``t`` when its last row
  with ``ts <= t`` is at most ``max_price_age_s + interval_s`` old, the guard's own freshness
  bound (``MAX_PRICE_AGE_S`` plus the path's native interval, e.g. 62 s for 1-minute closes).
  A window is covered when the path is present at every decision time and, when the dataset
  has a ``book.csv``, the window has a book row at or before its last decision time (a book
  that starts late only leaves the first decisions without a market mid, as on the venue).
  Uncovered windows are skipped by reason: ``price_starts_late`` (no row yet at a decision
  time), ``price_ends_early`` (the path ended before it), ``price_gap`` (rows on both sides
  of a hole older than the bound), ``no_book``.  A skipped window is never half-replayed.
* Fees: the market's ``fee_rate`` (exponent 1, the interchange form) when given, else the dated
  schedule for ``start_ts``.
* Settlement: the recorded outcome (verified) when present; otherwise derived from the price
  path (unverified), see :meth:`ReplayFeed.settlement`.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from core.fees import FeeSchedule, dated_fee_schedule
from core.guard import GuardLimits
from core.snapshot import BookTop, MarketSnapshot
from feeds.candles import CandleSeries, build_candles
from feeds.recorded import BookSeries, Outcome, PriceSeries, RecordedDataset, RecordedMarket

SKIP_NO_PRICE_PATH = "no_price_path"
SKIP_PRICE_STARTS_LATE = "price_starts_late"
SKIP_PRICE_ENDS_EARLY = "price_ends_early"
SKIP_PRICE_GAP = "price_gap"
SKIP_NO_BOOK = "no_book"

# The guard's default MAX_PRICE_AGE_S (core.guard.GuardLimits); callers with settings pass theirs.
DEFAULT_MAX_PRICE_AGE_S = GuardLimits().max_price_age_s

# A derived settlement needs a price close to end_ts: at most this many native intervals old
# (and never less than this floor, so tick data with a quiet second still settles).
_SETTLE_MAX_AGE_INTERVALS = 2.0
_SETTLE_MAX_AGE_FLOOR_S = 60.0


@dataclass(frozen=True, eq=False, slots=True)
class _AssetPath:
    prices: PriceSeries
    # Python lists: bisect on a list beats np.searchsorted's per-call overhead for one scalar.
    ts: list[float]
    price: list[float]
    source: list[str] | None
    interval_s: float
    candles: CandleSeries

    def index_at(self, t: float) -> int:
        return bisect_right(self.ts, t) - 1


@dataclass(frozen=True, eq=False, slots=True)
class _MarketState:
    market: RecordedMarket
    path: _AssetPath
    price_to_beat: float
    fee_rate: float
    fee_exponent: float
    book_ts: list[float] | None
    # Row j = (up_bid, up_ask, down_bid, down_ask, up_bid_size, up_ask_size, down_bid_size,
    # down_ask_size): one .tolist() per snapshot instead of eight scalar reads.
    book_rows: NDArray[np.float64] | None


@dataclass(frozen=True, slots=True)
class CoverageGap:
    """Why a window cannot be replayed: the reason, the first time it bites, and one line."""

    market_id: str
    reason: str
    at_ts: float
    detail: str


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


def _median_spacing(ts: NDArray[np.float64]) -> float:
    return float(np.median(np.diff(ts))) if len(ts) > 1 else 0.0


def _book_state(book: BookSeries | None) -> tuple[list[float] | None, NDArray[np.float64] | None]:
    if book is None or not len(book):
        return None, None
    rows = np.column_stack(
        (
            book.up_bid,
            book.up_ask,
            book.down_bid,
            book.down_ask,
            book.up_bid_size,
            book.up_ask_size,
            book.down_bid_size,
            book.down_ask_size,
        )
    )
    return book.ts.tolist(), rows


class ReplayFeed:
    """As-of snapshots of every replayable window of a dataset."""

    def __init__(
        self,
        dataset: RecordedDataset,
        candle_interval_s: float = 60.0,
        candle_history: int = 120,
        *,
        cadence_s: float | None = None,
        max_price_age_s: float = DEFAULT_MAX_PRICE_AGE_S,
    ) -> None:
        """``cadence_s`` given: also leave out (and count) windows not covered at the decision
        times of that cadence (see the module docstring); ``max_price_age_s`` is the guard's
        MAX_PRICE_AGE_S that, plus the path's interval, bounds a price's age."""
        if not candle_interval_s > 0:
            raise ValueError(f"candle_interval_s must be > 0, got {candle_interval_s}")
        if candle_history < 0:
            raise ValueError(f"candle_history must be >= 0, got {candle_history}")
        if not max_price_age_s >= 0:
            raise ValueError(f"max_price_age_s must be >= 0, got {max_price_age_s}")
        self._max_price_age_s = max_price_age_s
        self._dataset = dataset
        self._candle_history = candle_history
        self._paths: dict[str, _AssetPath] = {}
        for asset, series in dataset.prices.items():
            self._paths[asset] = _AssetPath(
                prices=series,
                ts=series.ts.tolist(),
                price=series.price.tolist(),
                source=None if series.source is None else [str(s) for s in series.source],
                interval_s=_median_spacing(series.ts),
                candles=build_candles(series.ts, series.price, series.volume, candle_interval_s),
            )

        self.skipped: dict[str, int] = {}
        # One entry per skipped window, in start order (the counts above are their reasons).
        self.skipped_windows: list[CoverageGap] = []
        self._states: dict[str, _MarketState] = {}
        replayable: list[RecordedMarket] = []
        for m in dataset.markets:
            path = self._paths.get(m.asset)
            if path is None:
                self._skip(CoverageGap(m.market_id, SKIP_NO_PRICE_PATH, m.start_ts,
                                       f"prices.csv has no {m.asset} rows"))
                continue
            ptb = m.price_to_beat
            if ptb is None:
                # The derived reference needs a present price at the start, like a decision.
                gap = self._price_gap(m, path, m.start_ts, "the start (price to beat)")
                if gap is not None:
                    self._skip(gap)
                    continue
                ptb = path.price[path.index_at(m.start_ts)]
            if m.fee_rate is not None:
                fee_rate, fee_exponent = m.fee_rate, 1.0
            else:
                schedule = dated_fee_schedule(m.start_ts)
                fee_rate, fee_exponent = schedule.rate, schedule.exponent
            book_ts, book_rows = _book_state(dataset.book(m.market_id))
            self._states[m.market_id] = _MarketState(
                market=m,
                path=path,
                price_to_beat=ptb,
                fee_rate=fee_rate,
                fee_exponent=fee_exponent,
                book_ts=book_ts,
                book_rows=book_rows,
            )
            replayable.append(m)
        if cadence_s is not None:
            covered: list[RecordedMarket] = []
            for m in replayable:
                gap = self.coverage_gap(m, cadence_s)
                if gap is None:
                    covered.append(m)
                else:
                    del self._states[m.market_id]
                    self._skip(gap)
            replayable = covered
        self._markets = tuple(replayable)

    def _skip(self, gap: CoverageGap) -> None:
        self.skipped[gap.reason] = self.skipped.get(gap.reason, 0) + 1
        self.skipped_windows.append(gap)

    def price_age_bound_s(self, asset: str, max_price_age_s: float | None = None) -> float:
        """The oldest a price may be and still count as present: the guard's freshness bound
        (MAX_PRICE_AGE_S plus the path's native interval)."""
        age = self._max_price_age_s if max_price_age_s is None else max_price_age_s
        return age + self._paths[asset].interval_s

    def _price_gap(self, market: RecordedMarket, path: _AssetPath, t: float, what: str,
                   max_price_age_s: float | None = None) -> CoverageGap | None:
        """None when the path is present at ``t``, else why not."""
        bound = self.price_age_bound_s(market.asset, max_price_age_s)
        i = path.index_at(t)
        if i >= 0 and t - path.ts[i] <= bound:
            return None
        at = f"at {what} {t:.0f}"
        if i < 0:
            return CoverageGap(market.market_id, SKIP_PRICE_STARTS_LATE, t,
                               f"no {market.asset} price {at}: the path starts at "
                               f"{path.ts[0]:.0f}")
        age = f"last {market.asset} price {at} is {t - path.ts[i]:.0f} s old (> {bound:g} s)"
        if i == len(path.ts) - 1:
            return CoverageGap(market.market_id, SKIP_PRICE_ENDS_EARLY, t,
                               f"{age}: the path ends at {path.ts[i]:.0f}")
        return CoverageGap(market.market_id, SKIP_PRICE_GAP, t,
                           f"{age}: a hole until {path.ts[i + 1]:.0f}")

    def coverage_gap(self, market: RecordedMarket, cadence_s: float,
                     max_price_age_s: float | None = None) -> CoverageGap | None:
        """None when the window can be replayed at this cadence, else the first reason it
        cannot (module docstring: price present at every decision time; a book row by the
        last decision time when the dataset has a book)."""
        state = self._state(market)
        times = self.decision_times(market, cadence_s)
        for t in times:
            gap = self._price_gap(market, state.path, t, "decision time", max_price_age_s)
            if gap is not None:
                return gap
        if self._dataset.has_book and times:
            last = times[-1]
            if state.book_ts is None or state.book_ts[0] > last:
                first = "none" if state.book_ts is None else f"{state.book_ts[0]:.0f}"
                return CoverageGap(market.market_id, SKIP_NO_BOOK, last,
                                   f"book.csv has no row by the last decision time {last:.0f} "
                                   f"(first row: {first})")
        return None

    @property
    def dataset(self) -> RecordedDataset:
        return self._dataset

    @property
    def markets(self) -> tuple[RecordedMarket, ...]:
        """The replayable windows in start-time order (skipped ones excluded)."""
        return self._markets

    def price_interval_s(self, asset: str) -> float:
        """Native cadence of the asset's price rows (median spacing; 60 for 1-minute closes)."""
        return self._paths[asset].interval_s

    def fee_schedule(self, market: RecordedMarket) -> FeeSchedule:
        """The taker fee schedule the replay charges in this window."""
        state = self._state(market)
        return FeeSchedule(state.fee_rate, state.fee_exponent)

    def price_to_beat(self, market: RecordedMarket) -> float:
        """The reference price this replay uses for the window (never venue-verified)."""
        return self._state(market).price_to_beat

    def _state(self, market: RecordedMarket) -> _MarketState:
        state = self._states.get(market.market_id)
        if state is None:
            raise ValueError(f"market {market.market_id!r} is not replayable in this feed")
        return state

    def snapshot_at(self, market: RecordedMarket, t: float) -> MarketSnapshot:
        """The window as seen at ``t``, from observations stamped at or before ``t`` only.

        Raises ValueError for a skipped/unknown market or when no price row exists by ``t``.
        """
        state = self._state(market)
        path = state.path
        i = bisect_right(path.ts, t) - 1
        if i < 0:
            raise ValueError(f"no {market.asset} price at or before {t} for {market.market_id}")

        up: BookTop | None = None
        down: BookTop | None = None
        book_ts: float | None = None
        if state.book_ts is not None and state.book_rows is not None:
            j = bisect_right(state.book_ts, t) - 1
            if j >= 0:
                ub, ua, db, da, ubs, uas, dbs, das = state.book_rows[j].tolist()
                up = BookTop(bid=_opt(ub), ask=_opt(ua), bid_size=_opt(ubs), ask_size=_opt(uas))
                down = BookTop(bid=_opt(db), ask=_opt(da), bid_size=_opt(dbs), ask_size=_opt(das))
                book_ts = state.book_ts[j]

        source = "unknown" if path.source is None else (path.source[i] or "unknown")
        return MarketSnapshot(
            market_id=market.market_id,
            asset=market.asset,
            as_of=t,
            window_start=market.start_ts,
            window_end=market.end_ts,
            # The reference is fixed at the window start; before it, nobody knows it yet.
            price_to_beat=state.price_to_beat if t >= market.start_ts else None,
            price_to_beat_verified=False,
            price=path.price[i],
            price_ts=path.ts[i],
            price_source=source,
            price_interval_s=path.interval_s,
            candles=path.candles.tail(t, self._candle_history),
            up=up,
            down=down,
            book_ts=book_ts,
            fee_rate=state.fee_rate,
            fee_exponent=state.fee_exponent,
        )

    def decision_times(self, market: RecordedMarket, cadence_s: float) -> list[float]:
        """``start_ts + k * cadence_s`` for k = 1, 2, ... strictly before ``end_ts``."""
        if not cadence_s > 0:
            raise ValueError(f"cadence_s must be > 0, got {cadence_s}")
        times: list[float] = []
        k = 1
        # Multiplying (not accumulating) keeps long runs free of float drift.
        while (t := market.start_ts + k * cadence_s) < market.end_ts:
            times.append(t)
            k += 1
        return times

    def settlement(self, market: RecordedMarket) -> tuple[Outcome | None, bool]:
        """``(outcome, verified)`` for the window.

        The recorded outcome is returned as verified.  Otherwise the outcome is derived from the
        price path (unverified): the last price at or before ``end_ts`` against the
        price_to_beat, ties going Up.  It is undeterminable (None) when there is no
        price_to_beat, the path does not reach ``end_ts``, or the last price before the end is
        older than max(2 native intervals, 60 s).
        """
        if market.outcome is not None:
            return market.outcome, True
        state = self._states.get(market.market_id)
        ptb = state.price_to_beat if state is not None else market.price_to_beat
        path = self._paths.get(market.asset)
        if ptb is None or path is None or not path.ts or path.ts[-1] < market.end_ts:
            return None, False
        i = path.index_at(market.end_ts)
        max_age = max(_SETTLE_MAX_AGE_INTERVALS * path.interval_s, _SETTLE_MAX_AGE_FLOOR_S)
        if i < 0 or market.end_ts - path.ts[i] > max_age:
            return None, False
        outcome: Literal["up", "down"] = "up" if path.price[i] >= ptb else "down"
        return outcome, False
