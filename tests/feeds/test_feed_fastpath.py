"""The fast path of ``StreamingConnection.data_received``: plain data frames split out of the
read without the library's frame parser, everything else handed to the library.

Two kinds of test.  The first drives ``data_received`` directly with chunks cut at chosen
byte offsets (a stub transport records what the client writes back) and checks the outcome
against an oracle: the library's own ``ClientProtocol`` fed the same bytes in one go.  Data
payloads, the frames written back (pongs, close), the final state and the parser's error must
all be the same.  The server bytes come from the library's real ``ServerProtocol`` (plus a few
hand-made frames a conforming server would never send).  The second kind runs whole feeds
against ``PackingServer`` from ``test_feed_stream`` over loopback TCP.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from feedfakes import trade_frame
from test_feed_stream import PackingServer, Peer, feeding, hold_open, wait_for
from websockets.client import ClientProtocol
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import ExtensionName
from websockets.uri import parse_uri

from core.clock import SystemClock
from feeds.binance import BinanceTradeFeed, Trade
from feeds.sanity import NOT_JSON
from feeds.ws import _SLICE, StreamingConnection, WsFeed, split_frames

CLOCK = SystemClock()
URI = "ws://127.0.0.1/ws/btcusdt@trade"


# --- the byte-exact harness -----------------------------------------------------------------


class StubTransport(asyncio.Transport):
    """Records writes; reading can be paused like a socket transport's."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.eof_written = False
        self.closing = False
        self.paused = False

    def write(self, data: Any) -> None:
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


@dataclass
class Outcome:
    """What the client made of the server's bytes."""

    messages: list[bytes]
    replies: list[tuple[Opcode, bytes]]  # frames the client wrote back (pong, close)
    state: State
    error: str | None  # the parser's exception, type and message

    @staticmethod
    def replies_in(written: bytes) -> list[tuple[Opcode, bytes]]:
        server = ServerProtocol(state=State.OPEN)
        server.receive_data(written)
        return [(e.opcode, bytes(e.data)) for e in server.events_received()
                if isinstance(e, Frame)]


def _error(protocol: ClientProtocol) -> str | None:
    exc = protocol.parser_exc
    return None if exc is None else f"{type(exc).__name__}: {exc}"


def reference(frames: bytes, max_size: int = 2**20) -> Outcome:
    """The library alone: a ClientProtocol past its handshake, fed everything at once."""
    protocol = ClientProtocol(parse_uri(URI), state=State.OPEN, max_size=max_size)
    protocol.receive_data(frames)
    messages: list[bytes] = []
    parts: list[bytes] = []
    for event in protocol.events_received():
        assert isinstance(event, Frame)
        if event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            parts.append(bytes(event.data))
            if event.fin:
                messages.append(b"".join(parts))
                parts = []
    written = b"".join(protocol.data_to_send())
    return Outcome(messages, Outcome.replies_in(written), protocol.state, _error(protocol))


class Client:
    """A StreamingConnection past a real handshake with a ServerProtocol; the test calls
    ``data_received`` itself, so it decides exactly where each read ends."""

    def __init__(self, max_size: int = 2**20, *, attach: bool = True,
                 extension: Extension | None = None, deflate: bool = False) -> None:
        protocol = ClientProtocol(
            parse_uri(URI), max_size=max_size,
            extensions=[ClientPerMessageDeflateFactory()] if deflate else None)
        # Bytes the library's parser is given: the fast path keeps plain frames from it.
        self.library_bytes = 0
        receive_data = protocol.receive_data

        def spy(data: bytes | bytearray) -> None:
            self.library_bytes += len(data)
            receive_data(data)

        protocol.receive_data = spy  # type: ignore[method-assign]
        if extension is not None:
            protocol.process_extensions = lambda headers: [extension]  # type: ignore[method-assign]
        self.conn = StreamingConnection(protocol, ping_interval=None, ping_timeout=None)
        self.transport = StubTransport()
        self.conn.connection_made(self.transport)
        protocol.send_request(protocol.connect())
        self.server = ServerProtocol(
            extensions=[ServerPerMessageDeflateFactory()] if deflate else None)
        self.server.receive_data(b"".join(protocol.data_to_send()))
        (request,) = self.server.events_received()
        self.server.send_response(self.server.accept(request))  # type: ignore[arg-type]
        self.response = b"".join(self.server.data_to_send())
        self.delivered: list[bytes] = []
        if attach:
            self.conn.attach(self.delivered.extend)

    def feed(self, chunks: Sequence[bytes]) -> Outcome:
        for chunk in chunks:
            if chunk:
                self.conn.data_received(chunk)
        protocol = self.conn.protocol
        return Outcome(list(self.delivered), Outcome.replies_in(bytes(self.transport.written)),
                       protocol.state, _error(protocol))


