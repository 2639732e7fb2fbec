"""One venue websocket kept alive: subscribe, heartbeat, staleness watchdog, capped reconnect.

This module owns the connection loop the Binance, RTDS and CLOB market feeds share.  The
``websockets`` library reconnects by itself, but its backoff can wait many seconds, a 429 at
handshake ends its loop, and a server that stops sending data while still answering pings
looks healthy forever.  :class:`WsFeed` therefore runs its own loop:

* connect, send the subscription **first**, and only then start the text heartbeat (Polymarket
  drops a ``PING`` that arrives before the subscription);
* a watchdog recycles the connection when no *accepted* data arrived for ``stale_after_s``
  (heartbeat replies and garbage do not count as data);
* reconnect at once after a session that delivered data; after failed attempts wait
  ``Backoff`` (1 s, then 2 s, capped at 2 s: never more than one connect per second);
* a handshake answered 429/503 waits at least its ``Retry-After`` and keeps trying.

Timers (backoff, heartbeat, watchdog) run on the event loop's monotonic clock
(``loop.time()``): they measure intervals and never stamp an observation, so they do not
touch the wall clock that "time is an argument" reserves for the injected ``Clock``.
Frame parsing belongs to the caller's ``handler``: it returns True for fresh data and counts
every dropped frame by reason in the shared :class:`FeedCounters`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from agent.clock import Clock
from agent.logs import get_logger

log = get_logger("updown.feeds")

USER_AGENT = "updown/0.1 (+https://github.com/updown)"
# Longest Retry-After we obey; a larger value (or a garbled date) is treated as this.
MAX_RETRY_AFTER_S = 60.0
# Diagnostics kept per feed are bounded: memory stays flat however long the feed runs.
_HISTORY = 512
# Frames handled before the reader yields to the other tasks (a few milliseconds of work).
_YIELD_EVERY = 64

class FeedConfigError(Exception):
    """The endpoint cannot work at all (malformed URL): retrying would not help."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before a reconnect attempt, by how many attempts in a row have failed.

    No jitter: there is one connection per feed per process, so there is no herd to spread.
    """

    first_s: float = 1.0
    cap_s: float = 2.0
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        """0 right after a healthy session dropped; then first_s, growing to cap_s."""
        if failures <= 0:
            return 0.0
        return min(self.cap_s, self.first_s * self.factor ** (failures - 1))


class FeedCounters:
    """What one feed has seen: frames, accepted records, drops by reason, connection events."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.frames = 0
        self.accepted = 0
        self.heartbeats = 0
        self.ignored = 0
        self.dropped: Counter[str] = Counter()
        self.connect_attempts = 0
        self.connects = 0
        self.disconnects = 0
        self.watchdog_fires = 0
        self.handshake_rejections: Counter[int] = Counter()
        self.last_error: str | None = None
        # Loop-time diagnostics (bounded): when each attempt started, how long each drop took
        # to yield fresh data again, and how late after the last data each watchdog fired.
        self.attempt_times: deque[float] = deque(maxlen=_HISTORY)
        self.recovery_s: deque[float] = deque(maxlen=_HISTORY)
        self.watchdog_lag_s: deque[float] = deque(maxlen=_HISTORY)

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "accepted": self.accepted,
            "dropped": dict(sorted(self.dropped.items())),
            "heartbeats": self.heartbeats,
            "connects": self.connects,
            "reconnects": max(0, self.connects - 1),
            "connect_attempts": self.connect_attempts,
            "watchdog_fires": self.watchdog_fires,
            "handshake_rejections": {str(k): v for k, v in self.handshake_rejections.items()},
            "last_error": self.last_error,
        }


