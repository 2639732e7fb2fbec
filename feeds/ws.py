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

Data frames do not go through ``recv()``.  The library's connection object stays in charge of
the handshake (TLS, proxies, 429/503 answers), protocol pings, pongs and the closing
handshake, but :class:`StreamingConnection` takes each data frame straight out of the
``data_received`` chunk it arrived in and hands the whole batch to the feed synchronously: no
future, queue or task switch per message, which at tens of thousands of frames a second was
most of the cost and, queued behind itself, most of the latency.

The common frame (unfragmented, unmasked text or binary, no reserved bits, within
``max_size``) does not even go through the library's generator-based frame parser: at a frame
boundary :class:`StreamingConnection` splits such frames out of the chunk itself.  Every other
byte (the handshake, control frames, fragmented messages, anything malformed, a frame cut by
the end of the read) still goes to the library, which answers, closes or rejects exactly as
before; the connection tracks frame lengths so it knows when the library's parser is back at
a frame boundary and the fast path may resume.
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
from websockets.client import ClientProtocol
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.protocol import Event, State
from websockets.typing import Data

from core.clock import Clock
from core.errors import UserError
from core.logs import get_logger
from feeds.sanity import NOT_JSON

log = get_logger("updown.feeds")

USER_AGENT = "updown/0.1 (+https://github.com/updown)"
# Longest Retry-After we obey; a larger value (or a garbled date) is treated as this.
MAX_RETRY_AFTER_S = 60.0
# Diagnostics kept per feed are bounded: memory stays flat however long the feed runs.
_HISTORY = 512
# Frames handed to a feed in one go; the rest of a large chunk (after a stall, say) waits
# for the next loop iteration with reading paused, so one burst cannot hold the event loop
# for more than a few milliseconds.
_SLICE = 256

class FeedConfigError(UserError):
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
FrameSink = Callable[[list[bytes]], None]

_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_OPEN = State.OPEN
# First header byte of the frames the fast path takes: FIN set, RSV1-3 clear, text or binary.
_FIN_TEXT, _FIN_BINARY = 0x80 | Opcode.TEXT.value, 0x80 | Opcode.BINARY.value
_END_OF_HEADERS = b"\r\n\r\n"
_NO_LIMIT = 2**64  # above any 64-bit frame length


def _frame_end(data: bytes, pos: int) -> int:
    """Where the frame starting at ``data[pos]`` ends (maybe beyond ``data``), or -1 when its
    header is not complete in ``data``.  Any frame, masked or not (RFC 6455 section 5.2)."""
    n = len(data)
    if pos + 2 > n:
        return -1
    second = data[pos + 1]
    length = second & 0x7F
    header = 6 if second & 0x80 else 2  # a masked frame carries a 4-byte key
    if length == 126:
        if pos + 4 > n:
            return -1
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        header += 2
    elif length == 127:
        if pos + 10 > n:
            return -1
        length = int.from_bytes(data[pos + 2:pos + 10], "big")
        header += 8
    return pos + header + length


def _size_limits(protocol: ClientProtocol) -> tuple[int | None, ...]:
    """The library's payload limits for an unfragmented frame.

    websockets 15 (the version the Polymarket SDK allows) has one limit, ``max_size``; 16+
    split it into ``max_message_size`` and ``max_fragment_size``.  Both are read so the fast
    path never accepts a frame the library would refuse, whichever version is installed.
    """
    if hasattr(protocol, "max_message_size"):
        return (getattr(protocol, "max_message_size", None),
                getattr(protocol, "max_fragment_size", None))
    return (getattr(protocol, "max_size", None),)


def _message_size(protocol: ClientProtocol) -> int | None:
    """Bytes of the fragmented message the library is inside, None at a message boundary
    (``current_size`` from websockets 16, ``cur_size`` before)."""
    size = getattr(protocol, "current_size", None)
    if size is None:
        size = getattr(protocol, "cur_size", None)
    return size if isinstance(size, int) else None


def split_frames(data: bytes, pos: int, max_size: int, out: list[bytes]) -> int:
    """Append to ``out`` the payloads of the complete plain data frames at ``data[pos:]``.

    A plain frame is what a server sends for a whole message: FIN set, RSV1-3 clear, opcode
    text or binary, not masked, payload at most ``max_size``.  Returns where the first byte
    sequence that is anything else starts (``len(data)`` when the chunk held only such frames):
    a control frame, a fragment, a masked or oversized frame, reserved bits, or a frame the
    chunk ends inside of.  Text payloads are not checked for UTF-8 here, nor by the library's
    frame parser: they reach the feed as bytes either way.
    """
    n = len(data)
    append = out.append
    while pos + 2 <= n:
        first = data[pos]
        if first != _FIN_TEXT and first != _FIN_BINARY:
            break
        length = data[pos + 1]  # the MASK bit must be clear: anything >= 128 is masked
        if length < 126:
            start = pos + 2
        elif length == 126:
            start = pos + 4
            if start > n:
                break
            length = data[pos + 2] << 8 | data[pos + 3]
        elif length == 127:
            start = pos + 10
            if start > n:
                break
            length = int.from_bytes(data[pos + 2:start], "big")
        else:
            break
        end = start + length
        if end > n or length > max_size:
            break
        append(data[start:end])
        pos = end
    return pos


