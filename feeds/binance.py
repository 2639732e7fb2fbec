"""Binance BTCUSDT: the ``@trade`` stream parsed into :class:`Trade` records, and the klines
REST backfill that warms the indicators up at start.

Wire frames are parsed at the edge: a frame becomes a frozen :class:`Trade` or a drop reason,
never a half-checked dict.  :class:`TradeGate` then applies what one frame cannot show on its
own (duplicate and out-of-order ids, exchange timestamps from the future, 10x spikes), so a
bad price never reaches the snapshot store.  Binance answers its own protocol pings; the
connection loop (``feeds.ws``) adds the staleness watchdog and the capped reconnect.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import httpx

from core.clock import Clock
from core.logs import get_logger
from feeds.sanity import (
    BAD_PRICE,
    BAD_SIZE,
    DUPLICATE,
    FUTURE_TS,
    MISSING_FIELD,
    NOT_JSON,
    OUT_OF_ORDER,
    SPIKE,
    UNKNOWN_EVENT,
    WRONG_SYMBOL,
    JumpFilter,
    json_loads,
)
from feeds.ws import Backoff, FeedCounters, WsFeed

log = get_logger("updown.feeds.binance")

BINANCE_SYMBOL = "BTCUSDT"
# Not garbage: Binance announces a disconnect (e.g. its 24 h limit) before making it.
SERVER_SHUTDOWN = "server_shutdown"
PRICE_SOURCE = "binance_spot"
KLINE_SOURCE = "binance_kline_1m"
_KLINE_INTERVALS = {60: "1m", 300: "5m", 900: "15m", 3600: "1h"}


class Trade(NamedTuple):
    """One BTCUSDT trade as Binance reported it (times in UTC epoch seconds).

    A NamedTuple, not a frozen dataclass: just as immutable, and several times cheaper to
    build, which matters at tens of thousands of trades a second.
    """

    trade_id: int
    price: float
    qty: float
    trade_ts: float  # T: when the trade happened at the exchange
    event_ts: float  # E: when the exchange emitted the event (latency is measured from here)
    buyer_is_maker: bool


_INF = math.inf
_new_tuple = tuple.__new__


def _ms(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value / 1000.0 if math.isfinite(value) and value >= 0 else None


def _number(value: Any) -> float | None:
    """Binance sends decimals as strings; anything that is not a finite number is None."""
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def parse_trade(frame: str | bytes, symbol: str = BINANCE_SYMBOL) -> Trade | str:
    """A trade frame as a :class:`Trade`, or the reason it cannot be one.

    Written for the hot path (exact type checks, no helper calls): every frame of the stream
    goes through here.
    """
    try:
        data = json_loads(frame)
    except ValueError:
        return NOT_JSON
    if type(data) is not dict:
        return NOT_JSON
    event = data.get("e")
    if event != "trade":
        if event == "serverShutdown":
            return SERVER_SHUTDOWN
        return UNKNOWN_EVENT if event is not None else MISSING_FIELD
    try:
        trade_id, raw_price, raw_qty = data["t"], data["p"], data["q"]
        trade_ms, event_ms, sym = data["T"], data["E"], data["s"]
    except KeyError:
        return MISSING_FIELD
    if sym != symbol:
        return WRONG_SYMBOL
    # Ids and millisecond stamps are JSON integers on the wire (a bool is not one).
    if type(trade_id) is not int or type(trade_ms) is not int or type(event_ms) is not int \
            or trade_ms < 0 or event_ms < 0:
        return MISSING_FIELD
    kind = type(raw_price)
    if kind is not str and kind is not float and kind is not int:
        return BAD_PRICE
    try:
        price = float(raw_price)
    except ValueError:
        return BAD_PRICE
    if not 0.0 < price < _INF:  # also false for NaN
        return BAD_PRICE
    kind = type(raw_qty)
    if kind is not str and kind is not float and kind is not int:
        return BAD_SIZE
    try:
        qty = float(raw_qty)
    except ValueError:
        return BAD_SIZE
    if not 0.0 <= qty < _INF:
        return BAD_SIZE
    # tuple.__new__ skips the NamedTuple's Python-level __new__ (a third of a microsecond).
    return _new_tuple(Trade, (trade_id, price, qty, trade_ms / 1000.0, event_ms / 1000.0,
                              data.get("m") is True))


class TradeGate:
    """Cross-frame checks: ids strictly increasing, no future stamps, no 10x spikes."""

    def __init__(
        self,
        clock: Clock,
        *,
        max_future_s: float = 1.0,
        max_jump: float = 0.10,
        reanchor_after: int = 20,
    ) -> None:
        self._now = clock.now  # bound once: this runs for every trade
        # The exchange clock may run a little ahead of ours; more than this is garbage (and
        # beyond the guard's 1 s skew limit anyway).
        self.max_future_s = max_future_s
        self.jump = JumpFilter(max_jump, reanchor_after)
        self.last_id: int | None = None

    def seed(self, price: float) -> None:
        """Anchor the spike check before the first trade (e.g. on the backfilled close)."""
        self.jump.seed(price)

    def horizon(self) -> float:
        """The latest exchange stamp accepted now (one clock read serves a whole batch)."""
        return self._now() + self.max_future_s

    def check(self, trade: Trade, horizon: float | None = None) -> str | None:
        """None when the trade is accepted, else the drop reason."""
        if horizon is None:
            horizon = self._now() + self.max_future_s
        if trade.trade_ts > horizon or trade.event_ts > horizon:
            return FUTURE_TS
        last_id = self.last_id
        if last_id is not None and trade.trade_id <= last_id:
            return DUPLICATE if trade.trade_id == last_id else OUT_OF_ORDER
        if not self.jump.admits(trade.price):
            return SPIKE
        self.last_id = trade.trade_id
        return None


class BinanceTradeFeed:
    """``btcusdt@trade`` into ``on_trade``; every dropped frame counted by reason."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        on_trade: Callable[[Trade], None],
        *,
        symbol: str = BINANCE_SYMBOL,
        stale_after_s: float = 2.0,
        backoff: Backoff | None = None,
        gate: TradeGate | None = None,
        name: str = "binance",
    ) -> None:
        self.symbol = symbol
        self.gate = gate or TradeGate(clock)
        self._on_trade = on_trade
        self.counters = FeedCounters(name)
        # The stream name is in the URL path: reconnecting is resubscribing.
        self.ws = WsFeed(name, url, self.handle, counters=self.counters,
                         stale_after_s=stale_after_s, backoff=backoff, clock=clock,
                         decode=False, batch_handler=self.handle_batch)

    def handle(self, frame: str | bytes) -> bool:
        """One frame; True when it carried an accepted trade."""
        return self.handle_batch((frame,))

    def handle_batch(self, frames: Sequence[str | bytes]) -> bool:
        """The frames of one read, in order; True when any carried an accepted trade.

        The hot path at tens of thousands of frames a second: names bound once per batch and
        one clock read for the future-stamp check of the whole batch (it is microseconds old
        by the last frame, far inside the gate's 1 s tolerance).
        """
        symbol, on_trade, counters = self.symbol, self._on_trade, self.counters
        check = self.gate.check
        horizon = self.gate.horizon()
        accepted = 0
        for frame in frames:
            parsed = parse_trade(frame, symbol)
            if type(parsed) is str:
                if parsed == SERVER_SHUTDOWN:
                    # Reconnect now, on our terms, rather than when the venue cuts us off.
                    counters.ignored += 1
                    log.info("binance_server_shutdown")
                    self.ws.recycle()
                else:
                    counters.drop(parsed)
                continue
            trade = cast(Trade, parsed)
            reason = check(trade, horizon)
            if reason is not None:
                counters.drop(reason)
                continue
            accepted += 1
            on_trade(trade)
        counters.accepted += accepted
        return accepted > 0

    async def run(self) -> None:
        await self.ws.run()