def public_url(url: str) -> str:
    """The URL without user:password or query (what may appear in logs and errors)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return url.split("?", 1)[0].rsplit("@", 1)[-1]
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def retry_after_s(value: str | None, clock: Clock | None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or HTTP-date), bounded."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return MAX_RETRY_AFTER_S
        if clock is None or when.tzinfo is None:
            return MAX_RETRY_AFTER_S
        seconds = when.timestamp() - clock.now()
    if seconds != seconds:  # NaN
        return MAX_RETRY_AFTER_S
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


FrameHandler = Callable[[str | bytes], bool]


class WsFeed:
    """Keeps one websocket subscribed and fresh until cancelled.

    ``handler(frame)`` parses one frame and returns True when it carried accepted data (this
    is what feeds the watchdog).  ``subscribe()`` returns the messages sent right after each
    connect; ``on_connect()`` runs before them (e.g. to mark a book as awaiting its snapshot).
    """

    def __init__(
        self,
        name: str,
        url: str,
        handler: FrameHandler,
        *,
        counters: FeedCounters | None = None,
        subscribe: Callable[[], Sequence[str]] | None = None,
        on_connect: Callable[[], None] | None = None,
        heartbeat: str | None = None,
        heartbeat_interval_s: float | None = None,
        stale_after_s: float = 2.0,
        backoff: Backoff | None = None,
        open_timeout_s: float = 5.0,
        clock: Clock | None = None,
        max_queue: int = 1024,
        decode: bool = True,
    ) -> None:
        if stale_after_s <= 0:
            raise ValueError(f"stale_after_s must be > 0, got {stale_after_s}")
        if heartbeat is not None and not (heartbeat_interval_s and heartbeat_interval_s > 0):
            raise ValueError("a heartbeat needs heartbeat_interval_s > 0")
        self.name = name
        self.url = url
        self.handler = handler
        self.counters = counters or FeedCounters(name)
        self._subscribe = subscribe
        self._on_connect = on_connect
        self.heartbeat = heartbeat
        self.heartbeat_interval_s = heartbeat_interval_s
        self.stale_after_s = stale_after_s
        self.backoff = backoff or Backoff()
        self.open_timeout_s = open_timeout_s
        self._clock = clock
        self._max_queue = max_queue
        # False: text frames reach the handler as UTF-8 bytes (JSON parsers take them as is;
        # skipping the decode matters at tens of thousands of frames a second).
        self._decode = decode
        # Set once the first session is subscribed; cleared never (startup checks read it).
        self.connected = asyncio.Event()
        self.consecutive_failures = 0
        self._ws: ClientConnection | None = None
        self._last_data = 0.0
        self._dropped_at: float | None = None
        self._recycle_requested = False
        self._fresh_in_session = False

    @property
    def is_connected(self) -> bool:
        return self._ws is not None

    def recycle(self) -> None:
        """Drop the connection on purpose; the loop reconnects (and resubscribes) at once."""
        ws = self._ws
        if ws is not None:
            self._recycle_requested = True
            ws.transport.abort()

    async def run(self) -> None:
        """Connect, stream, reconnect: forever, until cancelled."""
        loop = asyncio.get_running_loop()
        retry_after: float | None = None
        while True:
            delay = 0.0 if self._recycle_requested else self.backoff.delay(
                self.consecutive_failures)
            if retry_after is not None:
                delay = max(delay, retry_after)
            self._recycle_requested = False
            retry_after = None
            if delay > 0:
                await asyncio.sleep(delay)
            self.counters.connect_attempts += 1
            self.counters.attempt_times.append(loop.time())
            try:
                healthy = await self._connect_and_stream()
            except InvalidStatus as exc:
                status = exc.response.status_code
                self.counters.handshake_rejections[status] += 1
                self._failed(f"HTTP {status} at handshake")
                if status in (429, 503):
                    retry_after = retry_after_s(exc.response.headers.get("Retry-After"),
                                                self._clock)
            except InvalidURI as exc:
                raise FeedConfigError(
                    f"{self.name}: invalid URL {public_url(self.url)!r}: {exc}") from None
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as exc:
                # Every handshake/transport failure means the same thing: try again later.
                self._failed(_one_line(exc))
            except Exception as exc:
                # A bug in a handler must not end the feed: say so loudly and reconnect.
                log.error("feed_session_error", feed=self.name, error=_one_line(exc),
                          exc_info=True)
                self._failed(_one_line(exc))
            else:
                self.consecutive_failures = 0 if healthy else self.consecutive_failures + 1

    def _failed(self, reason: str) -> None:
        self.consecutive_failures += 1
        self.counters.last_error = reason
        # Before the first connection the caller's start-up check reports the failure itself.
        if not self.connected.is_set() and self.consecutive_failures < 5:
            return
        if self.consecutive_failures in (1, 5) or self.consecutive_failures % 30 == 0:
            log.warning("feed_connect_failed", feed=self.name, url=public_url(self.url),
                        error=reason,
                        failures=self.consecutive_failures)

    async def _connect_and_stream(self) -> bool:
        """One session; True when it delivered fresh data (so the next attempt is immediate)."""
        async with connect(
            self.url,
            open_timeout=self.open_timeout_s,
            # Protocol pings detect a dead TCP path; the watchdog detects a live but silent one.
            ping_interval=20,
            ping_timeout=20,
            close_timeout=1,
            max_queue=self._max_queue,
            user_agent_header=USER_AGENT,
        ) as ws:
            return await self._stream(ws)

    async def _stream(self, ws: ClientConnection) -> bool:
        loop = asyncio.get_running_loop()
        if self._on_connect is not None:
            self._on_connect()
        if self._subscribe is not None:
            for message in self._subscribe():
                await ws.send(message)
        self._ws = ws
        self.counters.connects += 1
        self.connected.set()
        self._last_data = loop.time()
        self._fresh_in_session = False
        if self.counters.connects > 1:
            log.info("feed_reconnected", feed=self.name, connects=self.counters.connects)
        helpers = [asyncio.create_task(self._watchdog(ws))]
        if self.heartbeat is not None:
            helpers.append(asyncio.create_task(self._heartbeat(ws)))
        handler = self.handler
        counters = self.counters
        recv = ws.recv
        decode = self._decode
        budget = _YIELD_EVERY
        try:
            while True:
                frame = await recv(decode)
                counters.frames += 1
                budget -= 1
                if not budget:
                    # recv() returns queued frames without suspending: under a burst this loop
                    # would hold the event loop until the queue drains; let others run.
                    budget = _YIELD_EVERY
                    await asyncio.sleep(0)
                if handler(frame):
                    self._last_data = now = loop.time()
                    if not self._fresh_in_session:
                        self._fresh_in_session = True
                        if self._dropped_at is not None:
                            counters.recovery_s.append(now - self._dropped_at)
                            self._dropped_at = None
        except ConnectionClosedOK:
            pass  # the venue closed cleanly (e.g. Binance's 24 h limit): reconnect at once
        except ConnectionClosed as exc:
            counters.last_error = _one_line(exc)
        finally:
            self._ws = None
            counters.disconnects += 1
            if self._dropped_at is None:
                self._dropped_at = loop.time()
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task
        return self._fresh_in_session

    async def _watchdog(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            remaining = self._last_data + self.stale_after_s - loop.time()
            if remaining <= 0:
                lag = loop.time() - self._last_data
                self.counters.watchdog_fires += 1
                self.counters.watchdog_lag_s.append(lag)
                self.counters.last_error = f"no data for {lag:.1f}s (watchdog)"
                log.warning("feed_stale", feed=self.name, silent_s=round(lag, 3))
                # Abort, not close: a stalled peer may never answer the closing handshake.
                ws.transport.abort()
                return
            await asyncio.sleep(remaining)

    async def _heartbeat(self, ws: ClientConnection) -> None:
        message, interval = self.heartbeat, self.heartbeat_interval_s
        if message is None or interval is None:
            return
        while True:
            await asyncio.sleep(interval)
            await ws.send(message)