def frames_of(build: Callable[[ServerProtocol], None]) -> bytes:
    """The bytes a real ServerProtocol writes for ``build(server)``."""
    server = ServerProtocol(state=State.OPEN)
    build(server)
    return b"".join(server.data_to_send())


def text(payload: bytes, *, length_bytes: int = 0, first: int = 0x81) -> bytes:
    """A hand-made unmasked frame: 7-bit length, or forced 16-bit (2) / 64-bit (8) length."""
    n = len(payload)
    if length_bytes == 8:
        return bytes([first, 127]) + struct.pack("!Q", n) + payload
    if length_bytes == 2 or n >= 126:
        return bytes([first, 126]) + struct.pack("!H", n) + payload
    return bytes([first, n]) + payload


def masked(payload: bytes) -> bytes:
    return Frame(Opcode.TEXT, payload).serialize(mask=True, extensions=[])


def frame_spans(stream: bytes, max_size: int) -> list[tuple[int, int, bool]]:
    """(start, end, plain) of each frame in a well-formed stream; plain: what the fast path
    may take (FIN, no RSV bits, text/binary, unmasked, within max_size)."""
    spans = []
    pos = 0
    while pos < len(stream):
        first, second = stream[pos], stream[pos + 1]
        length, header = second & 0x7F, 2
        if length == 126:
            length, header = struct.unpack_from("!H", stream, pos + 2)[0], 4
        elif length == 127:
            length, header = struct.unpack_from("!Q", stream, pos + 2)[0], 10
        if second & 0x80:
            header += 4
        end = pos + header + length
        spans.append((pos, end, first in (0x81, 0x82) and second < 0x80 and length <= max_size))
        pos = end
    return spans


def check_every_split(frames: bytes, max_size: int = 2**20,
                      offsets: Sequence[int] | None = None, *, clean: bool = True) -> Outcome:
    """Cut ``frames`` in two at every offset (the first read also carrying the handshake
    response) and require the oracle's outcome each time; returns it.

    ``clean`` (no protocol error or close in ``frames``): also require that the library got
    exactly the frames that are not plain, plus the plain frame the cut falls inside of.
    """
    expected = reference(frames, max_size)
    spans = frame_spans(frames, max_size) if clean else []
    for cut in range(len(frames) + 1) if offsets is None else offsets:
        client = Client(max_size)
        got = client.feed([client.response + frames[:cut], frames[cut:]])
        assert got == expected, f"split at byte {cut}"
        if clean:
            owed = sum(end - start for start, end, plain in spans
                       if not plain or start < cut < end)
            assert client.library_bytes - len(client.response) == owed, f"split at byte {cut}"
    return expected


# A payload made of frames: were the parser position ever lost, the fast path would take
# these for messages (and the oracle comparison would fail).
DECOY = b"".join(text(b"decoy %d" % i) for i in range(20))


def mixed_stream() -> bytes:
    """Short and 16-bit frames, a forced 64-bit length, a ping and a pong between data."""
    def build(server: ServerProtocol) -> None:
        server.send_text(DECOY[:100])
        server.send_binary(DECOY + bytes(range(256)))  # 16-bit length
        server.send_ping(DECOY[:120])
        server.send_text(b'{"n": 2}')
        server.send_pong(b"unsolicited")
        server.send_text(b"")  # empty payload
    return frames_of(build) + text(DECOY[:60], length_bytes=8) + text(b'{"n": 4}')


