"""The feed faults of ``../shared/docs/reliability.md``, each against loopback servers that
speak the venues' real frames (``feedfakes``), with its pass criterion:

* disconnect storm: 50 abrupt drops at 1k msg/s, 50/50 reconnect and resubscribe, first fresh
  message <= 2 s after each drop, 0 decisions on stale data, memory flat;
* connection refused (12 s here): reconnect delay capped at 2 s, <= 1 connect/s;
* silent stall (pings answered, no data): watchdog fires within 2.0 +/- 0.2 s, recycled;
* handshake 429/503: keeps trying, honours Retry-After;
* 1% garbage frames: all dropped and counted by reason, state never holds a bad price;
* Polymarket: no PING before subscribe; tick_size_change invalidates the book until a snapshot.

Timings are the pass criteria themselves; tolerances allow for a loaded 2-core CI box.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest
from feedfakes import (
    FakeBinance,
    FakeClobMarket,
    FakeRtds,
    book_event,
    closed_port,
    now_ms,
    trade_frame,
)
from websockets.asyncio.client import ClientConnection

from core.clock import SystemClock
from core.guard import GuardLimits, evaluate
from core.records import FairValueEstimate, LedgerView, TradeProposal
from feeds.binance import BinanceTradeFeed, Trade
from tools.polymarket.gamma import MarketWindow
from tools.polymarket.market_channel import BookSnapshot, ClobMarketFeed, OrderBooks
from tools.polymarket.price_to_beat import PriceToBeat
from tools.polymarket.rtds import RtdsFeed
from tools.polymarket.store import SnapshotStore

pytestmark = pytest.mark.server
CLOCK = SystemClock()
UP, DOWN = "71000000000001", "52000000000002"
# Scheduling slack on a loaded CI box, on top of each criterion's own upper bound (lower
# bounds need none: being late never makes a wait shorter).
SLACK_S = 0.5


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, Any]) -> AsyncIterator[asyncio.Task[Any]]:
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def synthetic_window(now: float) -> MarketWindow:
    """A window that opened two minutes ago and closes in ten (synthetic tokens)."""
    return MarketWindow(
        slug="btc-updown-15m-synthetic", asset="BTC", condition_id="0xsynthetic",
        start_ts=now - 120.0, end_ts=now + 600.0, up_token_id=UP, down_token_id=DOWN,
        tick_size=0.01, min_order_shares=5.0, fee_rate=0.07, fee_exponent=1.0,
        twap_enabled=True, twap_lookback_s=60, accepting_orders=True, closed=False,
    )


async def wait_for(predicate: Any, within: float, step: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(step)


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


# --- disconnect storm ---------------------------------------------------------------------------


async def test_disconnect_storm_50_drops_at_1k_msgs() -> None:
    window = synthetic_window(CLOCK.now())
    store = SnapshotStore(CLOCK)
    store.set_window(window)
    store.offer_price_to_beat(PriceToBeat(window.market_id, 100_000.0, "crypto_price_api", True))
    accepted: list[Trade] = []

    def on_trade(trade: Trade) -> None:
        accepted.append(trade)
        store.on_trade(trade)

    # Everything but the price passes the guard, so price freshness alone decides.
    limits = GuardLimits(max_reference_gap_pct=100.0)
    fair = FairValueEstimate(fair_up=0.95, price=100_000.0, price_to_beat=100_000.0,
                             price_to_beat_verified=True, time_to_close_s=600.0,
                             sigma_per_sqrt_s=0.0001, log_moneyness=0.0)
    proposal = TradeProposal(side="up", stake_usd=10.0, confidence=95, fair_p=0.95, ask=0.56,
                             worst_price=0.58)
    decisions: list[tuple[float, bool, list[str]]] = []

    async def decide_every_20ms() -> None:
        while True:
            # The CLOB side stays fresh (a synthetic book snapshot each time), so the price's
            # freshness alone decides.
            for asset, bid, ask in ((UP, 0.54, 0.56), (DOWN, 0.44, 0.46)):
                store.books.apply(BookSnapshot(asset, "0xsynthetic", ((bid, 100.0),),
                                               ((ask, 100.0),), CLOCK.now()))
            snap = store.snapshot()
            if snap is not None:
                now = CLOCK.now()
                verdict = evaluate(proposal, snap, fair, limits, LedgerView(), now,
                                   kill_switch_engaged=False)
                decisions.append((now - snap.price_ts, verdict.approved,
                                  [h.detail for h in verdict.rules_fired]))
            await asyncio.sleep(0.02)

    async with FakeBinance(rate=1000) as venue:
        feed = BinanceTradeFeed(venue.url + "/ws/btcusdt@trade", CLOCK, on_trade)
        async with running(feed.run()), running(decide_every_20ms()):
            await wait_for(lambda: len(accepted) > 200, 5)
            rss_start = rss_mb()
            for drop in range(50):
                await wait_for(lambda n=drop: feed.counters.connects == n + 1
                               and len(venue.live) == 1, 5)
                await asyncio.sleep(0.1)  # ~100 messages on this connection
                assert venue.drop_all() == 1
            await wait_for(lambda: feed.counters.connects == 51 and len(venue.live) == 1, 5)
            await wait_for(lambda: len(feed.counters.recovery_s) == 50, 5)
            # Then a real outage: the venue goes quiet for 3 s; decisions must stop.
            venue.stalled = True
            await asyncio.sleep(3.0)
            venue.stalled = False
            await wait_for(lambda: CLOCK.now() - store.price_ts < 0.5, 5)
            gc.collect()
            rss_end = rss_mb()
            live_connections = [o for o in gc.get_objects() if type(o) is ClientConnection]

    # The 50 storm drops, then the outage (recycled by the watchdog, fresh once it ended).
    recovery = list(feed.counters.recovery_s)
    assert len(recovery) == 51
    assert max(recovery[:50]) <= 2.0, recovery  # 50/50 came back with fresh data in <= 2 s
    assert feed.counters.connects >= 51
    assert len(venue.connections) == feed.counters.connects  # each reconnect re-subscribed
    assert feed.counters.dropped_total == 0
    # Ids never went backwards across reconnects: one trade per id, in order.
    ids = [t.trade_id for t in accepted]
    assert ids == sorted(set(ids))
    stale = [d for d in decisions if d[0] > limits.max_price_age_s]
    fresh_approved = [d for d in decisions if d[1]]
    assert stale, "the outage should have produced stale samples"
    assert fresh_approved, "fresh samples should pass the guard (else the check proves nothing)"
    assert not [d for d in stale if d[1]], "a decision was approved on stale data"
    assert all(any("price age" in r for r in d[2]) for d in stale)
    # Memory flat: no connection objects left behind, no growth beyond noise.
    assert len(live_connections) <= 1
    assert rss_end - rss_start < 25.0, (rss_start, rss_end)


# --- connection refused -----------------------------------------------------------------------

# reliability.md says 20 s; 12 s already shows six capped 2 s waits and keeps the suite short.
REFUSED_S = 12.0


async def test_connection_refused_backoff_is_capped_and_at_most_1_per_s() -> None:
    with closed_port() as port:
        url = f"ws://127.0.0.1:{port}"
        books = OrderBooks(CLOCK)
        books.set_assets([UP, DOWN])
        binance = BinanceTradeFeed(url + "/ws/btcusdt@trade", CLOCK, lambda t: None)
        feeds = {
            "binance": binance.ws,
            "rtds": RtdsFeed(url, CLOCK, lambda t: None).ws,
            "clob": ClobMarketFeed(url + "/ws/market", CLOCK, books).ws,
        }
        loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as stack:
            for ws in feeds.values():
                await stack.enter_async_context(running(ws.run()))
            await asyncio.sleep(REFUSED_S)
            # The venue comes back on the same port (the Binance fake: one server per port).
            venue = FakeBinance(rate=200)
            await venue.start(port)
            up_at = loop.time()
            await wait_for(lambda: binance.counters.accepted > 0, 5)
            connected_after = venue.connections[0].opened - up_at
            await venue.stop()

    for name, ws in feeds.items():
        times = [t for t in ws.counters.attempt_times if t < up_at]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) >= REFUSED_S / 2 - 1, (name, len(times))
        assert len(times) <= REFUSED_S + 1, (name, len(times))  # <= 1 connect/s
        assert min(gaps) >= 1.0 - 0.05, (name, gaps)  # never two connects within 1 s
        assert max(gaps) <= 2.0 + SLACK_S, (name, gaps)  # delay capped at 2 s
        assert ws.counters.handshake_rejections == Counter()
    assert binance.counters.connects == 1
    assert connected_after <= 2.0 + SLACK_S


# --- silent stall -------------------------------------------------------------------------------


async def test_silent_stall_watchdog_fires_at_2s_and_recycles() -> None:
    async with FakeBinance(rate=100) as venue:
        feed = BinanceTradeFeed(venue.url + "/ws/btcusdt@trade", CLOCK, lambda t: None)
        assert feed.ws.stale_after_s == 2.0  # the real default
        async with running(feed.run()):
            await wait_for(lambda: feed.counters.accepted >= 30, 5)
            venue.stalled = True  # connection open, pings answered, no data
            await wait_for(lambda: feed.counters.watchdog_fires == 1, 5)
            await wait_for(lambda: len(venue.connections) == 2, 2)
            stalled_from = venue.last_send
            first_closed = venue.connections[0].closed
            venue.stalled = False
            before = feed.counters.accepted
            await wait_for(lambda: feed.counters.accepted > before + 10, 3)
    lag = feed.counters.watchdog_lag_s[0]
    assert 2.0 - 0.2 <= lag <= 2.0 + 0.2, lag
    # Seen from the venue: the client gave up on the silent connection about 2 s after the
    # last data frame, and came straight back.
    assert stalled_from is not None
    assert first_closed is not None
    assert 2.0 - 0.2 <= first_closed - stalled_from <= 2.0 + SLACK_S
    assert venue.connections[1].opened - first_closed <= 0.5


async def test_rtds_heartbeat_replies_do_not_count_as_data() -> None:
    async with FakeRtds(interval_s=0.05) as venue:
        feed = RtdsFeed(venue.url, CLOCK, lambda t: None, heartbeat_interval_s=0.1,
                        stale_after_s=0.6)
        async with running(feed.run()):
            await wait_for(lambda: feed.counters.accepted > 5, 5)
            venue.stalled = True  # PING still answered with PONG
            await wait_for(lambda: feed.counters.watchdog_fires >= 1, 3)
            venue.stalled = False
            await wait_for(lambda: len(venue.connections) >= 2, 3)
    assert venue.pings >= 3
    assert feed.counters.heartbeats >= 3
    assert feed.counters.dropped_total == 0


# --- handshake 429 / 503 -------------------------------------------------------------------------


async def test_handshake_429_and_503_keep_trying_and_honour_retry_after() -> None:
    async with FakeBinance(rate=100) as venue:
        venue.rejections = [(429, "2.5"), (503, None)]
        feed = BinanceTradeFeed(venue.url + "/ws/btcusdt@trade", CLOCK, lambda t: None)
        async with running(feed.run()):
            await wait_for(lambda: feed.counters.accepted > 10, 12)
    # Seen by the venue: Retry-After honoured, even beyond the 2 s cap.
    t = venue.handshake_times
    assert len(t) == 3
    assert t[1] - t[0] >= 2.5 - 0.05
    # The client's own attempts: a 503 without Retry-After waits the capped backoff.
    a = list(feed.counters.attempt_times)
    assert 1.0 - 0.05 <= a[2] - a[1] <= 2.0 + SLACK_S
    assert feed.counters.handshake_rejections == Counter({429: 1, 503: 1})
    assert feed.counters.connects == 1


# --- garbage ------------------------------------------------------------------------------------

GARBAGE_KINDS = ("not_json", "missing_field", "nan_price", "zero_price", "spike", "future_ts",
                 "duplicate", "out_of_order")
REASON = {"nan_price": "bad_price", "zero_price": "bad_price"}


def garbage_script(n: int, rate: float, seed: int = 11) -> tuple[list[str], Counter[str],
                                                                  set[float]]:
    """``n`` synthetic frames, ``rate`` of them garbage spread over every kind."""
    rng = random.Random(seed)
    positions = sorted(rng.sample(range(30, n), int(n * rate)))
    kinds = {p: GARBAGE_KINDS[i % len(GARBAGE_KINDS)] for i, p in enumerate(positions)}
    frames: list[str] = []
    expected: Counter[str] = Counter()
    valid_prices: set[float] = set()
    next_id, price = 5_000_001, 100_000.0
    last_valid: str | None = None
    last_valid_id = 0
    for i in range(n):
        kind = kinds.get(i)
        if kind is None:
            price = round(price + rng.uniform(-3, 3), 2)
            frame = trade_frame(next_id, price)
            valid_prices.add(price)
            last_valid, last_valid_id = frame, next_id
            next_id += 1
            frames.append(frame)
            continue
        expected[REASON.get(kind, kind)] += 1
        if kind == "not_json":
            frames.append('{"e":"trade","E":17' if i % 2 else "<html>502 Bad Gateway</html>")
        elif kind == "missing_field":
            data = json.loads(trade_frame(next_id, price))
            del data["p"]
            frames.append(json.dumps(data))
        elif kind == "nan_price":
            frames.append(trade_frame(next_id, "NaN"))
        elif kind == "zero_price":
            frames.append(trade_frame(next_id, "0.00" if i % 2 else "-1.00"))
        elif kind == "spike":
            frames.append(trade_frame(next_id, round(price * 10, 2)))
            next_id += 1
        elif kind == "future_ts":
            frames.append(trade_frame(next_id, price, ts_ms=now_ms() + 60_000))
            next_id += 1
        elif kind == "duplicate":
            assert last_valid is not None
            frames.append(last_valid)
        else:
            frames.append(trade_frame(last_valid_id - 3, price))
    return frames, expected, valid_prices


async def test_garbage_frames_dropped_and_counted_by_reason() -> None:
    frames, expected, valid_prices = garbage_script(10_000, 0.01)
    store = SnapshotStore(CLOCK)
    held: list[float] = []

    def on_trade(trade: Trade) -> None:
        store.on_trade(trade)
        assert store.price is not None
        held.append(store.price)

    async with FakeBinance(rate=5000, script=frames) as venue:
        feed = BinanceTradeFeed(venue.url + "/ws/btcusdt@trade", CLOCK, on_trade)
        async with running(feed.run()):
            await wait_for(lambda: feed.counters.frames == len(frames), 15)
    assert sum(expected.values()) == 100
    assert dict(feed.counters.dropped) == dict(expected)
    assert feed.counters.accepted == len(frames) - 100
    assert set(held) <= valid_prices  # the store never held a bad price, not even briefly
    assert feed.counters.connects == 1


async def test_rtds_and_clob_garbage_dropped_by_reason() -> None:
    base = now_ms() - 10_000
    good = [FakeRtds.frame("crypto_prices_chainlink", "btc/usd", 100_000.0 + i, base + i * 100)
            for i in range(5)]
    garbage = {
        "not_json": "{topic",
        "bad_price": FakeRtds.frame("crypto_prices_chainlink", "btc/usd", -1.0, base + 600),
        "wrong_symbol": FakeRtds.frame("crypto_prices_chainlink", "eth/usd", 3000.0, base + 700),
        "duplicate": good[-1],
        "out_of_order": FakeRtds.frame("crypto_prices_chainlink", "btc/usd", 100_001.0, base),
        "spike": FakeRtds.frame("crypto_prices_chainlink", "btc/usd", 1_000_000.0, base + 800),
        "future_ts": FakeRtds.frame("crypto_prices_chainlink", "btc/usd", 100_001.0,
                                    now_ms() + 60_000),
    }
    values: list[float] = []
    async with FakeRtds(interval_s=0.2) as rtds_venue:
        rtds_venue.on_subscribe = [*good, *garbage.values()]
        feed = RtdsFeed(rtds_venue.url, CLOCK, lambda t: values.append(t.value))
        async with running(feed.run()):
            await wait_for(lambda: feed.counters.dropped_total == len(garbage), 5)
    assert dict(feed.counters.dropped) == dict.fromkeys(garbage, 1)
    assert all(90_000 < v < 110_000 for v in values)

    books = OrderBooks(CLOCK)
    books.set_assets([UP, DOWN])
    async with FakeClobMarket(change_interval_s=10.0) as clob_venue:
        clob = ClobMarketFeed(clob_venue.url, CLOCK, books)
        async with running(clob.run()):
            await wait_for(lambda: books.top(UP) is not None and books.top(DOWN) is not None, 5)
            await clob_venue.broadcast("<html>403 Forbidden</html>")
            await clob_venue.broadcast(book_event(UP, "0xs", [("1.7", "5")], [("0.6", "1")]))
            await clob_venue.broadcast(book_event(UP, "0xs", [("0.5", "-5")], [("0.6", "1")]))
            await clob_venue.broadcast(book_event("999", "0xs", [("0.5", "5")], [("0.6", "1")]))
            await clob_venue.broadcast({"event_type": "surprise"})
            await wait_for(lambda: clob.counters.dropped_total == 5, 5)
    assert dict(clob.counters.dropped) == {"not_json": 1, "bad_price": 1, "bad_size": 1,
                                           "unknown_asset": 1, "unknown_event": 1}
    top = books.top(UP)
    assert top is not None
    assert (top.bid, top.ask) == (0.54, 0.56)  # untouched by the garbage


# --- Polymarket specifics ------------------------------------------------------------------


async def test_no_ping_before_subscribe_across_reconnects() -> None:
    books = OrderBooks(CLOCK)
    books.set_assets([UP, DOWN])
    async with FakeRtds(interval_s=0.05) as rtds_venue, FakeClobMarket(0.05) as clob_venue:
        rtds_feed = RtdsFeed(rtds_venue.url, CLOCK, lambda t: None, heartbeat_interval_s=0.02)
        clob_feed = ClobMarketFeed(clob_venue.url, CLOCK, books, heartbeat_interval_s=0.02)
        async with running(rtds_feed.run()), running(clob_feed.run()):
            for n in range(1, 6):
                await wait_for(lambda n=n: len(rtds_venue.live) == 1 and len(clob_venue.live) == 1
                               and rtds_feed.counters.connects == n
                               and clob_feed.counters.connects == n, 5)
                await asyncio.sleep(0.1)
                rtds_venue.drop_all()
                clob_venue.drop_all()
            await wait_for(lambda: rtds_feed.counters.connects == 6
                           and clob_feed.counters.connects == 6, 5)
    assert rtds_venue.violations == []
    assert clob_venue.violations == []
    for log in rtds_venue.connections:
        assert log.first_message is not None
        assert json.loads(log.first_message)["action"] == "subscribe"
    for log in clob_venue.connections:
        assert log.first_message is not None
        assert json.loads(log.first_message)["assets_ids"] == [UP, DOWN]
    assert rtds_venue.pings > 0
    assert clob_venue.pings > 0
    assert len(clob_venue.subscriptions) == 6  # resubscribed after every drop


async def test_tick_size_change_invalidates_the_book_until_a_snapshot() -> None:
    window = synthetic_window(CLOCK.now())
    store = SnapshotStore(CLOCK)
    store.set_window(window)
    store.on_trade(Trade(1, 100_000.0, 0.1, CLOCK.now(), CLOCK.now(), False))
    async with FakeClobMarket(change_interval_s=0.05) as venue:
        feed = ClobMarketFeed(venue.url, CLOCK, store.books)
        async with running(feed.run()):
            await wait_for(lambda: store.snapshot() is not None
                           and store.snapshot().book_ts is not None, 5)  # type: ignore[union-attr]
            await venue.broadcast({"event_type": "tick_size_change", "asset_id": UP,
                                   "market": "0xsynthetic", "old_tick_size": "0.01",
                                   "new_tick_size": "0.001", "timestamp": str(now_ms())})
            await wait_for(lambda: store.books.top(UP) is None, 2)
            snap = store.snapshot()
            assert snap is not None
            assert (snap.up, snap.down, snap.book_ts) == (None, None, None)
            # The venue keeps sending changes for UP: none may patch the invalid book.
            await wait_for(lambda: feed.counters.dropped["no_book"] >= 3, 3)
            assert store.snapshot().up is None  # type: ignore[union-attr]
            await venue.broadcast(book_event(UP, "0xsynthetic", [("0.961", "4")],
                                             [("0.972", "9")]))
            await wait_for(lambda: store.books.top(UP) is not None, 2)
    snap = store.snapshot()
    assert snap is not None
    assert snap.up is not None
    assert (snap.up.bid, snap.up.ask, snap.tick_size) == (0.961, 0.972, 0.01)
    assert store.books.book(UP).tick_size == 0.001  # type: ignore[union-attr]


async def test_binance_server_shutdown_notice_reconnects_at_once() -> None:
    frames = [trade_frame(9_000_001 + i, 100_000.0 + i) for i in range(5)]
    frames.append(json.dumps({"e": "serverShutdown", "E": now_ms()}))
    frames += [trade_frame(9_000_101 + i, 100_010.0 + i) for i in range(5)]
    async with FakeBinance(rate=200, script=frames) as venue:
        feed = BinanceTradeFeed(venue.url + "/ws/btcusdt@trade", CLOCK, lambda t: None)
        async with running(feed.run()):
            # (A frame the venue wrote while we were leaving may be lost: it left us anyway.)
            await wait_for(lambda: feed.counters.connects == 2
                           and feed.counters.accepted >= 9 and not venue.script, 5)
    assert feed.counters.connects == 2
    assert feed.counters.ignored == 1
    assert feed.counters.dropped_total == 0
