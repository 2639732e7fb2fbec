"""Polymarket RTDS: the Chainlink BTC/USD reference (what settles), its 60-second TWAP and the
Binance relay, parsed into :class:`ReferenceTick` records.

One connection carries three topics: ``crypto_prices_chainlink`` (about one tick a second),
``crypto_prices_twap_sixty`` (the TWAP the windows settle on since 2026-08-07; its
``full_accuracy_value`` is the exact E18 integer) and ``crypto_prices`` (Binance relay).  The
venue wants a text ``PING`` every 5 s, sent only after the subscription.  Frames are checked
per topic: wrong symbol, non-positive or non-finite value, observation stamps from the future,
repeated or older stamps and 10x spikes are dropped and counted by reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from core.clock import Clock
from core.logs import get_logger, redact
from feeds.sanity import (
    BAD_PRICE,
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

ReferenceSource = Literal["chainlink", "twap60", "binance_relay"]

TOPIC_CHAINLINK = "crypto_prices_chainlink"
TOPIC_TWAP = "crypto_prices_twap_sixty"
TOPIC_RELAY = "crypto_prices"
_SOURCES: dict[str, ReferenceSource] = {
    TOPIC_CHAINLINK: "chainlink", TOPIC_TWAP: "twap60", TOPIC_RELAY: "binance_relay",
}
log = get_logger("updown.feeds.rtds")

HEARTBEAT = "PING"
_HEARTBEAT_REPLIES = frozenset({"PONG", "pong", ""})
_E18 = Decimal(10) ** 18


@dataclass(frozen=True, slots=True)
class ReferenceSymbols:
    """How each topic names the asset (Chainlink ``btc/usd``, the relay ``btcusdt``)."""

    chainlink: str = "btc/usd"
    relay: str = "btcusdt"

    def for_source(self, source: ReferenceSource) -> str:
        return self.relay if source == "binance_relay" else self.chainlink


@dataclass(frozen=True, slots=True)
class ReferenceTick:
    """One reference observation; ``observed_ts`` is the oracle's own stamp (UTC seconds)."""

    source: ReferenceSource
    symbol: str
    value: float
    observed_ts: float
    # The exact E18 integer string the TWAP topic carries (None elsewhere).
    exact: str | None = None


def subscription_message(symbols: ReferenceSymbols = ReferenceSymbols()) -> str:
    """The one subscribe message for the three topics."""
    chainlink_filter = json.dumps({"symbol": symbols.chainlink}, separators=(",", ":"))
    return json.dumps({
        "action": "subscribe",
        "subscriptions": [
            {"topic": TOPIC_CHAINLINK, "type": "*", "filters": chainlink_filter},
            {"topic": TOPIC_TWAP, "type": "*", "filters": chainlink_filter},
            {"topic": TOPIC_RELAY, "type": "update", "filters": symbols.relay},
        ],
    })


# Drop reasons of this feed beyond the shared ones.
VENUE_ERROR = "venue_error"  # the venue answered an error (bad filter, auth, rate limit)
WRONG_SOURCE = "wrong_source"  # the authenticated channel relays another oracle (Pyth)
# How close the exact value and the display value must be to be the same number.
_AGREE_REL = 1e-6
# The authenticated channel (``wss://ws-live-v2.polymarket.com/ws``): channel -> source.
_V2_CHANNELS: dict[str, ReferenceSource] = {
    "price.crypto": "chainlink", "price.crypto.twap": "twap60",
}
_ACK_OPS = frozenset({"subscribed", "unsubscribed", "authed", "pong"})
_ERROR_KEYS = ("error", "errors", "statusCode", "code", "message")


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _exact(text: str, display: float | None) -> float | None:
    """``full_accuracy_value`` as a price.

    The wire uses two forms: the RTDS Chainlink topics send the raw 18-decimal integer
    ("65245091651786417500000" = 65245.0916...), the authenticated channel sends a plain
    decimal ("78803.761731790000000001").  A decimal point settles it; an integer is read as
    E18 unless the display ``value`` beside it says it is the plain number.  When the display
    value is there, the exact one must agree with it, else the frame is not trusted.
    """
    try:
        exact = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    if not exact.is_finite():
        return None
    plain = float(exact)
    decimal_form = any(c in text for c in ".eE")
    candidates = [plain] if decimal_form else [float(exact / _E18), plain]
    if display is None:
        return candidates[0]
    for value in candidates:
        if display != 0 and abs(value / display - 1.0) <= _AGREE_REL:
            return value
    return None


def _value(entry: dict[str, Any]) -> tuple[float, str | None] | None:
    display = _number(entry.get("value")) if "value" in entry else None
    if "value" in entry and display is None:
        return None
    exact = entry.get("full_accuracy_value")
    if isinstance(exact, str) and exact.strip():
        value = _exact(exact, display)
        return None if value is None else (value, exact)
    return None if display is None else (display, None)


def _is_error(data: dict[str, Any]) -> bool:
    op = data.get("op")
    if isinstance(op, str):
        return op.lower() == "error"
    return any(key in data for key in _ERROR_KEYS)


def _ticks(source: ReferenceSource, symbol: str, entries: Any) -> list[ReferenceTick] | str:
    if not isinstance(entries, list):
        return MISSING_FIELD
    ticks: list[ReferenceTick] = []
    for entry in entries:
        if not isinstance(entry, dict):
            return MISSING_FIELD
        ts = entry.get("timestamp")
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            return MISSING_FIELD
        if "value" not in entry and "full_accuracy_value" not in entry:
            return MISSING_FIELD
        parsed = _value(entry)
        if parsed is None or parsed[0] <= 0:
            return BAD_PRICE
        ticks.append(ReferenceTick(source, symbol, parsed[0], ts / 1000.0, parsed[1]))
    return ticks