class StreamingConnection(ClientConnection):
    """A ``ClientConnection`` that delivers data frames in batches instead of via ``recv()``.

    Every complete message parsed from one ``data_received`` chunk goes to the attached sink
    in a single call (at most ``_SLICE`` at a time).  Messages that arrive before a sink is
    attached (right behind the handshake response) are held and delivered on attach.
    ``recv()`` is not used on this connection; the library still answers pings, tracks pongs
    of its keepalive and runs the closing handshake.  An exception raised by the sink aborts
    the connection and is kept in :attr:`sink_error` for the feed loop to report.

    Plain data frames are split out of each chunk by :func:`split_frames` while the library's
    parser sits at a frame boundary; every other frame goes to the library whole, one at a
    time, and a frame cut by the end of a chunk goes to the library as far as it came, the
    next chunk's first bytes after it (``_lib_head`` / ``_lib_rest`` say how many).
    """

    def __init__(self, protocol: ClientProtocol, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        self._sink: FrameSink | None = None
        self._detached = False
        self._backlog: list[bytes] = []
        self._fragments: list[bytes] | None = None
        self._held = False  # reading paused by us until the backlog is delivered
        self._scheduled = False
        self.sink_error: Exception | None = None
        # Fast-path bookkeeping.  None until the HTTP response is complete; then True while
        # the library's parser position is tracked, False when the library owns every byte.
        self._fast: bool | None = None
        self._fast_max = _NO_LIMIT  # the library's payload limit for an unfragmented frame
        self._http_tail = b""  # last bytes of the response so far (its end may span reads)
        self._lib_head = b""  # start of a frame the library holds whose header is incomplete
        self._lib_rest = 0  # bytes the library still needs to finish the frame it is inside

    def attach(self, sink: FrameSink) -> None:
        self._sink = sink
        if self._backlog and not self._scheduled:
            self._deliver()

    def detach(self) -> None:
        """No more deliveries; frames still arriving (closing handshake) are discarded."""
        self._sink = None
        self._detached = True
        self._backlog = []
        self._fragments = None
        self._release()

    def process_event(self, event: Event) -> None:
        if self.response is None or not isinstance(event, Frame):
            super().process_event(event)  # the handshake response
            return
        opcode = event.opcode
        if opcode is _TEXT or opcode is _BINARY:
            if event.fin:
                self._backlog.append(bytes(event.data))
            else:  # the first fragment of a message split across frames
                self._fragments = [bytes(event.data)]
        elif opcode is _CONT:
            # The protocol object has already rejected a continuation without a start.
            fragments = self._fragments
            if fragments is not None:
                fragments.append(bytes(event.data))
                if event.fin:
                    self._backlog.append(b"".join(fragments))
                    self._fragments = None
        elif opcode is _PONG:
            self.acknowledge_pings(bytes(event.data))
        # PING and CLOSE: the protocol object has queued the pong / close echo already.

    def data_received(self, data: bytes) -> None:
        if self._fast is None:
            data = self._handshake_received(data)
        library = super().data_received
        protocol = self.protocol
        n = len(data)
        pos = 0
        while pos < n:
            if self._lib_head or self._lib_rest:
                pos = self._finish_library_frame(data, pos)
                continue
            if not self._fast or protocol.state is not _OPEN:
                library(data[pos:] if pos else data)  # closing, closed or untracked
                break
            if _message_size(protocol) is None:  # not inside a fragmented message
                pos = split_frames(data, pos, self._fast_max, self._backlog)
                if pos == n:
                    break
            # Anything else goes to the library whole, and the loop looks again after it.
            end = _frame_end(data, pos)
            if end < 0:
                self._lib_head = data[pos:]
                library(self._lib_head)
                break
            if end > n:
                self._lib_rest = end - n
                library(data[pos:] if pos else data)
                break
            library(data[pos:end])
            pos = end
        if self._backlog and not self._scheduled:
            self._deliver()

    def _handshake_received(self, data: bytes) -> bytes:
        """Give the library the HTTP response; return what follows it (frames), if anything.

        A 101 response has no body, so it ends at the first blank line: from there on the
        library's parser sits at a frame boundary.
        """
        tail = self._http_tail
        end = (tail + data).find(_END_OF_HEADERS) if tail else data.find(_END_OF_HEADERS)
        if end < 0:
            self._http_tail = (tail + data)[-3:]
            super().data_received(data)
            return b""
        cut = end + len(_END_OF_HEADERS) - len(tail)
        self._http_tail = b""
        super().data_received(data[:cut])
        protocol = self.protocol
        self._fast = (
            self.response is not None
            and protocol.state is _OPEN
            and not protocol.reader.buffer
            # permessage-deflate passes frames without RSV1 through untouched; other
            # extensions might not, so with them the library sees every frame.
            and all(isinstance(ext, PerMessageDeflate) for ext in protocol.extensions)
        )
        limits = [x for x in _size_limits(protocol) if x is not None]
        self._fast_max = min(limits) if limits else _NO_LIMIT
        return data[cut:]

    def _finish_library_frame(self, data: bytes, pos: int) -> int:
        """Give the library the next bytes of the frame it is inside; return where it ends."""
        head = self._lib_head
        if head:
            header = head + data[pos:pos + 14]  # a header is at most 14 bytes
            end = _frame_end(header, 0)
            if end < 0:  # still incomplete, so the whole rest of data is in ``header``
                self._lib_head = header
                super().data_received(data[pos:])
                return len(data)
            self._lib_head = b""
            self._lib_rest = end - len(head)
        stop = min(pos + self._lib_rest, len(data))
        self._lib_rest -= stop - pos
        super().data_received(data[pos:stop] if pos or stop < len(data) else data)
        return stop

    def _deliver(self) -> None:
        self._scheduled = False
        backlog = self._backlog
        sink = self._sink
        if sink is None:
            if self._detached:
                self._backlog = []
            elif len(backlog) >= _SLICE:
                self._hold()  # not attached yet: let the socket buffer absorb the rest
            return
        if len(backlog) > _SLICE:
            batch = backlog[:_SLICE]
            del backlog[:_SLICE]
        else:
            batch = backlog
            self._backlog = []
        try:
            sink(batch)
        except Exception as exc:
            self.sink_error = exc
            self._backlog = []
            self.transport.abort()
            return
        if self._backlog and not self.transport.is_closing():
            self._hold()
            self._scheduled = True
            self.loop.call_soon(self._deliver)
        else:
            self._release()

    def _hold(self) -> None:
        if not self._held:
            self._held = True
            self.transport.pause_reading()

    def _release(self) -> None:
        if self._held:
            self._held = False
            self.transport.resume_reading()

    async def recv(self, decode: bool | None = None) -> Data:  # type: ignore[override]
        raise RuntimeError("StreamingConnection delivers frames to its sink, not via recv()")


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
        batch_handler: Callable[[list[bytes]], bool] | None = None,
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
        # Optional: takes all frames of one read at once (undecoded) and returns True when
        # any carried accepted data; it must count frames it drops, like ``handler``.
        self._batch_handler = batch_handler
        # Set once the first session is subscribed; cleared never (startup checks read it).
        self.connected = asyncio.Event()
        self.consecutive_failures = 0
        self._ws: StreamingConnection | None = None
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
            max_queue=self._max_queue,  # bounds only recv()'s queue, which stays empty here
            user_agent_header=USER_AGENT,
            create_connection=StreamingConnection,
        ) as ws:
            assert isinstance(ws, StreamingConnection)
            return await self._stream(ws)

    async def _stream(self, ws: StreamingConnection) -> bool:
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
        try:
            # Frames queued behind the handshake are delivered here, the rest as they arrive.
            ws.attach(self._on_batch if self._batch_handler is not None
                      else self._on_frames_decoded if self._decode else self._on_frames)
            await ws.wait_closed()
        finally:
            ws.detach()
            self._ws = None
            self.counters.disconnects += 1
            if self._dropped_at is None:
                self._dropped_at = loop.time()
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task
        if ws.sink_error is not None:
            raise ws.sink_error  # a handler bug: run() logs it and reconnects
        closed = ws.protocol.close_exc
        if not isinstance(closed, ConnectionClosedOK):
            # A clean close by the venue (e.g. Binance's 24 h limit) is no error; the rest is.
            self.counters.last_error = _one_line(closed)
        return self._fresh_in_session

    def _on_batch(self, frames: list[bytes]) -> None:
        self.counters.frames += len(frames)
        if self._batch_handler is not None and self._batch_handler(frames):
            self._mark_fresh()

    def _on_frames(self, frames: list[bytes]) -> None:
        """One chunk's messages, in order: parse each, then stamp freshness once."""
        self.counters.frames += len(frames)
        handler = self.handler
        fresh = False
        for frame in frames:
            if handler(frame):
                fresh = True
        if fresh:
            self._mark_fresh()

    def _on_frames_decoded(self, frames: list[bytes]) -> None:
        counters = self.counters
        counters.frames += len(frames)
        handler = self.handler
        fresh = False
        for frame in frames:
            try:
                text = frame.decode()
            except UnicodeDecodeError:
                counters.drop(NOT_JSON)
                continue
            if handler(text):
                fresh = True
        if fresh:
            self._mark_fresh()

    def _mark_fresh(self) -> None:
        self._last_data = now = asyncio.get_running_loop().time()
        if not self._fresh_in_session:
            self._fresh_in_session = True
            if self._dropped_at is not None:
                self.counters.recovery_s.append(now - self._dropped_at)
                self._dropped_at = None

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
