"""The batched data path of ``feeds.ws``: frames go from the read that carried them straight
to the feed (no ``recv()`` queue), so these tests pin what that path must still get right.

The server is the ``websockets`` library's own sans-I/O ``ServerProtocol`` over a raw asyncio
stream, so each test decides exactly which frames share one TCP write: frames packed behind
the handshake response, a burst much larger than one delivery slice, a fragmented message, a
server ping in the middle of data, invalid UTF-8, a handler that raises.  Trades are
synthetic (ids and prices made up for the test).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from feedfakes import trade_frame
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from core.clock import SystemClock
from feeds.binance import BinanceTradeFeed, Trade
from feeds.sanity import NOT_JSON
from feeds.ws import _SLICE, StreamingConnection, WsFeed

pytestmark = pytest.mark.server
CLOCK = SystemClock()


class Peer:
    """One accepted connection: queue frames with the protocol object, then flush them all
    in a single write (so they reach the client in as few reads as the kernel allows)."""

    def __init__(self, protocol: ServerProtocol, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.protocol = protocol
        self.reader = reader
        self.writer = writer
        self.received: list[Frame] = []

    async def flush(self) -> None:
        self.writer.write(b"".join(self.protocol.data_to_send()))
        await self.writer.drain()

    async def read_until(self, opcode: Opcode, within: float = 5.0) -> Frame:
        """Read client frames until one with ``opcode`` arrives (e.g. the pong to a ping)."""
        async with asyncio.timeout(within):
            while True:
                for frame in self.received:
                    if frame.opcode is opcode:
                        return frame
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("client closed")
                self.protocol.receive_data(data)
                self.received += [e for e in self.protocol.events_received()
                                  if isinstance(e, Frame)]


Script = Callable[[Peer], Awaitable[None]]


class PackingServer:
    """Answers each handshake with ``script(peer)``; the 101 response is queued, not sent, so
    the script's first frames share its write."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.sessions = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/ws/btcusdt@trade"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol = ServerProtocol()
        request: Request | None = None
        try:
            while request is None:
                data = await reader.read(65536)
                if not data:
                    return
                protocol.receive_data(data)
                for event in protocol.events_received():
                    if isinstance(event, Request):
                        request = event
            protocol.send_response(protocol.accept(request))
            self.sessions += 1
            await self.script(Peer(protocol, reader, writer))
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PackingServer]:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        try:
            yield self
        finally:
            self.server.close()