# --- klines backfill ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kline:
    """One complete candle; ``close_ts`` is the end of its interval (tools/candles semantics)."""

    open_ts: float
    close_ts: float
    open: float
    high: float
    low: float
    close: float
    volume: float


class KlinesError(Exception):
    """The klines response is unusable; one line saying why."""


def parse_klines(rows: Any, interval_s: float, now: float) -> list[Kline]:
    """Binance kline arrays into complete candles (``close_ts <= now``), oldest first."""
    if not isinstance(rows, list):
        raise KlinesError("klines response is not a list")
    out: list[Kline] = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) < 6:
            raise KlinesError(f"kline {i} is not an array of at least 6 fields")
        open_ts = _ms(row[0])
        values = [_number(v) for v in row[1:6]]
        if open_ts is None or any(v is None for v in values):
            raise KlinesError(f"kline {i} has a malformed field")
        o, h, lo, c, v = (float(x) for x in values)  # type: ignore[arg-type]
        if min(o, h, lo, c) <= 0 or v < 0 or not lo <= min(o, c) <= max(o, c) <= h:
            raise KlinesError(f"kline {i} is not a consistent OHLCV candle")
        # Binance's closeTime is open + interval - 1 ms; our candles close on the boundary.
        close_ts = open_ts + interval_s
        if close_ts > now:
            continue  # the candle still forming: only complete candles are history
        if out and open_ts <= out[-1].open_ts:
            raise KlinesError(f"kline {i} is not after the previous one")
        out.append(Kline(open_ts, close_ts, o, h, lo, c, v))
    return out


async def fetch_klines(
    http: httpx.AsyncClient,
    base_url: str,
    now: float,
    *,
    symbol: str = BINANCE_SYMBOL,
    interval_s: int = 60,
    limit: int = 180,
) -> list[Kline]:
    """The last ``limit`` complete candles from ``GET /api/v3/klines``."""
    interval = _KLINE_INTERVALS.get(interval_s)
    if interval is None:
        raise ValueError(f"no Binance kline interval for {interval_s}s")
    response = await http.get(
        f"{base_url.rstrip('/')}/api/v3/klines",
        params={"symbol": symbol, "interval": interval, "limit": str(limit)},
    )
    response.raise_for_status()
    try:
        rows = response.json()
    except ValueError:
        raise KlinesError("klines response is not JSON") from None
    return parse_klines(rows, float(interval_s), now)
