"""Polymarket's authenticated realtime price channel (``wss://ws-live-v2.polymarket.com/ws``):
the Chainlink reference and its 60-second TWAP as :class:`ReferenceTick` records.

The SDK marks RTDS's crypto topics deprecated in favour of this channel (docs/venue.md); RTDS
stays for keyless use (``tools.polymarket.rtds``).  The protocol, as the official client
speaks it (polymarket-client 0.14, ``streams/realtime``):

* after connecting, ``{"op":"auth","auth":{"apiKey","secret","passphrase"},"rid":"1"}``; the
  venue answers ``{"op":"authed","rid":"1"}`` or ``{"op":"error","rid":"1","code":...}``;
* only then ``{"op":"subscribe","subscriptions":[{"channel":"price.crypto","filter":
  {"symbol":"btcusd",...}}, {"channel":"price.crypto.twap","filter":{"symbol":"btcusd",
  "window_seconds":60}}],"rid":"2"}``, acknowledged per channel (``subscribed`` or ``error``);
* each accepted subscription first sends its recent history (``snapshot: true``,
  ``payload.data[]``), then one update per observation;
* ``{"op":"ping"}`` every 30 s; any frame proves the connection alive.

Frames are parsed by the shared parser (``rtds.parse_frame``): a spot price whose
``payload.source`` is not Chainlink (the channel may relay Pyth) is not the settlement
reference and is dropped as ``wrong_source``.  A refused credential ends the feed with one
line naming the settings (retrying a bad key only burns the venue's auth attempts);
``auth_unavailable`` is the venue's own trouble and is retried like a drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from core.clock import Clock
from core.errors import UserError
from core.logs import get_logger
from feeds.sanity import NOT_JSON, UNKNOWN_EVENT, json_loads
from feeds.ws import Backoff, FeedCounters, WsFeed
from tools.polymarket.rtds import (
    VENUE_ERROR,
    ReferenceGate,
    ReferenceSource,
    ReferenceSymbols,
    ReferenceTick,
    parse_frame,
)

if TYPE_CHECKING:
    from core.settings import Settings

log = get_logger("updown.feeds.realtime")

CHANNEL_SPOT = "price.crypto"
CHANNEL_TWAP = "price.crypto.twap"
TWAP_WINDOW_S = 60
HEARTBEAT = '{"op":"ping"}'
# Error codes that mean the credentials themselves are refused: retrying cannot help.
AUTH_REFUSED = frozenset({"auth_invalid", "auth_expired", "auth_attempts", "auth_required"})
CREDENTIAL_SETTINGS = "POLYMARKET_API_KEY / POLYMARKET_API_SECRET / POLYMARKET_API_PASSPHRASE"


class RealtimeAuthError(UserError):
    """The realtime channel refused the configured API credentials."""


class RealtimeCredentials:
    """The CLOB API credentials the channel authenticates with (never printed).

    Deliberately not a dataclass: ``dataclasses.asdict`` of the endpoints that carry it must
    not turn the secrets into a plain dict that could be written or logged.
    """

    __slots__ = ("key", "passphrase", "secret")

    def __init__(self, key: str, secret: str, passphrase: str) -> None:
        self.key = key
        self.secret = secret
        self.passphrase = passphrase

    def __repr__(self) -> str:
        return "RealtimeCredentials(***)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RealtimeCredentials) and (
            self.key, self.secret, self.passphrase) == (other.key, other.secret,
                                                        other.passphrase)

    def __hash__(self) -> int:
        return hash((self.key, self.secret, self.passphrase))

    @classmethod
    def from_settings(cls, settings: Settings) -> RealtimeCredentials | None:
        """All three of key, secret and passphrase, or None (then RTDS is used)."""
        parts = [settings.polymarket_api_key, settings.polymarket_api_secret,
                 settings.polymarket_api_passphrase]
        values = [p.get_secret_value().strip() if p is not None else "" for p in parts]
        if not all(values):
            return None
        return cls(*values)


def auth_message(credentials: RealtimeCredentials, rid: str) -> str:
    return json.dumps({"op": "auth", "auth": {"apiKey": credentials.key,
                                              "secret": credentials.secret,
                                              "passphrase": credentials.passphrase},
                       "rid": rid}, separators=(",", ":"))


def channel_symbol(symbols: ReferenceSymbols) -> str:
    """This channel's name of the pair: ``btcusd`` where RTDS says ``btc/usd``."""
    return symbols.chainlink.replace("/", "").lower()


def subscription(channel: str, symbols: ReferenceSymbols, *, provider: bool = True
                 ) -> dict[str, Any]:
    """One channel's filter: the pair, the TWAP's 60 s window, and the Chainlink provider
    (a preference: the frames still say their actual source)."""
    price_filter: dict[str, Any] = {"symbol": channel_symbol(symbols)}
    if channel == CHANNEL_TWAP:
        price_filter["window_seconds"] = TWAP_WINDOW_S
    if provider:
        price_filter["provider"] = "chainlink"
    return {"channel": channel, "filter": price_filter}


def subscribe_message(symbols: ReferenceSymbols, rid: str,
                      channels: tuple[str, ...] = (CHANNEL_SPOT, CHANNEL_TWAP), *,
                      no_provider: frozenset[str] = frozenset()) -> str:
    return json.dumps({"op": "subscribe", "subscriptions": [
        subscription(c, symbols, provider=c not in no_provider) for c in channels],
        "rid": rid}, separators=(",", ":"))


