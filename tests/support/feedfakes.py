"""Loopback fakes of the market-data venues, speaking their real wire formats.

* :class:`FakeBinance` — ``btcusdt@trade`` websocket: synthetic trades at a set rate, or a
  scripted list of frames; can drop every connection abruptly, stall (answer pings, send no
  data), and refuse handshakes with 429/503 (+ ``Retry-After``).
* :class:`FakeRtds` — RTDS: wants the subscription first, answers ``PING`` with ``PONG``, sends
  synthetic Chainlink / TWAP / relay updates.
* :class:`FakeRealtime` — the authenticated realtime channel (``ws-live-v2``): wants ``auth``
  first and checks the credentials, acknowledges each subscription and sends its history,
  then Chainlink spot and 60-second TWAP updates (optionally Pyth-sourced spot frames too);
  answers ``{"op":"ping"}`` with ``pong``.
* :class:`FakeClobMarket` — CLOB market channel: wants the subscription first (a ``PING``
  before it is recorded as a violation and the connection closed, as the venue does), sends a
  ``book`` snapshot per asset, then ``price_change`` events; tests push any other event.
* :class:`FakeHttp` — Gamma ``/markets/slug/{slug}``, the crypto-price endpoint, Binance
  klines and CLOB ``/book`` on one stdlib HTTP server (its own thread).
* :class:`ThreadedVenue` — all of them in a background thread, for CLI subprocess tests.

Every price, id and token here is synthetic.  Fakes may read the wall clock (they play the
venue); the code under test never does except through its Clock.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from httpfakes import send_json
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

SYNTHETIC_BASE_PRICE = 100_000.0


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_z(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def windows_between(t0: float, t1: float, length_s: int = 900) -> range:
    """Starts of every window current at some moment from ``t0`` to ``t1``: the ones a command
    that read the clock once in between may have picked."""
    return range(math.floor(t0 / length_s) * length_s,
                 math.floor(t1 / length_s) * length_s + 1, length_s)


def window_with_time_left(length_s: int, need_s: float) -> int:
    """Start of a window with at least ``need_s`` seconds left: the current one, or the next
    (slept until it opens).  A command then given at most ``need_s`` seconds (see
    :func:`seconds_left`) runs inside this one window: no boundary passes while it runs."""
    if not 0 < need_s < length_s:
        raise ValueError(f"need_s must be within a window of {length_s}s, got {need_s}")
    start = math.floor(time.time() / length_s) * length_s
    if start + length_s - time.time() < need_s:
        start += length_s
        while (wait := start - time.time()) > 0:
            time.sleep(wait)
    return start


def seconds_left(start: int, length_s: int, budget_s: float) -> float:
    """A command's time limit: ``budget_s``, or less if the window ends sooner."""
    return min(budget_s, start + length_s - time.time())


def token_ids(start: int) -> tuple[str, str]:
    """Synthetic Up/Down token ids for the window starting at ``start``."""
    return f"71{start:012d}0001", f"52{start:012d}0002"


def condition_id(start: int) -> str:
    return "0x" + f"{start:064x}"


def trade_frame(trade_id: int, price: float | str, *, ts_ms: int | None = None,
                qty: str = "0.00120000", symbol: str = "BTCUSDT") -> str:
    t = now_ms() if ts_ms is None else ts_ms
    p = price if isinstance(price, str) else f"{price:.2f}"
    return json.dumps({"e": "trade", "E": t, "s": symbol, "t": trade_id, "p": p, "q": qty,
                       "T": t, "m": trade_id % 2 == 0, "M": True}, separators=(",", ":"))


@dataclass
class ConnectionLog:
    opened: float  # loop time
    closed: float | None = None
    first_message: str | None = None
    messages: list[str] = field(default_factory=list)
    sent: list[Any] = field(default_factory=list)


