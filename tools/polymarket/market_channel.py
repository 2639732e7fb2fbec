"""Polymarket CLOB market channel: the Up/Down order books, kept from wire events.

Frames (one event or a JSON array of them) become frozen event records at the edge:
``book`` (snapshot), ``price_change`` (level updates; size 0 removes a level),
``tick_size_change``, ``best_bid_ask``, ``last_trade_price``, ``market_resolved``.
:class:`OrderBooks` applies them to per-token books with these rules:

* a token's book is valid only after a ``book`` snapshot; a ``price_change`` before it is
  dropped (``no_book``);
* (re)connecting marks every book as awaiting its snapshot: changes missed while
  disconnected must not be patched over an old book;
* a ``tick_size_change`` invalidates that token's book until the next snapshot;
* best bid/ask are the max bid / min ask, whatever order the levels arrive in (``/book``
  lists them with the best level last; nothing here relies on it);
* a book's freshness is *when we received* its last event (``clock.now()``): a snapshot's
  ``timestamp`` may be the time of the book's last change, which says nothing about whether
  our view is current.

The channel wants the subscription first and then a text ``PING`` every 10 s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from core.clock import Clock
from core.logs import get_logger
from core.snapshot import BookTop
from feeds.sanity import (
    BAD_PRICE,
    BAD_SIZE,
    FUTURE_TS,
    MISSING_FIELD,
    NO_BOOK,
    NOT_JSON,
    OUT_OF_ORDER,
    UNKNOWN_ASSET,
    UNKNOWN_EVENT,
    json_loads,
)
from feeds.ws import Backoff, FeedCounters, WsFeed

log = get_logger("updown.feeds.clob")

HEARTBEAT = "PING"
# Not a drop: an event for a token we still listen to only for its market's resolution.
IGNORED = "ignored"
_HEARTBEAT_REPLIES = frozenset({"PONG", "pong", ""})
# Events we parse but that change nothing we keep.
_IGNORED_EVENTS = frozenset({"new_market"})

Side = Literal["BUY", "SELL"]
Level = tuple[float, float]  # (price, size)


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    asset_id: str
    market: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts: float


@dataclass(frozen=True, slots=True)
class LevelChange:
    asset_id: str
    price: float
    size: float
    side: Side


@dataclass(frozen=True, slots=True)
class PriceChange:
    market: str
    changes: tuple[LevelChange, ...]
    ts: float


@dataclass(frozen=True, slots=True)
class TickSizeChange:
    asset_id: str
    market: str
    old_tick_size: float | None
    new_tick_size: float
    ts: float


@dataclass(frozen=True, slots=True)
class BestBidAsk:
    asset_id: str
    market: str
    best_bid: float | None
    best_ask: float | None
    ts: float


@dataclass(frozen=True, slots=True)
class LastTradePrice:
    asset_id: str
    market: str
    price: float
    size: float
    ts: float


@dataclass(frozen=True, slots=True)
class MarketResolved:
    market: str
    winning_asset_id: str
    winning_outcome: str
    ts: float


BookEvent = (BookSnapshot | PriceChange | TickSizeChange | BestBidAsk | LastTradePrice
             | MarketResolved)


def subscription_message(asset_ids: Sequence[str]) -> str:
    return json.dumps({"assets_ids": list(asset_ids), "type": "market",
                       "custom_feature_enabled": True})


# --- parsing ------------------------------------------------------------------------------


class _Drop(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _text(event: dict[str, Any], key: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise _Drop(MISSING_FIELD)
    return value


def _ts(event: dict[str, Any]) -> float:
    raw = event.get("timestamp")  # milliseconds, usually as a string
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise _Drop(MISSING_FIELD)
    try:
        ms = float(raw)
    except ValueError:
        raise _Drop(MISSING_FIELD) from None
    if not math.isfinite(ms) or ms < 0:
        raise _Drop(MISSING_FIELD)
    return ms / 1000.0


def _probability(raw: Any, *, optional: bool = False) -> float | None:
    if raw is None or raw == "":
        if optional:
            return None
        raise _Drop(MISSING_FIELD)
    if isinstance(raw, bool):
        raise _Drop(BAD_PRICE)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise _Drop(BAD_PRICE) from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise _Drop(BAD_PRICE)
    return value


def _size(raw: Any) -> float:
    if raw is None or isinstance(raw, bool):
        raise _Drop(MISSING_FIELD)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise _Drop(BAD_SIZE) from None
    if not (math.isfinite(value) and value >= 0.0):
        raise _Drop(BAD_SIZE)
    return value


def _levels(raw: Any) -> tuple[Level, ...]:
    if not isinstance(raw, list):
        raise _Drop(MISSING_FIELD)
    out: list[Level] = []
    for level in raw:
        if not isinstance(level, dict):
            raise _Drop(MISSING_FIELD)
        price = _probability(level.get("price"))
        assert price is not None
        out.append((price, _size(level.get("size"))))
    return tuple(out)


def _side(raw: Any) -> Side:
    if raw == "BUY":
        return "BUY"
    if raw == "SELL":
        return "SELL"
    raise _Drop(MISSING_FIELD)


def _event(event: Any) -> BookEvent | None:
    if not isinstance(event, dict):
        raise _Drop(MISSING_FIELD)
    kind = event.get("event_type")
    if kind == "book":
        return BookSnapshot(_text(event, "asset_id"), _text(event, "market"),
                            _levels(event.get("bids")), _levels(event.get("asks")), _ts(event))
    if kind == "price_change":
        raw_changes = event.get("price_changes")
        if not isinstance(raw_changes, list) or not raw_changes:
            raise _Drop(MISSING_FIELD)
        changes = []
        for change in raw_changes:
            if not isinstance(change, dict):
                raise _Drop(MISSING_FIELD)
            price = _probability(change.get("price"))
            assert price is not None
            changes.append(LevelChange(_text(change, "asset_id"), price,
                                       _size(change.get("size")), _side(change.get("side"))))
        return PriceChange(_text(event, "market"), tuple(changes), _ts(event))
    if kind == "tick_size_change":
        new = _probability(event.get("new_tick_size"))
        assert new is not None
        if new <= 0:
            raise _Drop(BAD_PRICE)
        return TickSizeChange(_text(event, "asset_id"), _text(event, "market"),
                              _probability(event.get("old_tick_size"), optional=True), new,
                              _ts(event))
    if kind == "best_bid_ask":
        return BestBidAsk(_text(event, "asset_id"), _text(event, "market"),
                          _probability(event.get("best_bid"), optional=True),
                          _probability(event.get("best_ask"), optional=True), _ts(event))
    if kind == "last_trade_price":
        price = _probability(event.get("price"))
        assert price is not None
        return LastTradePrice(_text(event, "asset_id"), _text(event, "market"), price,
                              _size(event.get("size")), _ts(event))
    if kind == "market_resolved":
        return MarketResolved(_text(event, "market"), _text(event, "winning_asset_id"),
                              _text(event, "winning_outcome"), _ts(event))
    if kind in _IGNORED_EVENTS:
        return None
    raise _Drop(UNKNOWN_EVENT if isinstance(kind, str) else MISSING_FIELD)


def parse_frame(frame: str | bytes) -> list[BookEvent | str] | None:
    """Each event in a frame as a record or a drop reason; None for a heartbeat reply.

    Events of a batch are judged one by one: one bad event does not discard its neighbours.
    Ignored event types (``new_market``) yield nothing.
    """
    if isinstance(frame, str) and frame.strip() in _HEARTBEAT_REPLIES:
        return None
    try:
        data = json_loads(frame)
    except ValueError:
        return [NOT_JSON]
    items = data if isinstance(data, list) else [data]
    out: list[BookEvent | str] = []
    for item in items:
        try:
            parsed = _event(item)
        except _Drop as drop:
            out.append(drop.reason)
            continue
        if parsed is not None:
            out.append(parsed)
    return out


# --- book state ---------------------------------------------------------------------------


class TokenBook:
    """One outcome token's levels.  ``valid`` is False until a snapshot arrives."""

    __slots__ = ("asks", "bids", "exchange_ts", "received_ts", "tick_size", "valid")

    def __init__(self, tick_size: float) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.valid = False
        self.exchange_ts = 0.0
        self.received_ts: float | None = None
        self.tick_size = tick_size

    def invalidate(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.valid = False

    def top(self) -> BookTop | None:
        if not self.valid:
            return None
        bid = max(self.bids) if self.bids else None
        ask = min(self.asks) if self.asks else None
        return BookTop(
            bid=bid, ask=ask,
            bid_size=None if bid is None else self.bids[bid],
            ask_size=None if ask is None else self.asks[ask],
        )

    def depth(self, side: Side, levels: int) -> list[Level]:
        """The best ``levels`` levels of one side, best first."""
        if not self.valid:
            return []
        if side == "BUY":
            return sorted(self.bids.items(), key=lambda kv: -kv[0])[:levels]
        return sorted(self.asks.items())[:levels]


class OrderBooks:
    """The subscribed tokens' books, written by the market-channel feed, read by the store."""

    def __init__(self, clock: Clock, *, max_future_s: float = 2.0,
                 default_tick_size: float = 0.01) -> None:
        self._clock = clock
        self.max_future_s = max_future_s
        self.default_tick_size = default_tick_size
        self._books: dict[str, TokenBook] = {}
        self._lingering: tuple[str, ...] = ()
        self.best_bid_ask: dict[str, BestBidAsk] = {}
        self.last_trade: dict[str, LastTradePrice] = {}
        self.resolved: dict[str, MarketResolved] = {}

    @property
    def asset_ids(self) -> tuple[str, ...]:
        return tuple(self._books)

    @property
    def subscribed_ids(self) -> tuple[str, ...]:
        """The tokens to subscribe to: the tracked ones, then any lingering ones."""
        return self.asset_ids + tuple(a for a in self._lingering if a not in self._books)

    def set_assets(self, asset_ids: Iterable[str], tick_size: float | None = None) -> None:
        """Track exactly these tokens (a new window): old books are forgotten."""
        tick = tick_size or self.default_tick_size
        self._books = {a: TokenBook(tick) for a in asset_ids}
        self._lingering = ()
        self.best_bid_ask.clear()
        self.last_trade.clear()

    def linger(self, asset_ids: Iterable[str]) -> None:
        """Stay subscribed to a closed window's tokens (for its ``market_resolved``) without
        keeping their books: their other events are ignored, not counted as garbage."""
        self._lingering = tuple(asset_ids)

    def await_snapshots(self) -> None:
        """After a (re)connect: nothing is trusted until the venue sends fresh snapshots."""
        for book in self._books.values():
            book.invalidate()

    def book(self, asset_id: str) -> TokenBook | None:
        return self._books.get(asset_id)

    def top(self, asset_id: str) -> BookTop | None:
        book = self._books.get(asset_id)
        return None if book is None else book.top()

    def apply(self, event: BookEvent) -> str | None:
        """Apply one event; None when applied, else the reason it was dropped."""
        now = self._clock.now()
        if event.ts > now + self.max_future_s:
            return FUTURE_TS
        if isinstance(event, MarketResolved):
            self.resolved[event.market] = event
            return None
        if isinstance(event, PriceChange):
            return self._apply_changes(event, now)
        book = self._books.get(event.asset_id)
        if book is None:
            return IGNORED if event.asset_id in self._lingering else UNKNOWN_ASSET
        if isinstance(event, BookSnapshot):
            if book.valid and event.ts < book.exchange_ts:
                return OUT_OF_ORDER
            book.bids = {p: s for p, s in event.bids if s > 0}
            book.asks = {p: s for p, s in event.asks if s > 0}
            book.valid = True
            book.exchange_ts = event.ts
            book.received_ts = now
        elif isinstance(event, TickSizeChange):
            book.tick_size = event.new_tick_size
            book.invalidate()
            log.info("clob_tick_size_change", asset_id=event.asset_id,
                     old=event.old_tick_size, new=event.new_tick_size)
        elif isinstance(event, BestBidAsk):
            self.best_bid_ask[event.asset_id] = event
        else:
            self.last_trade[event.asset_id] = event
        return None

    def _apply_changes(self, event: PriceChange, now: float) -> str | None:
        books = []
        if all(c.asset_id in self._lingering for c in event.changes):
            return IGNORED
        for change in event.changes:
            book = self._books.get(change.asset_id)
            if book is None:
                return UNKNOWN_ASSET
            if not book.valid:
                return NO_BOOK
            if event.ts < book.exchange_ts:
                return OUT_OF_ORDER
            books.append(book)
        for change, book in zip(event.changes, books, strict=True):
            levels = book.bids if change.side == "BUY" else book.asks
            if change.size == 0.0:
                levels.pop(change.price, None)
            else:
                levels[change.price] = change.size
            book.exchange_ts = event.ts
            book.received_ts = now
        return None


class ClobMarketFeed:
    """The market channel for the current window's tokens, applied to ``books``."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        books: OrderBooks,
        *,
        on_resolved: Callable[[MarketResolved], None] | None = None,
        heartbeat_interval_s: float = 10.0,
        stale_after_s: float = 15.0,
        backoff: Backoff | None = None,
        name: str = "clob",
    ) -> None:
        self.books = books
        self._on_resolved = on_resolved
        self.counters = FeedCounters(name)
        self.ws = WsFeed(
            name, url, self.handle, counters=self.counters,
            subscribe=lambda: [subscription_message(self.books.subscribed_ids)],
            on_connect=books.await_snapshots,
            heartbeat=HEARTBEAT, heartbeat_interval_s=heartbeat_interval_s,
            stale_after_s=stale_after_s, backoff=backoff, clock=clock,
        )

    def resubscribe(self) -> None:
        """New tokens (window roll-over): reconnect so the subscription names them."""
        self.ws.recycle()

    def handle(self, frame: str | bytes) -> bool:
        parsed = parse_frame(frame)
        if parsed is None:
            self.counters.heartbeats += 1
            return False
        fresh = False
        for item in parsed:
            if isinstance(item, str):
                self.counters.drop(item)
                continue
            reason = self.books.apply(item)
            if reason == IGNORED:
                self.counters.ignored += 1
                continue
            if reason is not None:
                self.counters.drop(reason)
                continue
            self.counters.accepted += 1
            fresh = True
            if isinstance(item, MarketResolved) and self._on_resolved is not None:
                self._on_resolved(item)
        if not parsed:
            self.counters.ignored += 1  # a frame of ignored event types only
        return fresh

    async def run(self) -> None:
        await self.ws.run()


# --- REST twin, for one-off looks (``updown markets``) -----------------------------------


async def fetch_book_top(http: httpx.AsyncClient, clob_url: str, token_id: str
                         ) -> BookTop | None:
    """Best bid/ask of one token from ``GET /book``; None when the book is unusable.

    ``/book`` lists bids ascending and asks descending (best level last); the max/min taken
    here gives the same answer whatever the order.
    """
    response = await http.get(f"{clob_url.rstrip('/')}/book", params={"token_id": token_id})
    response.raise_for_status()
    try:
        data = response.json()
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        bids, asks = _levels(data.get("bids", [])), _levels(data.get("asks", []))
    except _Drop:
        return None
    book = TokenBook(0.01)
    book.bids = {p: s for p, s in bids if s > 0}
    book.asks = {p: s for p, s in asks if s > 0}
    book.valid = True
    return book.top()