def _parse_v2(data: dict[str, Any], symbols: ReferenceSymbols) -> list[ReferenceTick] | str:
    """A frame of the authenticated channel: ``{v, channel, seq, ts, snapshot, payload}``."""
    source = _V2_CHANNELS.get(str(data.get("channel")))
    payload = data.get("payload")
    if source is None:
        return UNKNOWN_EVENT
    if not isinstance(payload, dict):
        return MISSING_FIELD
    symbol = payload.get("symbol")
    if not isinstance(symbol, str):
        return MISSING_FIELD
    # This channel names pairs "btcusd" where RTDS says "btc/usd".
    if symbol.lower() != symbols.chainlink.replace("/", ""):
        return WRONG_SYMBOL
    oracle = payload.get("source")
    if oracle is not None and str(oracle).lower() != "chainlink":
        return WRONG_SOURCE  # a Pyth price is not the reference that settles
    if source == "twap60" and payload.get("window_seconds") != 60:
        return WRONG_SOURCE
    entries = payload.get("data") if "data" in payload else [payload]
    return _ticks(source, symbols.chainlink, entries)


def parse_frame(
    frame: str | bytes, symbols: ReferenceSymbols = ReferenceSymbols()
) -> list[ReferenceTick] | str | None:
    """Ticks in one frame, a drop reason, or None for a heartbeat reply / acknowledgement.

    A frame carries either one update (``payload{symbol, timestamp, value}``) or, right after
    subscribing, a batch (``payload{symbol, data: [{timestamp, value}, ...]}``).  An error
    answer is ``VENUE_ERROR``, never a heartbeat: it must be seen and counted.
    """
    if isinstance(frame, str) and frame.strip() in _HEARTBEAT_REPLIES:
        return None
    try:
        data = json_loads(frame)
    except ValueError:
        return NOT_JSON
    if not isinstance(data, dict):
        return NOT_JSON
    op = data.get("op")
    if op is not None:  # the authenticated channel's control answers
        if _is_error(data):
            return VENUE_ERROR
        return None if str(op).lower() in _ACK_OPS else UNKNOWN_EVENT
    if "channel" in data and "topic" not in data:
        return _parse_v2(data, symbols)
    topic = data.get("topic")
    payload = data.get("payload")
    if topic is None and payload is None:
        # Acknowledgements carry no prices; an error answer must not pass for one.
        return VENUE_ERROR if _is_error(data) else None
    if not isinstance(topic, str) or not isinstance(payload, dict):
        return MISSING_FIELD
    source = _SOURCES.get(topic)
    if source is None:
        return UNKNOWN_EVENT
    symbol = payload.get("symbol")
    if not isinstance(symbol, str):
        return MISSING_FIELD
    if symbol.lower() != symbols.for_source(source):
        return WRONG_SYMBOL
    entries = payload.get("data")
    return _ticks(source, symbol.lower(), [payload] if entries is None else entries)


class ReferenceGate:
    """Per-topic checks across frames: observation stamps strictly increasing and not from the
    future, no jump beyond ``max_jump`` from the topic's last accepted value."""

    def __init__(self, clock: Clock, *, max_future_s: float = 1.0, max_jump: float = 0.10,
                 reanchor_after: int = 10) -> None:
        self._clock = clock
        self.max_future_s = max_future_s
        self._last_ts: dict[ReferenceSource, float] = {}
        self._jumps = {source: JumpFilter(max_jump, reanchor_after)
                       for source in ("chainlink", "twap60", "binance_relay")}

    def check(self, tick: ReferenceTick) -> str | None:
        if tick.observed_ts > self._clock.now() + self.max_future_s:
            return FUTURE_TS
        last_ts = self._last_ts.get(tick.source)
        if last_ts is not None and tick.observed_ts <= last_ts:
            return DUPLICATE if tick.observed_ts == last_ts else OUT_OF_ORDER
        if not self._jumps[tick.source].admits(tick.value):
            return SPIKE
        self._last_ts[tick.source] = tick.observed_ts
        return None


def _short(frame: str | bytes) -> str:
    text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
    return redact(" ".join(text.split()))[:200]


class RtdsFeed:
    """RTDS reference prices into ``on_tick``, with the 5 s text heartbeat."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        on_tick: Callable[[ReferenceTick], None],
        *,
        symbols: ReferenceSymbols = ReferenceSymbols(),
        heartbeat_interval_s: float = 5.0,
        stale_after_s: float = 5.0,
        backoff: Backoff | None = None,
        gate: ReferenceGate | None = None,
        name: str = "rtds",
    ) -> None:
        self.symbols = symbols
        self.gate = gate or ReferenceGate(clock)
        self._on_tick = on_tick
        self.counters = FeedCounters(name)
        self.ws = WsFeed(
            name, url, self.handle, counters=self.counters,
            subscribe=lambda: [subscription_message(self.symbols)],
            heartbeat=HEARTBEAT, heartbeat_interval_s=heartbeat_interval_s,
            stale_after_s=stale_after_s, backoff=backoff, clock=clock,
        )

    def handle(self, frame: str | bytes) -> bool:
        parsed = parse_frame(frame, self.symbols)
        if parsed is None:
            self.counters.heartbeats += 1
            return False
        if isinstance(parsed, str):
            self.counters.drop(parsed)
            if parsed == VENUE_ERROR:
                log.warning("rtds_error_answer", frame=_short(frame))
            return False
        fresh = False
        for tick in parsed:
            reason = self.gate.check(tick)
            if reason is not None:
                self.counters.drop(reason)
                continue
            self.counters.accepted += 1
            self._on_tick(tick)
            fresh = True
        return fresh

    async def run(self) -> None:
        await self.ws.run()