# --- the splitter itself ----------------------------------------------------------------------


def test_split_frames_takes_plain_frames_and_stops_at_anything_else() -> None:
    plain = text(b"a") + text(b"b" * 200) + text(b"c", length_bytes=8) + text(b"d", first=0x82)
    out: list[bytes] = []
    assert split_frames(plain, 0, 2**20, out) == len(plain)
    assert out == [b"a", b"b" * 200, b"c", b"d"]
    for stopper in (
        frames_of(lambda s: s.send_ping(b"x")),
        frames_of(lambda s: s.send_close(1000)),
        frames_of(lambda s: s.send_text(b"part", fin=False)),
        text(b"part", first=0x80),
        text(b"rsv1", first=0xC1), text(b"rsv2", first=0xA1), text(b"rsv3", first=0x91),
        masked(b"masked"),
        text(b"x" * 201),  # above max_size below
        text(b"truncated")[:-1],
        text(b"x" * 300)[:3],  # inside the 16-bit length
        text(b"x", length_bytes=8)[:9],  # inside the 64-bit length
        b"\x81",  # one header byte
    ):
        out = []
        assert split_frames(plain + stopper, 0, 200, out) == len(plain), stopper
        assert out == [b"a", b"b" * 200, b"c", b"d"]


def test_split_frames_respects_max_size_exactly() -> None:
    out: list[bytes] = []
    frame = text(b"x" * 10)
    assert split_frames(frame, 0, 10, out) == len(frame)
    assert split_frames(frame, 0, 9, out) == 0
    assert out == [b"x" * 10]


# --- byte-exact equivalence with the library ------------------------------------------------


async def test_every_split_of_mixed_frames_matches_the_library() -> None:
    expected = check_every_split(mixed_stream())
    assert expected.messages == [DECOY[:100], DECOY + bytes(range(256)), b'{"n": 2}', b"",
                                 DECOY[:60], b'{"n": 4}']
    assert expected.replies == [(Opcode.PONG, DECOY[:120])]
    assert expected.state is State.OPEN
    assert expected.error is None


async def test_a_64_bit_length_frame_split_in_its_header_length_and_payload() -> None:
    big = DECOY * (70_000 // len(DECOY) + 1)
    stream = frames_of(lambda s: (s.send_binary(big), s.send_text(b"after")))
    assert stream[1] == 127  # the library's own 64-bit length encoding
    offsets = [*range(0, 16), 1000, 65_535, 65_536, 69_999, len(stream) - 8, len(stream) - 1]
    expected = check_every_split(stream, offsets=offsets)
    assert expected.messages == [big, b"after"]


async def test_random_many_chunk_splits_and_one_byte_reads_match_the_library() -> None:
    stream = mixed_stream() + frames_of(lambda s: (
        s.send_text(b"frag-", fin=False), s.send_ping(b"mid-message"),
        s.send_continuation(DECOY, fin=True), s.send_text(b"tail" * 40)))
    expected = reference(stream)
    assert expected.messages[-2:] == [b"frag-" + DECOY, b"tail" * 40]
    rng = random.Random(6455)
    for trial in range(300):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 40)))
        bounds = [0, *cuts, len(stream)]
        chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
        client = Client()
        assert client.feed([client.response, *chunks]) == expected, f"trial {trial}: {cuts}"
    client = Client()
    assert client.feed([client.response] + [stream[i:i + 1] for i in range(len(stream))]) \
        == expected


async def test_the_handshake_response_split_anywhere_hands_over_at_its_end() -> None:
    frames = text(b"first") + text(DECOY)
    for offset in range(80):
        client = Client()
        data = client.response + frames
        cut = len(client.response) - 40 + offset  # from inside the headers into the frames
        got = client.feed([data[:cut], data[cut:]])
        assert got.messages == [b"first", DECOY], cut
        if cut <= len(client.response):  # the frames arrived whole after the response
            assert client.library_bytes == len(client.response), cut
    client = Client()
    data = client.response + frames
    assert client.feed([data[i:i + 1] for i in range(len(data))]).messages == [b"first", DECOY]