@contextlib.asynccontextmanager
async def feeding(run: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    task = asyncio.ensure_future(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_for(predicate: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.01)


def trades(first_id: int, n: int) -> list[bytes]:
    # Synthetic prices a cent apart: every one passes the spike check.
    return [trade_frame(first_id + i, 100_000.0 + i * 0.01).encode() for i in range(n)]


async def hold_open(peer: Peer) -> None:
    """Keep the session until the client closes it, answering its close like a server."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        await peer.read_until(Opcode.CLOSE, within=30.0)
        await peer.flush()  # the protocol object has queued the close echo


async def test_frames_sharing_the_handshake_write_are_delivered_in_order() -> None:
    async def script(peer: Peer) -> None:
        for frame in trades(1, 3):
            peer.protocol.send_text(frame)
        await peer.flush()  # response + 3 frames in one write
        await hold_open(peer)

    seen: list[Trade] = []
    async with PackingServer(script).running() as server:
        feed = BinanceTradeFeed(server.url, CLOCK, seen.append)
        async with feeding(feed.run):
            await wait_for(lambda: len(seen) == 3)
    assert [t.trade_id for t in seen] == [1, 2, 3]
    assert feed.counters.frames == 3
    assert feed.counters.accepted == 3
    assert feed.counters.connects == 1


async def test_burst_of_many_slices_arrives_whole_in_order_and_pings_are_answered() -> None:
    burst = 8 * _SLICE + 17
    pong: list[Frame] = []

    async def script(peer: Peer) -> None:
        await peer.flush()
        frames = trades(1, burst)
        for frame in frames[: burst // 2]:
            peer.protocol.send_text(frame)
        peer.protocol.send_ping(b"in-the-middle")
        for frame in frames[burst // 2:]:
            peer.protocol.send_text(frame)
        await peer.flush()
        pong.append(await peer.read_until(Opcode.PONG))
        await hold_open(peer)

    seen: list[Trade] = []
    async with PackingServer(script).running() as server:
        feed = BinanceTradeFeed(server.url, CLOCK, seen.append)
        async with feeding(feed.run):
            await wait_for(lambda: len(seen) == burst and bool(pong))
    assert [t.trade_id for t in seen] == list(range(1, burst + 1))
    assert pong[0].data == b"in-the-middle"
    assert feed.counters.dropped_total == 0
    assert feed.counters.connects == 1


async def test_fragmented_message_is_reassembled() -> None:
    whole = trades(1, 2)

    async def script(peer: Peer) -> None:
        await peer.flush()
        first = whole[0]
        peer.protocol.send_text(first[:20], fin=False)
        peer.protocol.send_continuation(first[20:50], fin=False)
        await peer.flush()  # the message is split across writes as well as frames
        peer.protocol.send_continuation(first[50:], fin=True)
        peer.protocol.send_text(whole[1])
        await peer.flush()
        await hold_open(peer)

    seen: list[Trade] = []
    async with PackingServer(script).running() as server:
        feed = BinanceTradeFeed(server.url, CLOCK, seen.append)
        async with feeding(feed.run):
            await wait_for(lambda: len(seen) == 2)
    assert [t.trade_id for t in seen] == [1, 2]
    assert feed.counters.frames == 2
    assert feed.counters.dropped_total == 0


@pytest.mark.parametrize("opcode", ["text", "binary"])
async def test_invalid_utf8_is_dropped_as_not_json_and_the_session_survives(opcode: str) -> None:
    async def script(peer: Peer) -> None:
        send = peer.protocol.send_text if opcode == "text" else peer.protocol.send_binary
        peer.protocol.send_text(b'{"n": 1}')
        send(b'{"n": "\xff\xfe"}')  # not UTF-8: a decoding feed drops it, whatever the opcode
        peer.protocol.send_text(b'{"n": 2}')
        await peer.flush()
        await hold_open(peer)

    seen: list[Any] = []

    def handler(frame: str | bytes) -> bool:
        assert isinstance(frame, str)  # decode=True: handlers get text
        seen.append(json.loads(frame)["n"])
        return True

    async with PackingServer(script).running() as server:
        ws = WsFeed("decoding", server.url, handler, clock=CLOCK)
        async with feeding(ws.run):
            await wait_for(lambda: len(seen) == 2)
            await asyncio.sleep(0.05)
    assert seen == [1, 2]
    assert ws.counters.dropped == {NOT_JSON: 1}
    assert ws.counters.frames == 3
    assert ws.counters.connects == 1


async def test_a_handler_error_ends_the_session_and_the_feed_reconnects() -> None:
    async def script(peer: Peer) -> None:
        peer.protocol.send_text(b"boom")
        await peer.flush()
        await hold_open(peer)

    calls: list[str | bytes] = []

    def handler(frame: str | bytes) -> bool:
        calls.append(frame)
        raise RuntimeError("handler bug")

    server = PackingServer(script)
    async with server.running():
        ws = WsFeed("buggy", server.url, handler, clock=CLOCK)
        async with feeding(ws.run):
            await wait_for(lambda: server.sessions >= 2, within=10.0)
    assert ws.counters.last_error is not None
    assert "handler bug" in ws.counters.last_error
    assert len(calls) >= 1
    assert ws.counters.disconnects >= 1


async def test_recv_is_not_the_data_path() -> None:
    async def script(peer: Peer) -> None:
        await peer.flush()
        await hold_open(peer)

    async with PackingServer(script).running() as server:
        from websockets.asyncio.client import connect

        async with connect(server.url, create_connection=StreamingConnection) as ws:
            with pytest.raises(RuntimeError, match="sink"):
                await ws.recv()