class _WsFake:
    """Common server plumbing: start/stop, handshake rejections, drop/stall controls."""

    def __init__(self) -> None:
        self.server: Server | None = None
        self.port = 0
        self.connections: list[ConnectionLog] = []
        self.live: set[ServerConnection] = set()
        # Handshakes to refuse, in order: (status, Retry-After header or None).
        self.rejections: list[tuple[int, str | None]] = []
        self.handshake_times: list[float] = []
        self.stalled = False
        self.violations: list[str] = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        self.server = await serve(self._handle, "127.0.0.1", port,
                                  process_request=self._process_request, compression=None)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 3)
            self.server = None

    async def __aenter__(self) -> _WsFake:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _process_request(self, connection: ServerConnection, request: Request
                         ) -> Response | None:
        self.handshake_times.append(asyncio.get_running_loop().time())
        if self.rejections:
            status, retry_after = self.rejections.pop(0)
            response = connection.respond(HTTPStatus(status), "synthetic rejection\n")
            if retry_after is not None:
                response.headers["Retry-After"] = retry_after
            return response
        return None

    def drop_all(self) -> int:
        """Abrupt server-side disconnect of every open connection (no closing handshake)."""
        dropped = 0
        for ws in list(self.live):
            ws.transport.abort()
            dropped += 1
        return dropped

    async def _handle(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        log = ConnectionLog(opened=loop.time())
        self.connections.append(log)
        self.live.add(ws)
        # A stalled session sends nothing, so it would never notice the client leaving:
        # watch the connection itself and note when it closed.
        session = asyncio.create_task(self.session(ws, log))
        closed = asyncio.create_task(ws.wait_closed())
        try:
            await asyncio.wait({session, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            log.closed = loop.time()
            self.live.discard(ws)
            for task in (session, closed):
                task.cancel()
            for task in (session, closed):
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task

    async def session(self, ws: ServerConnection, log: ConnectionLog) -> None:
        raise NotImplementedError


class FakeBinance(_WsFake):
    """``btcusdt@trade``: synthetic trades (ids continue across connections, like Binance)."""

    def __init__(self, rate: float = 50.0, *, seed: int = 7,
                 script: list[str] | None = None) -> None:
        super().__init__()
        self.rate = rate
        self.rng = random.Random(seed)
        self.next_id = 1_000_001
        self.price = SYNTHETIC_BASE_PRICE
        self.script = list(script) if script is not None else None
        self.sent_prices: list[float] = []
        self.last_send: float | None = None

    def next_trade(self) -> tuple[str, float]:
        self.price = round(self.price + self.rng.choice((-1, 1)) * self.rng.random() * 5, 2)
        frame = trade_frame(self.next_id, self.price)
        self.next_id += 1
        return frame, self.price

    async def session(self, ws: ServerConnection, log: ConnectionLog) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.rate
        next_at = loop.time()
        while True:
            if self.stalled:
                await asyncio.sleep(0.01)  # connected, answering pings, sending nothing
                next_at = loop.time()
                continue
            if self.script is not None:
                if not self.script:
                    await asyncio.sleep(0.01)
                    continue
                frame = self.script[0]
                await ws.send(frame)
                self.script.pop(0)  # only once sent: a dropped connection does not eat it
                log.sent.append(frame)
            else:
                frame, price = self.next_trade()
                await ws.send(frame)
                log.sent.append(price)
                self.sent_prices.append(price)
            self.last_send = loop.time()
            next_at += period
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                next_at = loop.time()  # fell far behind: do not burst to catch up


class FakeRtds(_WsFake):
    """RTDS with the Chainlink / TWAP / relay topics."""

    def __init__(self, interval_s: float = 0.2, *, base: float = SYNTHETIC_BASE_PRICE,
                 twap: bool = False) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.value = base
        self.pings = 0
        # Also send a TWAP update stamped on every whole second (so on every window start).
        self.twap = twap
        self._last_twap_s = 0
        # Extra frames sent right after the subscription (e.g. a TWAP at the window start).
        self.on_subscribe: list[str] = []

    @staticmethod
    def frame(topic: str, symbol: str, value: float, ts_ms: int, *,
              exact: bool = False) -> str:
        payload: dict[str, Any] = {"symbol": symbol, "timestamp": ts_ms, "value": value}
        if exact:
            payload["full_accuracy_value"] = str(round(value * 1e6) * 10**12)
        return json.dumps({"topic": topic, "type": "update", "timestamp": ts_ms + 3,
                           "payload": payload})

    async def _reader(self, ws: ServerConnection, log: ConnectionLog,
                      subscribed: asyncio.Event) -> None:
        async for message in ws:
            text = message if isinstance(message, str) else message.decode()
            log.messages.append(text)
            if log.first_message is None:
                log.first_message = text
                if text == "PING":
                    self.violations.append("PING before subscribe")
                    await ws.close(1008, "subscribe first")
                    return
            if text == "PING":
                self.pings += 1
                await ws.send("PONG")
            else:
                data = json.loads(text)
                if data.get("action") == "subscribe":
                    subscribed.set()

    async def session(self, ws: ServerConnection, log: ConnectionLog) -> None:
        subscribed = asyncio.Event()
        reader = asyncio.create_task(self._reader(ws, log, subscribed))
        try:
            await asyncio.wait_for(subscribed.wait(), 5)
            for frame in self.on_subscribe:
                await ws.send(frame)
            while not reader.done():
                if not self.stalled:
                    ts = now_ms()
                    self.value = round(self.value + 0.37, 2)
                    await ws.send(self.frame("crypto_prices_chainlink", "btc/usd", self.value, ts))
                    await ws.send(self.frame("crypto_prices", "btcusdt", self.value + 12.5, ts))
                    log.sent.append(self.value)
                    second = ts // 1000
                    if self.twap and second > self._last_twap_s:
                        self._last_twap_s = second
                        await ws.send(self.frame("crypto_prices_twap_sixty", "btc/usd",
                                                 self.value - 0.5, second * 1000, exact=True))
                await asyncio.sleep(self.interval_s)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader


# Synthetic credentials of the loopback realtime channel (never a real key).
REALTIME_CREDENTIALS = {"apiKey": "synthetic-key", "secret": "c3ludGhldGlj",
                        "passphrase": "synthetic-pass"}


class FakeRealtime(_WsFake):
    """The authenticated realtime price channel, in the frame shapes of the SDK's fixtures."""

    def __init__(self, interval_s: float = 0.2, *, base: float = SYNTHETIC_BASE_PRICE,
                 credentials: dict[str, str] | None = None, history: int = 5,
                 pyth: bool = False, twap: bool = True) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.value = base
        self.credentials = dict(credentials or REALTIME_CREDENTIALS)
        self.history = history
        # Also send Pyth-sourced spot frames (not the settlement reference).
        self.pyth = pyth
        # TWAP updates on every whole second (so on every window start: a verified price to
        # beat of its own, which must agree with the crypto-price endpoint's).
        self.twap = twap
        self.pings = 0
        self.seq = 0
        self.subscriptions: list[list[dict[str, Any]]] = []
        self.auth_failures = 0
        self.chainlink_sent: list[float] = []
        self.twap_sent: list[float] = []
        self.pyth_sent: list[float] = []
        self.history_sent: list[float] = []
        self._last_twap_s = 0

    def frame(self, channel: str, value: float, ts_ms: int, *, source: str = "chainlink",
              history: list[tuple[int, float]] | None = None) -> str:
        self.seq += 1

        def point(ts: int, v: float) -> dict[str, Any]:
            return {"timestamp": ts, "value": round(v, 2), "full_accuracy_value": f"{v:.18f}"}

        payload: dict[str, Any] = {"symbol": "btcusd", "source": source}
        if history is not None:
            payload["data"] = [point(ts, v) for ts, v in history]
        else:
            payload.update(point(ts_ms, value))
        if channel == "price.crypto.twap":
            payload["window_seconds"] = 60
        return json.dumps({"v": 1, "channel": channel, "seq": self.seq, "ts": ts_ms,
                           "snapshot": history is not None, "payload": payload})

    async def _reader(self, ws: ServerConnection, log: ConnectionLog,
                      subscribed: asyncio.Event, authed: asyncio.Event) -> None:
        async for message in ws:
            text = message if isinstance(message, str) else message.decode()
            log.messages.append(text)
            data = json.loads(text)
            if log.first_message is None:
                log.first_message = text
            op = data.get("op")
            rid = data.get("rid")
            if op == "auth":
                if data.get("auth") != self.credentials:
                    self.auth_failures += 1
                    await ws.send(json.dumps({"op": "error", "rid": rid, "code": "auth_invalid"}))
                    continue
                authed.set()
                await ws.send(json.dumps({"op": "authed", "rid": rid}))
            elif op == "ping":
                self.pings += 1
                await ws.send(json.dumps({"op": "pong"}))
            elif op == "subscribe":
                if not authed.is_set():
                    self.violations.append("subscribe before authed")
                    await ws.send(json.dumps({"op": "error", "rid": rid,
                                              "code": "auth_required"}))
                    continue
                subs = list(data.get("subscriptions", []))
                self.subscriptions.append(subs)
                now = now_ms()
                for sub in subs:
                    channel = sub["channel"]
                    await ws.send(json.dumps({"op": "subscribed", "rid": rid,
                                              "channel": channel}))
                    past = [(now - 1000 * (self.history - i), round(self.value - 0.37 * (
                        self.history - i), 2)) for i in range(self.history)]
                    self.history_sent.extend(v for _, v in past)
                    await ws.send(self.frame(channel, self.value, now, history=past))
                subscribed.set()

    async def session(self, ws: ServerConnection, log: ConnectionLog) -> None:
        subscribed, authed = asyncio.Event(), asyncio.Event()
        reader = asyncio.create_task(self._reader(ws, log, subscribed, authed))
        try:
            await asyncio.wait_for(subscribed.wait(), 5)
            while not reader.done():
                if not self.stalled:
                    ts = now_ms()
                    self.value = round(self.value + 0.37, 2)
                    await ws.send(self.frame("price.crypto", self.value, ts))
                    self.chainlink_sent.append(self.value)
                    log.sent.append(self.value)
                    if self.pyth:
                        await ws.send(self.frame("price.crypto", self.value + 25.0, ts + 1,
                                                 source="pyth"))
                        self.pyth_sent.append(self.value + 25.0)
                    second = ts // 1000
                    if self.twap and second > self._last_twap_s:
                        self._last_twap_s = second
                        await ws.send(self.frame("price.crypto.twap", self.value - 0.5,
                                                 second * 1000))
                        self.twap_sent.append(self.value - 0.5)
                await asyncio.sleep(self.interval_s)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader


def book_event(asset_id: str, market: str, bids: list[tuple[str, str]],
               asks: list[tuple[str, str]], ts_ms: int | None = None) -> dict[str, Any]:
    return {"event_type": "book", "asset_id": asset_id, "market": market,
            "bids": [{"price": p, "size": s} for p, s in bids],
            "asks": [{"price": p, "size": s} for p, s in asks],
            "timestamp": str(now_ms() if ts_ms is None else ts_ms), "hash": "0xsynthetic"}


class FakeClobMarket(_WsFake):
    """The CLOB market channel for whatever assets a client subscribes to."""

    def __init__(self, change_interval_s: float = 0.25) -> None:
        super().__init__()
        self.change_interval_s = change_interval_s
        self.subscriptions: list[list[str]] = []
        self.pings = 0
        self.auto_books = True
        self.sessions: list[ServerConnection] = []

    @staticmethod
    def books_for(assets: list[str]) -> list[dict[str, Any]]:
        out = []
        for i, asset in enumerate(assets):
            up = i % 2 == 0
            # Like /book: bids ascending, asks descending (the best level is the last one).
            bids = [("0.50", "120"), ("0.53", "80"), ("0.54", "35")] if up else \
                [("0.42", "100"), ("0.44", "60"), ("0.45", "40")]
            asks = [("0.60", "90"), ("0.57", "70"), ("0.56", "25")] if up else \
                [("0.51", "90"), ("0.48", "50"), ("0.47", "30")]
            out.append(book_event(asset, "0xsynthetic", bids, asks))
        return out

    async def broadcast(self, event: dict[str, Any] | list[dict[str, Any]] | str) -> None:
        text = event if isinstance(event, str) else json.dumps(event)
        for ws in list(self.live):
            with contextlib.suppress(ConnectionClosed):
                await ws.send(text)

    async def session(self, ws: ServerConnection, log: ConnectionLog) -> None:
        first = await asyncio.wait_for(ws.recv(), 5)
        text = first if isinstance(first, str) else first.decode()
        log.first_message = text
        log.messages.append(text)
        if text == "PING":
            self.violations.append("PING before subscribe")
            await ws.close(1008, "subscribe first")
            return
        sub = json.loads(text)
        assets = [str(a) for a in sub.get("assets_ids", [])]
        self.subscriptions.append(assets)
        if self.auto_books:
            await ws.send(json.dumps(self.books_for(assets)))
        writer = asyncio.create_task(self._changes(ws, assets))
        try:
            async for message in ws:
                log.messages.append(str(message))
                if message == "PING":
                    self.pings += 1
                    await ws.send("PONG")
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer

    async def _changes(self, ws: ServerConnection, assets: list[str]) -> None:
        if not assets:
            return
        size = 10
        while True:
            await asyncio.sleep(self.change_interval_s)
            if self.stalled:
                continue
            size += 1
            await ws.send(json.dumps({
                "event_type": "price_change", "market": "0xsynthetic",
                "price_changes": [{"asset_id": assets[0], "price": "0.52", "size": str(size),
                                   "side": "BUY", "hash": "0xs", "best_bid": "0.54",
                                   "best_ask": "0.56"}],
                "timestamp": str(now_ms())}))


# --- HTTP -----------------------------------------------------------------------------------


def gamma_market(start: int, length_s: int = 900, prefix: str = "btc-updown-15m", *,
                 reversed_outcomes: bool = False, fee_rate: float = 0.07) -> dict[str, Any]:
    """A synthetic Gamma market object in the real shape (JSON-encoded arrays, ISO times)."""
    up, down = token_ids(start)
    outcomes, tokens, prices = ["Up", "Down"], [up, down], ["0.515", "0.485"]
    if reversed_outcomes:
        outcomes, tokens, prices = outcomes[::-1], tokens[::-1], prices[::-1]
    return {
        "id": str(500000 + start % 100000),
        "question": "Bitcoin Up or Down - synthetic window",
        "conditionId": condition_id(start),
        "slug": f"{prefix}-{start}",
        "startDate": iso_z(start - 86400),  # the listing time, not the window start
        "eventStartTime": iso_z(start),
        "endDate": iso_z(start + length_s),
        "outcomes": json.dumps(outcomes),
        "outcomePrices": json.dumps(prices),
        "clobTokenIds": json.dumps(tokens),
        "orderPriceMinTickSize": 0.01,
        "orderMinSize": 5,
        "negRisk": False,
        "acceptingOrders": True,
        "closed": False,
        "feesEnabled": True,
        "feeSchedule": {"rate": fee_rate, "exponent": 1, "takerOnly": True, "rebateRate": 0},
        "cryptoMarketConfig": {"twapEnabled": True, "twapLookbackSeconds": 60},
    }


class FakeHttp(ThreadingHTTPServer):
    """Gamma, crypto-price, Binance klines and CLOB /book on one loopback HTTP server."""

    daemon_threads = True

    def __init__(self, *, length_s: int = 900, prefix: str = "btc-updown-15m") -> None:
        super().__init__(("127.0.0.1", 0), _HttpHandler)
        self.length_s = length_s
        self.prefix = prefix
        self.requests: list[str] = []
        self.open_prices: dict[int, float] = {}
        self.close_prices: dict[int, float] = {}
        # Open price for windows not in open_prices (None: the endpoint has none yet).
        self.default_open_price: float | None = None
        self.crypto_price_status = 200
        self.gamma_status = 200
        self.unlisted: set[int] = set()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def crypto_price_url(self) -> str:
        return self.url + "/api/crypto/crypto-price"

    def __enter__(self) -> FakeHttp:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _HttpHandler(BaseHTTPRequestHandler):
    server: FakeHttp

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, body: Any) -> None:
        send_json(self, status, body)

    def do_GET(self) -> None:
        srv = self.server
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        srv.requests.append(self.path)
        slug = re.fullmatch(r"/markets/slug/([a-z0-9-]+)", parts.path)
        if slug:
            if srv.gamma_status != 200:
                self._json(srv.gamma_status, {"error": "synthetic"})
                return
            found = re.fullmatch(rf"{re.escape(srv.prefix)}-(\d+)", slug.group(1))
            if not found or int(found.group(1)) % srv.length_s or \
                    int(found.group(1)) in srv.unlisted:
                self._json(404, {"type": "not found", "error": "synthetic"})
                return
            self._json(200, gamma_market(int(found.group(1)), srv.length_s, srv.prefix))
        elif parts.path == "/api/crypto/crypto-price":
            if srv.crypto_price_status != 200:
                self._json(srv.crypto_price_status, {"error": "synthetic"})
                return
            start = int(_parse_iso(query["eventStartTime"]))
            end = int(_parse_iso(query["endDate"]))
            done = time.time() >= end and start in srv.close_prices
            self._json(200, {"openPrice": srv.open_prices.get(start, srv.default_open_price),
                             "closePrice": srv.close_prices.get(start) if done else None,
                             "timestamp": now_ms(), "completed": done,
                             "incomplete": not done, "cached": False})
        elif parts.path == "/api/v3/klines":
            self._json(200, synthetic_klines(int(query.get("limit", "500"))))
        elif parts.path == "/book":
            token = query.get("token_id", "")
            up = token.startswith("71")
            books = FakeClobMarket.books_for(["u"] if up else ["u", "d"])
            book = books[0] if up else books[1]
            self._json(200, {"market": "0xsynthetic", "asset_id": token,
                             "bids": book["bids"], "asks": book["asks"],
                             "tick_size": "0.01", "min_order_size": "5",
                             "timestamp": str(now_ms())})
        else:
            self._json(404, {"error": "no such synthetic endpoint"})


def _parse_iso(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def synthetic_klines(limit: int) -> list[list[Any]]:
    """Binance kline arrays: ``limit`` 1-minute candles ending with the one still forming."""
    now = time.time()
    current_open = math.floor(now / 60) * 60
    rows = []
    price = SYNTHETIC_BASE_PRICE - 50.0
    for i in range(limit):
        open_ts = current_open - (limit - 1 - i) * 60
        o = price
        c = round(price + (3.0 if i % 3 else -2.0), 2)
        rows.append([int(open_ts * 1000), f"{o:.2f}", f"{max(o, c) + 1:.2f}",
                     f"{min(o, c) - 1:.2f}", f"{c:.2f}", "12.50000000",
                     int(open_ts * 1000) + 59_999, "1250000.0", 420, "6.2", "620000.0", "0"])
        price = c
    return rows


# --- everything in a background thread (for subprocess tests) --------------------------------


class ThreadedVenue:
    """All fakes on a private event loop thread; ``env()`` points ``updown`` at them."""

    def __init__(self, *, binance_rate: float = 20.0, length_s: int = 900,
                 prefix: str = "btc-updown-15m") -> None:
        self.binance = FakeBinance(rate=binance_rate)
        self.rtds = FakeRtds()
        self.realtime = FakeRealtime(pyth=True)
        self.clob = FakeClobMarket()
        self.http = FakeHttp(length_s=length_s, prefix=prefix)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, fn: Callable[[], Any]) -> Any:
        async def wrapper() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(5)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def __enter__(self) -> ThreadedVenue:
        self._thread.start()
        for fake in (self.binance, self.rtds, self.realtime, self.clob):
            self.run(fake.start())
        self.http.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for fake in (self.binance, self.rtds, self.realtime, self.clob):
            with contextlib.suppress(Exception):
                self.run(fake.stop())
        self.http.__exit__()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def env(self) -> dict[str, str]:
        return venue_env(self.binance.url, self.rtds.url, self.clob.url, self.http)

    def realtime_env(self) -> dict[str, str]:
        """``env()`` with API credentials: the reference comes from the realtime channel
        (RTDS points at a closed port, so using it would fail the start)."""
        return {**self.env(), **realtime_env(self.realtime.url),
                "POLYMARKET_RTDS_URL": "ws://127.0.0.1:9"}


def realtime_env(url: str, credentials: dict[str, str] | None = None) -> dict[str, str]:
    creds = credentials or REALTIME_CREDENTIALS
    return {"POLYMARKET_REALTIME_URL": url, "POLYMARKET_API_KEY": creds["apiKey"],
            "POLYMARKET_API_SECRET": creds["secret"],
            "POLYMARKET_API_PASSPHRASE": creds["passphrase"]}


def venue_env(binance: str, rtds: str, clob: str, http: FakeHttp) -> dict[str, str]:
    return {
        "BINANCE_WS_URL": binance + "/ws/btcusdt@trade",
        "BINANCE_REST_URL": http.url,
        "POLYMARKET_RTDS_URL": rtds,
        "POLYMARKET_CLOB_WS_URL": clob + "/ws/market",
        "POLYMARKET_GAMMA_URL": http.url,
        "POLYMARKET_CLOB_URL": http.url,
        "POLYMARKET_CRYPTO_PRICE_URL": http.crypto_price_url,
    }


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port with nothing listening (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port