async def test_a_fragmented_message_after_fast_frames_matches_the_library() -> None:
    stream = frames_of(lambda s: (
        s.send_text(b"one"), s.send_text(b"two"),
        s.send_text(b"thr", fin=False), s.send_continuation(DECOY, fin=False),
        s.send_continuation(b"e", fin=True), s.send_text(b"four")))
    expected = check_every_split(stream)
    assert expected.messages == [b"one", b"two", b"thr" + DECOY + b"e", b"four"]


@pytest.mark.parametrize(("bad", "error"), [
    (masked(b"masked"), "ProtocolError: incorrect masking"),
    (text(b"rsv1", first=0xC1), "ProtocolError: reserved bits must be 0"),
    (text(b"rsv2", first=0xA1), "ProtocolError: reserved bits must be 0"),
    (text(b"x" * 200), "PayloadTooBig"),
    (bytes([0x83, 0]), "ProtocolError: invalid opcode"),
    (text(b"orphan", first=0x80),
     "ProtocolError: unexpected continuation frame"),
    # A whole frame where the fragmented message must go on: only the library can tell.
    (text(b"unfinished", first=0x01) + text(b"whole"),
     "ProtocolError: expected a continuation frame"),
])
async def test_protocol_errors_are_the_librarys(bad: bytes, error: str) -> None:
    stream = text(b"before") + bad + text(b"after")
    expected = check_every_split(stream, max_size=100, clean=False)
    assert expected.messages == [b"before"]
    assert expected.error is not None
    assert expected.error.startswith(error)
    assert expected.state is State.CLOSING
    assert [op for op, _ in expected.replies] == [Opcode.CLOSE]


async def test_a_close_frame_in_the_middle_of_a_read_matches_the_library() -> None:
    stream = frames_of(lambda s: (s.send_text(b"a"), s.send_close(1000, "bye")))
    stream += text(b"ignored")  # behind the close: discarded
    expected = check_every_split(stream, clean=False)
    assert expected.messages == [b"a"]
    assert expected.replies == [(Opcode.CLOSE, b"\x03\xe8bye")]
    assert expected.state is State.CLOSING
    assert expected.error is None


async def test_eof_inside_a_frame_is_the_librarys_abnormal_closure() -> None:
    stream = text(b"whole") + text(b"cut short")
    for cut in range(len(text(b"whole")) + 1, len(stream)):
        client = Client()
        client.feed([client.response + stream[:cut]])
        client.conn.eof_received()
        assert client.delivered == [b"whole"]
        assert client.conn.protocol.state is State.CLOSED
        assert isinstance(client.conn.protocol.parser_exc, EOFError), cut


async def test_frames_before_attach_are_held_and_delivered_a_slice_at_a_time() -> None:
    client = Client(attach=False)
    batches: list[list[bytes]] = []
    # Not attached yet: a full slice in one read pauses reading and waits for the sink.
    burst = b"".join(text(b"%d" % i) for i in range(3 * _SLICE))
    client.conn.data_received(client.response + burst)
    assert client.transport.paused
    assert client.conn._backlog[:2] == [b"0", b"1"]
    client.conn.attach(batches.append)
    assert [len(b) for b in batches] == [_SLICE]  # the rest waits for the next iteration
    assert client.transport.paused
    await wait_for(lambda: sum(map(len, batches)) == 3 * _SLICE)
    assert [int(f) for b in batches for f in b] == list(range(3 * _SLICE))
    assert not client.transport.paused


async def test_detach_discards_later_frames() -> None:
    client = Client()
    client.conn.data_received(client.response + text(b"kept"))
    client.conn.detach()
    client.conn.data_received(text(b"dropped") + text(b"also dropped"))
    assert client.delivered == [b"kept"]
    assert client.conn._backlog == []


