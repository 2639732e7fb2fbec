"""The live snapshot store: latest prices with their ages, candles, book top and depth.

Feeds write into it (trades, reference ticks, book events, the window, the price to beat);
the graph reads :meth:`SnapshotStore.snapshot`, a ``MarketSnapshot`` as of the injected
clock's now, exactly the type the replay produces, so one graph consumes both.

Rules the snapshot keeps:

* only gate-accepted values get here, so state never holds a bad price;
* observation stamps are the venue's (trade time ``T``, oracle stamp); one a little ahead of
  our clock (within the gates' tolerance) is clamped to ``as_of``, never the other way round,
  so ages are honest and a snapshot never holds anything from after ``as_of``;
* 1-minute candles follow ``feeds/candles.py``: a trade at ``ts`` belongs to the candle closing
  at ``ceil(ts / 60) * 60`` and only candles with ``close_ts <= as_of`` are exposed; the
  klines backfill fills the history before the first live trade;
* the book is exposed only when both tokens' books are valid (after a ``tick_size_change`` or
  a reconnect, until fresh snapshots arrive, the snapshot has no book and the guard refuses);
* the price to beat appears from the window start on, with its source and whether it is
  verified (see ``tools.polymarket.price_to_beat``);
* a window whose market says TWAP (``cryptoMarketConfig``) is TWAP-settled in the snapshot;
  in its final ``twap_lookback_s`` the snapshot carries the time-weighted mean of the
  Chainlink reference ticks since the averaging window began (the part of the close already
  fixed), when the ticks cover that stretch.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from core.clock import Clock
from core.logs import get_logger
from core.snapshot import BookTop, Candles, MarketSnapshot
from feeds.binance import PRICE_SOURCE, Kline, Trade
from tools.polymarket.gamma import MarketWindow
from tools.polymarket.market_channel import Level, MarketResolved, OrderBooks
from tools.polymarket.price_to_beat import PRICE_TO_BEAT_TOLERANCE_REL, PriceToBeat
from tools.polymarket.rtds import ReferenceTick

log = get_logger("updown.feeds.store")

Bar = tuple[float, float, float, float, float, float]
# Outcomes of past windows kept for the recorder (about three days of 15-minute windows).
_OUTCOMES_KEPT = 288  # close_ts, open, high, low, close, volume
Outcome = Literal["up", "down"]


@dataclass(frozen=True, slots=True)
class ResolvedOutcome:
    market_id: str
    outcome: Outcome
    source: str


@dataclass(frozen=True, slots=True)
class LiveStatus:
    """What ``updown stream`` prints: the latest values and their ages at ``as_of``."""

    as_of: float
    market_id: str | None
    window_start: float | None
    window_end: float | None
    time_to_close_s: float | None
    btc_price: float | None
    btc_price_age_s: float | None
    reference_price: float | None
    reference_age_s: float | None
    twap60: float | None
    price_to_beat: float | None
    price_to_beat_verified: bool
    price_to_beat_source: str | None
    up_bid: float | None
    up_ask: float | None
    down_bid: float | None
    down_ask: float | None
    book_age_s: float | None
    tick_size: float | None
    # "twap" or "point" for the window (None without one) and, in the final minute of a TWAP
    # window, the mean of the reference so far.
    settlement: str | None = None
    settlement_partial_mean: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class SnapshotStore:
    """Latest market state, written by the feeds and read as immutable snapshots."""

    def __init__(
        self,
        clock: Clock,
        *,
        books: OrderBooks | None = None,
        asset: str = "BTC",
        candle_interval_s: float = 60.0,
        candle_history: int = 120,
        first_tick_tolerance_s: float = 5.0,
        reference_history: int = 900,
        price_to_beat_tolerance: float = PRICE_TO_BEAT_TOLERANCE_REL,
        settlement_max_gap_s: float = 10.0,
    ) -> None:
        if not candle_interval_s > 0:
            raise ValueError(f"candle_interval_s must be > 0, got {candle_interval_s}")
        self._clock = clock
        self.books = books or OrderBooks(clock)
        self.asset = asset
        self.candle_interval_s = candle_interval_s
        self.candle_history = candle_history
        self.first_tick_tolerance_s = first_tick_tolerance_s

        self.window: MarketWindow | None = None
        self.price_to_beat: PriceToBeat | None = None
        self.price_to_beat_tolerance = price_to_beat_tolerance
        # Windows whose verified sources disagreed: never verified again.
        self._disputed: set[str] = set()
        self.outcomes: dict[str, ResolvedOutcome] = {}

        # Trades (hot path: plain attributes, no allocation but the bar tuple per minute).
        self.price: float | None = None
        self.price_ts = 0.0
        self.trade_count = 0
        self.cum_volume = 0.0
        self._bars: deque[Bar] = deque(maxlen=max(candle_history, 1) + 2)
        self._bars_version = 0
        self._bar_close: float | None = None
        self._bar_open = self._bar_high = self._bar_low = self._bar_last = 0.0
        self._bar_volume = 0.0
        self._bar_updates = 0
        self._candle_cache: tuple[tuple[int, bool, int], Candles] | None = None
        self.warmup: tuple[Kline, ...] = ()

        # Reference (Chainlink), its TWAP and the Binance relay, with a short history so a
        # window that rolls over just after its first tick can still find it.
        self.reference: ReferenceTick | None = None
        self.twap: ReferenceTick | None = None
        self.relay: ReferenceTick | None = None
        self._recent: deque[ReferenceTick] = deque(maxlen=reference_history)
        # Chainlink ticks alone, for the running mean of a TWAP close (about 1/s: 15 minutes).
        self._chainlink: deque[ReferenceTick] = deque(maxlen=reference_history)
        # The averaging window's start must be covered by a tick at most this much older.
        self.settlement_max_gap_s = settlement_max_gap_s

    # --- writers ------------------------------------------------------------------------

    def on_trade(self, trade: Trade) -> None:
        """One accepted trade: the latest price and the candle it belongs to."""
        ts = trade.trade_ts
        price = trade.price
        self.price = price
        self.price_ts = ts
        self.trade_count += 1
        self.cum_volume += trade.qty
        close = math.ceil(ts / self.candle_interval_s) * self.candle_interval_s
        bar_close = self._bar_close
        if close == bar_close:
            if price > self._bar_high:
                self._bar_high = price
            elif price < self._bar_low:
                self._bar_low = price
            self._bar_last = price
            self._bar_volume += trade.qty
            self._bar_updates += 1
            return
        if bar_close is not None and close < bar_close:
            return  # stamped inside a candle already closed: the price counts, the bar is done
        if bar_close is not None:
            self._bars.append((bar_close, self._bar_open, self._bar_high, self._bar_low,
                               self._bar_last, self._bar_volume))
            self._bars_version += 1
        self._bar_close = close
        self._bar_open = self._bar_high = self._bar_low = self._bar_last = price
        self._bar_volume = trade.qty
        self._bar_updates += 1

    def seed_klines(self, klines: Iterable[Kline]) -> None:
        """Backfilled complete candles: history before the live bar (they replace a partial
        live bar of the same minute, which began when we connected, not when the minute did)."""
        fresh = [k for k in klines if self._bar_close is None or k.close_ts < self._bar_close]
        if not fresh:
            return
        merged = {bar[0]: bar for bar in self._bars}
        for k in fresh:
            merged[k.close_ts] = (k.close_ts, k.open, k.high, k.low, k.close, k.volume)
        self._bars = deque(sorted(merged.values()), maxlen=self._bars.maxlen)
        self._bars_version += 1
        warm = {k.close_ts: k for k in self.warmup}
        warm.update((k.close_ts, k) for k in fresh)
        self.warmup = tuple(sorted(warm.values(), key=lambda k: k.close_ts))

    def on_reference(self, tick: ReferenceTick) -> None:
        previous = self.reference
        if tick.source == "chainlink":
            self.reference = tick
            self._chainlink.append(tick)
        elif tick.source == "twap60":
            self.twap = tick
        else:
            self.relay = tick
            return
        self._recent.append(tick)
        window = self.window
        if window is None:
            return
        if tick.source == "twap60":
            self._consider_twap(window, tick)
        elif previous is not None:
            self._consider_first_tick(window, previous, tick)

    def set_window(self, window: MarketWindow) -> None:
        """The window the snapshot describes; the price to beat is re-established for it."""
        if self.window is not None and self.window.market_id == window.market_id:
            self.window = window
            return
        self.window = window
        self.price_to_beat = None
        self.books.set_assets(window.token_ids, window.tick_size)
        # Ticks already seen may hold this window's start (roll-over just after it).
        previous: ReferenceTick | None = None
        for tick in self._recent:
            if tick.source == "twap60":
                self._consider_twap(window, tick)
            else:
                if previous is not None:
                    self._consider_first_tick(window, previous, tick)
                previous = tick

    def offer_price_to_beat(self, candidate: PriceToBeat) -> bool:
        """Adopt ``candidate`` if it is for the current window and outranks what we have.

        Two verified sources that disagree beyond the tolerance make the window's price to
        beat unverified for good (the guard then refuses): one of them is wrong, whichever
        ranks higher.
        """
        window = self.window
        if window is None or candidate.market_id != window.market_id:
            return False
        current = self.price_to_beat
        if (current is not None and current.verified and candidate.verified
                and candidate.source != current.source
                and candidate.disagrees(current, self.price_to_beat_tolerance)):
            self._disputed.add(window.market_id)
            log.warning("price_to_beat_disagrees", market_id=window.market_id,
                        source=candidate.source, value=candidate.value,
                        other=current.source, other_value=current.value,
                        tolerance_rel=self.price_to_beat_tolerance)
        disputed = window.market_id in self._disputed
        if not candidate.outranks(current):
            if disputed and current is not None and current.verified:
                self.price_to_beat = replace(current, verified=False)
                return True
            return False
        if disputed:
            candidate = replace(candidate, verified=False)
        self.price_to_beat = candidate
        log.info("price_to_beat", market_id=window.market_id, value=candidate.value,
                 source=candidate.source, verified=candidate.verified)
        return True

    def record_outcome(self, outcome: ResolvedOutcome) -> None:
        """The first venue-stated outcome of a window wins; a few hundred are kept."""
        self.outcomes.setdefault(outcome.market_id, outcome)
        while len(self.outcomes) > _OUTCOMES_KEPT:
            del self.outcomes[next(iter(self.outcomes))]  # oldest first (insertion order)

    def on_resolved(self, event: MarketResolved, windows: Iterable[MarketWindow]) -> None:
        """A ``market_resolved`` event for one of ``windows``: its outcome, venue-verified."""
        for window in windows:
            if event.market != window.condition_id and event.market != window.market_id:
                continue
            # The winning token decides; the label is the fallback ("Up"/"Down").
            side = window.outcome_of(event.winning_asset_id)
            label = side or event.winning_outcome.strip().lower()
            outcome: Outcome | None = "up" if label == "up" else "down" if label == "down" \
                else None
            if outcome is not None:
                self.record_outcome(ResolvedOutcome(window.market_id, outcome,
                                                    "market_resolved"))

    def _consider_twap(self, window: MarketWindow, tick: ReferenceTick) -> None:
        # The TWAP update stamped exactly at the start is the venue's own price to beat.
        if window.twap_enabled and tick.observed_ts == window.start_ts:
            self.offer_price_to_beat(PriceToBeat(window.market_id, tick.value, "twap_stream",
                                                 True, tick.observed_ts))

    def _consider_first_tick(self, window: MarketWindow, previous: ReferenceTick,
                             tick: ReferenceTick) -> None:
        # The first Chainlink tick at/after the start, and we know it is the first because we
        # also saw the one before the start, close by.  Approximate: never verified.
        start = window.start_ts
        tolerance = self.first_tick_tolerance_s
        if (previous.observed_ts < start <= tick.observed_ts
                and tick.observed_ts - previous.observed_ts <= tolerance
                and self.price_to_beat is None):
            self.offer_price_to_beat(PriceToBeat(window.market_id, tick.value,
                                                 "first_chainlink_tick", False,
                                                 tick.observed_ts))

    # --- readers ------------------------------------------------------------------------

    def candles(self, as_of: float) -> Candles:
        """Complete candles (``close_ts <= as_of``), oldest first, at most ``candle_history``."""
        include_current = self._bar_close is not None and self._bar_close <= as_of
        # A bar closed by a trade stamped slightly ahead of our clock is not exposed yet.
        last_bar_due = not self._bars or self._bars[-1][0] <= as_of
        key = (self._bars_version, last_bar_due, self._bar_updates if include_current else -1)
        cached = self._candle_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        bars = [b for b in self._bars if b[0] <= as_of]
        if include_current and self._bar_close is not None:
            bars.append((self._bar_close, self._bar_open, self._bar_high, self._bar_low,
                         self._bar_last, self._bar_volume))
        if self.candle_history >= 0:
            bars = bars[-self.candle_history:] if self.candle_history else []
        # model_construct: the columns are aligned by construction and sorted by close_ts;
        # MarketSnapshot still checks the last close is not after as_of.
        candles = Candles.model_construct(
            interval_s=self.candle_interval_s,
            close_ts=tuple(b[0] for b in bars),
            open=tuple(b[1] for b in bars),
            high=tuple(b[2] for b in bars),
            low=tuple(b[3] for b in bars),
            close=tuple(b[4] for b in bars),
            volume=tuple(b[5] for b in bars),
        )
        self._candle_cache = (key, candles)
        return candles

    def book_tops(self) -> tuple[BookTop | None, BookTop | None, float | None]:
        """(up, down, book_ts): all None unless both tokens' books are valid."""
        window = self.window
        if window is None:
            return None, None, None
        up_book = self.books.book(window.up_token_id)
        down_book = self.books.book(window.down_token_id)
        if up_book is None or down_book is None or not (up_book.valid and down_book.valid):
            return None, None, None
        received = [b.received_ts for b in (up_book, down_book) if b.received_ts is not None]
        return up_book.top(), down_book.top(), max(received) if received else None

    def depth(self, outcome: Outcome, side: Literal["BUY", "SELL"], levels: int = 5
              ) -> list[Level]:
        """The best ``levels`` price levels of one outcome's bids (BUY) or asks (SELL)."""
        window = self.window
        if window is None:
            return []
        token = window.up_token_id if outcome == "up" else window.down_token_id
        book = self.books.book(token)
        return [] if book is None else book.depth(side, levels)

    def tick_size(self) -> float | None:
        window = self.window
        if window is None:
            return None
        ticks = [b.tick_size for b in (self.books.book(t) for t in window.token_ids) if b]
        # The coarser grid is valid on both tokens: flooring to it never breaks either.
        return max(ticks) if ticks else window.tick_size

    def snapshot(self) -> MarketSnapshot | None:
        """The market as of the clock's now; None until there is a window and a price."""
        window = self.window
        price = self.price
        if window is None or price is None:
            return None
        as_of = self._clock.now()
        up, down, book_ts = self.book_tops()
        ptb = self.price_to_beat
        known_ptb = ptb if ptb is not None and as_of >= window.start_ts else None
        reference = self.reference
        return MarketSnapshot(
            market_id=window.market_id,
            asset=self.asset,
            as_of=as_of,
            window_start=window.start_ts,
            window_end=window.end_ts,
            price_to_beat=None if known_ptb is None else known_ptb.value,
            price_to_beat_verified=known_ptb is not None and known_ptb.verified,
            price=price,
            price_ts=min(self.price_ts, as_of),
            price_source=PRICE_SOURCE,
            price_interval_s=0.0,
            reference_price=None if reference is None else reference.value,
            reference_ts=None if reference is None else min(reference.observed_ts, as_of),
            candles=self.candles(as_of),
            up=up,
            down=down,
            book_ts=None if book_ts is None else min(book_ts, as_of),
            fee_rate=window.fee_rate,
            fee_exponent=window.fee_exponent,
            tick_size=self.tick_size() or window.tick_size,
            min_order_shares=window.min_order_shares,
            settlement="twap" if window.twap_enabled else "point",
            settlement_window_s=_lookback_s(window),
            settlement_partial_mean=self.settlement_partial_mean(as_of),
        )

    def settlement_partial_mean(self, as_of: float) -> float | None:
        """The mean of the Chainlink reference from the TWAP window's start to ``as_of``.

        None outside the final ``twap_lookback_s`` of a TWAP window, or when the ticks do not
        cover the stretch (no tick within ``settlement_max_gap_s`` before its start).
        """
        window = self.window
        if window is None or not window.twap_enabled:
            return None
        start = window.end_ts - _lookback_s(window)
        end = min(as_of, window.end_ts)
        if end <= start:
            return None
        ticks = [(t.observed_ts, t.value) for t in self._chainlink if t.observed_ts <= end]
        return time_weighted_mean(ticks, start, end, self.settlement_max_gap_s)

    def status(self) -> LiveStatus:
        """Latest values and ages, whether or not a full snapshot can be built yet."""
        now = self._clock.now()
        window = self.window
        up, down, book_ts = self.book_tops()
        ptb = self.price_to_beat
        ref = self.reference

        def age(ts: float | None) -> float | None:
            return None if ts is None else max(0.0, now - ts)

        return LiveStatus(
            as_of=now,
            market_id=None if window is None else window.market_id,
            window_start=None if window is None else window.start_ts,
            window_end=None if window is None else window.end_ts,
            time_to_close_s=None if window is None else max(0.0, window.end_ts - now),
            btc_price=self.price,
            btc_price_age_s=age(self.price_ts) if self.price is not None else None,
            reference_price=None if ref is None else ref.value,
            reference_age_s=None if ref is None else age(ref.observed_ts),
            twap60=None if self.twap is None else self.twap.value,
            price_to_beat=None if ptb is None else ptb.value,
            price_to_beat_verified=ptb is not None and ptb.verified,
            price_to_beat_source=None if ptb is None else ptb.source,
            up_bid=None if up is None else up.bid,
            up_ask=None if up is None else up.ask,
            down_bid=None if down is None else down.bid,
            down_ask=None if down is None else down.ask,
            book_age_s=age(book_ts),
            tick_size=self.tick_size(),
            settlement=None if window is None else "twap" if window.twap_enabled else "point",
            settlement_partial_mean=self.settlement_partial_mean(now),
        )


def _lookback_s(window: MarketWindow) -> float:
    # A market without a (positive) lookback is point-settled or malformed: the venue's 60 s.
    return float(window.twap_lookback_s) if window.twap_lookback_s > 0 else 60.0


def time_weighted_mean(ticks: list[tuple[float, float]], start: float, end: float,
                       max_gap_s: float) -> float | None:
    """Mean over [start, end] of the step path through ``ticks`` ((ts, value), oldest first):
    each value holds from its stamp until the next one, the last until ``end``.

    None when no tick at or before ``start`` is within ``max_gap_s`` of it (the path before
    the first tick is unknown), or when ``end <= start``.
    """
    if not end > start:
        return None
    first = None
    for i, (ts, _) in enumerate(ticks):
        if ts <= start:
            first = i
        else:
            break
    if first is None or start - ticks[first][0] > max_gap_s:
        return None
    total = 0.0
    for i in range(first, len(ticks)):
        ts, value = ticks[i]
        lo = max(ts, start)
        hi = min(ticks[i + 1][0], end) if i + 1 < len(ticks) else end
        if hi > lo:
            total += value * (hi - lo)
    return total / (end - start)