class _SessionWs(WsFeed):
    """The shared connection loop, plus sending on the live session from a frame handler
    (the subscription must wait for the ``authed`` answer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sends: set[asyncio.Task[None]] = set()

    def send_soon(self, message: str) -> bool:
        ws = self._ws
        if ws is None:
            return False

        async def send() -> None:
            with contextlib.suppress(ConnectionClosed):  # the loop sees the drop itself
                await ws.send(message)

        task = asyncio.get_running_loop().create_task(send())
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)
        return True


class RealtimeFeed:
    """Authenticated realtime reference prices into ``on_tick`` (same surface as RtdsFeed)."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        on_tick: Callable[[ReferenceTick], None],
        credentials: RealtimeCredentials,
        *,
        symbols: ReferenceSymbols | None = None,
        heartbeat_interval_s: float = 30.0,
        stale_after_s: float = 5.0,
        backoff: Backoff | None = None,
        gate: ReferenceGate | None = None,
        name: str = "realtime",
    ) -> None:
        self.symbols = symbols or ReferenceSymbols()
        self.gate = gate or ReferenceGate(clock)
        self._on_tick = on_tick
        self._credentials = credentials
        self.counters = FeedCounters(name)
        self._rid = 0
        self._auth_rid: str | None = None
        # Set once the venue acknowledged both subscriptions (start-up waits for it).
        self.subscribed = asyncio.Event()
        self._acked: set[str] = set()
        # Channels whose provider preference the venue refused (bad_filter): asked again
        # without it, and their frames' source still decides.
        self._no_provider: set[str] = set()
        self.rejection: str | None = None
        self._rejected = asyncio.Event()
        # Last stamp delivered per source: a history replayed after a reconnect is known data,
        # not a fault, so its older points are skipped without counting them as drops.
        self._last_ts: dict[ReferenceSource, float] = {}
        self.ws = _SessionWs(
            name, url, self.handle, counters=self.counters,
            subscribe=self._on_session, heartbeat=HEARTBEAT,
            heartbeat_interval_s=heartbeat_interval_s, stale_after_s=stale_after_s,
            backoff=backoff, clock=clock,
        )

    def _next_rid(self) -> str:
        self._rid += 1
        return str(self._rid)

    def _on_session(self) -> list[str]:
        self._acked.clear()
        self._auth_rid = self._next_rid()
        return [auth_message(self._credentials, self._auth_rid)]

    def handle(self, frame: str | bytes) -> bool:
        try:
            data = json_loads(frame)
        except ValueError:
            self.counters.drop(NOT_JSON)
            return False
        if isinstance(data, dict) and "op" in data:
            self._control(data)
            return False
        parsed = parse_frame(frame, self.symbols)
        if parsed is None:
            self.counters.heartbeats += 1
            return False
        if isinstance(parsed, str):
            self.counters.drop(parsed)
            return False
        history = isinstance(data, dict) and data.get("snapshot") is True
        fresh = False
        for tick in parsed:
            last = self._last_ts.get(tick.source)
            if history and last is not None and tick.observed_ts <= last:
                self.counters.ignored += 1
                continue
            reason = self.gate.check(tick)
            if reason is not None:
                self.counters.drop(reason)
                continue
            self._last_ts[tick.source] = tick.observed_ts
            self.counters.accepted += 1
            self._on_tick(tick)
            fresh = True
        return fresh

    def _control(self, data: dict[str, Any]) -> None:
        op = str(data.get("op")).lower()
        if op == "authed":
            self.counters.heartbeats += 1
            self.ws.send_soon(subscribe_message(self.symbols, self._next_rid(),
                                                no_provider=frozenset(self._no_provider)))
        elif op == "subscribed":
            self.counters.heartbeats += 1
            self._acked.add(str(data.get("channel")))
            if {CHANNEL_SPOT, CHANNEL_TWAP} <= self._acked:
                self.subscribed.set()
        elif op == "pong":
            self.counters.heartbeats += 1
        elif op == "error":
            self.counters.drop(VENUE_ERROR)
            code = str(data.get("code"))
            log.warning("realtime_error_answer", code=code, channel=data.get("channel"))
            channel = data.get("channel")
            if (code == "bad_filter" and channel in (CHANNEL_SPOT, CHANNEL_TWAP)
                    and channel not in self._no_provider):
                self._no_provider.add(str(channel))
                self.ws.send_soon(subscribe_message(self.symbols, self._next_rid(),
                                                    (str(channel),),
                                                    no_provider=frozenset(self._no_provider)))
            elif code in AUTH_REFUSED:
                self.rejection = code
                self._rejected.set()
            elif code == "auth_unavailable":
                self.ws.recycle()  # the venue's auth is down for now: reconnect, try again
        else:
            self.counters.drop(UNKNOWN_EVENT)

    async def run(self) -> None:
        """Stream until cancelled; RealtimeAuthError once the credentials are refused."""
        loop = asyncio.ensure_future(self.ws.run())
        refused = asyncio.ensure_future(self._rejected.wait())
        try:
            await asyncio.wait({loop, refused}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (loop, refused):
                task.cancel()
            await asyncio.gather(loop, refused, return_exceptions=True)
        if loop.done() and not loop.cancelled():
            failure = loop.exception()
            if failure is not None:
                raise failure
        raise RealtimeAuthError(
            f"the realtime channel refused the API credentials ({self.rejection}): check "
            f"{CREDENTIAL_SETTINGS}")