async def test_held_slices_are_delivered_in_order_on_later_iterations() -> None:
    client = Client()
    batches: list[list[bytes]] = []
    client.conn.attach(batches.append)
    client.conn.data_received(client.response)
    burst = b"".join(text(b"%d" % i) for i in range(2 * _SLICE + 5))
    client.conn.data_received(burst)
    assert [len(b) for b in batches] == [_SLICE]
    assert client.transport.paused
    await wait_for(lambda: sum(map(len, batches)) == 2 * _SLICE + 5)
    assert [len(b) for b in batches] == [_SLICE, _SLICE, 5]
    assert [int(f) for b in batches for f in b] == list(range(2 * _SLICE + 5))
    assert not client.transport.paused


async def test_a_sink_error_aborts_the_connection() -> None:
    client = Client()

    def sink(frames: list[bytes]) -> None:
        raise ValueError("sink bug")

    client.conn.attach(sink)
    client.conn.data_received(client.response + text(b"x"))
    assert isinstance(client.conn.sink_error, ValueError)
    assert client.transport.closing


class Passthrough(Extension):
    """An extension the fast path knows nothing about: it counts the frames it decodes."""

    name = ExtensionName("x-passthrough")

    def __init__(self) -> None:
        self.decoded = 0

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        self.decoded += 1
        return frame

    def encode(self, frame: Frame) -> Frame:
        return frame


async def test_with_permessage_deflate_compressed_frames_go_to_the_library() -> None:
    originals = [b'{"compressed": %d}' % i * 20 for i in range(3)]
    for cut in range(0, 400, 7):
        client = Client(deflate=True)
        server = client.server
        server.send_text(originals[0])  # compressed (RSV1): the library inflates it
        stream = b"".join(server.data_to_send()) + text(DECOY)  # an uncompressed message
        server.send_binary(originals[1])
        server.send_text(originals[2])
        compressed = b"".join(server.data_to_send())
        stream += compressed + text(b"plain")
        got = client.feed([client.response + stream[:cut], stream[cut:]])
        assert [e.name for e in client.conn.protocol.extensions] == ["permessage-deflate"]
        assert client.conn._fast is True
        assert got.messages == [originals[0], DECOY, *originals[1:], b"plain"], cut
        assert got.state is State.OPEN
        plain = len(text(DECOY)) + len(text(b"plain"))
        assert client.library_bytes - len(client.response) <= len(stream) - plain + len(text(DECOY))
        if cut == 0:
            assert client.library_bytes - len(client.response) == len(stream) - plain


async def test_an_unknown_extension_sends_every_frame_through_the_library() -> None:
    extension = Passthrough()
    client = Client(extension=extension)
    client.conn.data_received(client.response)
    assert client.conn.protocol.extensions == [extension]
    assert client.conn._fast is False
    stream = mixed_stream()
    assert client.feed([stream[:7], stream[7:]]) == reference(stream)
    assert extension.decoded == 8  # every frame, data and control


# --- whole feeds over loopback TCP ----------------------------------------------------------


def collector() -> tuple[list[bytes], Callable[[str | bytes], bool]]:
    seen: list[bytes] = []

    def handler(frame: str | bytes) -> bool:
        assert isinstance(frame, bytes)
        seen.append(frame)
        return True

    return seen, handler


async def test_ping_between_data_frames_in_one_write_is_answered_and_data_arrives() -> None:
    pongs: list[Frame] = []

    async def script(peer: Peer) -> None:
        peer.protocol.send_text(b"1")
        peer.protocol.send_ping(b"between")
        peer.protocol.send_text(b"2")
        peer.protocol.send_binary(b"3" * 300)
        await peer.flush()  # handshake response, data, ping, data: one write
        pongs.append(await peer.read_until(Opcode.PONG))
        await hold_open(peer)

    seen, handler = collector()
    async with PackingServer(script).running() as server:
        feed = WsFeed("ping", server.url, handler, clock=CLOCK, decode=False)
        async with feeding(feed.run):
            await wait_for(lambda: len(seen) == 3 and bool(pongs))
    assert seen == [b"1", b"2", b"3" * 300]
    assert pongs[0].data == b"between"
    assert feed.counters.connects == 1


async def test_16_and_64_bit_lengths_and_a_fragmented_message_over_tcp() -> None:
    big = b"B" * 70_000

    async def script(peer: Peer) -> None:
        await peer.flush()
        peer.protocol.send_text(b"m" * 126)
        peer.protocol.send_binary(big)
        peer.protocol.send_text(b"frag", fin=False)
        peer.protocol.send_continuation(b"mented", fin=True)
        peer.protocol.send_text(b"last")
        await peer.flush()
        await hold_open(peer)

    seen, handler = collector()
    async with PackingServer(script).running() as server:
        feed = WsFeed("lengths", server.url, handler, clock=CLOCK, decode=False)
        async with feeding(feed.run):
            await wait_for(lambda: len(seen) == 4)
    assert seen == [b"m" * 126, big, b"fragmented", b"last"]
    assert feed.counters.frames == 4


@pytest.mark.parametrize(("bad", "reason"), [
    (masked(b"masked"), "incorrect masking"),
    (text(b"rsv", first=0xA1), "reserved bits must be 0"),
])
async def test_a_bad_server_frame_closes_with_the_librarys_protocol_error(
        bad: bytes, reason: str) -> None:
    async def script(peer: Peer) -> None:
        if peer.protocol is not first_peer.setdefault("p", peer.protocol):
            await hold_open(peer)  # the reconnect: nothing to send
            return
        peer.protocol.send_text(b"good")
        peer.writer.write(b"".join(peer.protocol.data_to_send()) + bad + text(b"never"))
        await peer.writer.drain()
        await peer.read_until(Opcode.CLOSE)  # the client's close (1002) ends the session

    first_peer: dict[str, Any] = {}
    seen, handler = collector()
    server = PackingServer(script)
    async with server.running():
        feed = WsFeed("bad", server.url, handler, clock=CLOCK, decode=False)
        async with feeding(feed.run):
            await wait_for(lambda: feed.counters.disconnects >= 1)
    assert seen == [b"good"]
    assert feed.counters.last_error is not None
    assert "1002" in feed.counters.last_error
    assert reason in feed.counters.last_error


async def test_a_close_frame_in_the_middle_of_a_write_closes_cleanly() -> None:
    async def script(peer: Peer) -> None:
        if server.sessions > 1:
            await hold_open(peer)
            return
        peer.protocol.send_text(b"before")
        peer.protocol.send_close(1000, "bye")
        # Data behind the close in the same write: the client must discard it.
        peer.writer.write(b"".join(peer.protocol.data_to_send()) + text(b"after the close"))
        await peer.writer.drain()
        await peer.read_until(Opcode.CLOSE)

    seen, handler = collector()
    server = PackingServer(script)
    async with server.running():
        feed = WsFeed("closing", server.url, handler, clock=CLOCK, decode=False)
        async with feeding(feed.run):
            await wait_for(lambda: feed.counters.disconnects >= 1)
    assert seen == [b"before"]
    assert feed.counters.last_error is None  # a clean close is no error


async def test_invalid_utf8_text_is_dropped_as_not_json_by_the_trade_feed() -> None:
    async def script(peer: Peer) -> None:
        peer.protocol.send_text(trade_frame(1, 100_000.0).encode())
        peer.protocol.send_text(b'{"e": "trade", "s": "\xff\xfe"}')  # not UTF-8
        peer.protocol.send_text(trade_frame(2, 100_000.01).encode())
        await peer.flush()
        await hold_open(peer)

    seen: list[Trade] = []
    async with PackingServer(script).running() as server:
        feed = BinanceTradeFeed(server.url, CLOCK, seen.append)
        async with feeding(feed.run):
            await wait_for(lambda: feed.counters.frames == 3)
    assert [t.trade_id for t in seen] == [1, 2]
    assert feed.counters.dropped == {NOT_JSON: 1}
    assert feed.counters.connects == 1
