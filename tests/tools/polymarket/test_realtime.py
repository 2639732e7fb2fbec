"""The authenticated realtime channel (``tools.polymarket.realtime``) and the TWAP-settled
snapshot of the live store.

* wire: the auth and subscribe messages the official client sends; credentials never printed;
* frames: the real SDK samples of ``tests/conformance/samples/realtime`` through the feed;
  a Pyth-sourced spot price is not the settlement reference; a history replayed after a
  reconnect is skipped, not counted as faults;
* loopback (``FakeRealtime``): auth before subscribe, ticks, pings, reconnect with re-auth,
  refused credentials end the feed with one line (no retry loop);
* ``LiveFeed`` with credentials takes its reference from this channel, keyless from RTDS;
* the store: TWAP settlement from the Gamma market and the running mean of the reference in
  the final minute.

Prices are synthetic except the conformance samples (real frames from the SDK's fixtures).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
from feedfakes import (
    REALTIME_CREDENTIALS,
    FakeBinance,
    FakeClobMarket,
    FakeHttp,
    FakeRealtime,
    FakeRtds,
    closed_port,
)

from core.clock import SystemClock
from core.settings import Settings
from feeds.ws import Backoff
from tools.polymarket.gamma import WindowSeries
from tools.polymarket.live_feed import FeedEndpoints, FeedError, FeedTimings, LiveFeed
from tools.polymarket.realtime import (
    RealtimeAuthError,
    RealtimeCredentials,
    RealtimeFeed,
    auth_message,
    subscribe_message,
)
from tools.polymarket.rtds import ReferenceGate, ReferenceSymbols, ReferenceTick
from tools.polymarket.store import time_weighted_mean

CLOCK = SystemClock()
SAMPLES = Path(__file__).resolve().parents[2] / "conformance" / "samples" / "realtime"
CREDS = RealtimeCredentials(REALTIME_CREDENTIALS["apiKey"], REALTIME_CREDENTIALS["secret"],
                            REALTIME_CREDENTIALS["passphrase"])


class _FrozenClock:
    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


# --- wire -----------------------------------------------------------------------------------


def test_auth_and_subscribe_messages_match_the_official_client() -> None:
    assert json.loads(auth_message(CREDS, "1")) == {
        "op": "auth", "rid": "1", "auth": {"apiKey": "synthetic-key", "secret": "c3ludGhldGlj",
                                           "passphrase": "synthetic-pass"}}
    sub = json.loads(subscribe_message(ReferenceSymbols(chainlink="eth/usd"), "2"))
    assert sub == {"op": "subscribe", "rid": "2", "subscriptions": [
        {"channel": "price.crypto", "filter": {"symbol": "ethusd", "provider": "chainlink"}},
        {"channel": "price.crypto.twap", "filter": {"symbol": "ethusd", "window_seconds": 60,
                                                    "provider": "chainlink"}}]}
    bare = json.loads(subscribe_message(ReferenceSymbols(), "3", ("price.crypto",),
                                        no_provider=frozenset({"price.crypto"})))
    assert bare["subscriptions"] == [{"channel": "price.crypto", "filter": {"symbol": "btcusd"}}]


def test_credentials_need_all_three_and_never_print() -> None:
    full = Settings(polymarket_api_key="k", polymarket_api_secret="topsecret",  # type: ignore[arg-type]
                    polymarket_api_passphrase="p")  # type: ignore[arg-type]
    creds = RealtimeCredentials.from_settings(full)
    assert creds is not None
    assert (creds.key, creds.secret, creds.passphrase) == ("k", "topsecret", "p")
    assert "topsecret" not in repr(creds)
    partial = Settings(polymarket_api_key="k", polymarket_api_secret=" ")  # type: ignore[arg-type]
    assert RealtimeCredentials.from_settings(partial) is None
    endpoints = FeedEndpoints.from_settings(full)
    assert endpoints.realtime == "wss://ws-live-v2.polymarket.com/ws"
    assert "RealtimeCredentials(***)" in repr(endpoints)
    # The recorder writes asdict(endpoints): the secret must not become plain data there.
    assert "topsecret" not in repr(endpoints)
    assert "topsecret" not in str(asdict(endpoints))


# --- frames ---------------------------------------------------------------------------------


def _feed(ticks: list[ReferenceTick], now: float = 1_788_886_177.0) -> RealtimeFeed:
    clock = _FrozenClock(now)
    return RealtimeFeed("ws://127.0.0.1:9", clock, ticks.append, CREDS,
                        gate=ReferenceGate(clock))


@pytest.mark.parametrize("name", sorted(p.stem for p in SAMPLES.glob("*.json")))
def test_real_sdk_frames_through_the_feed(name: str) -> None:
    sample = json.loads((SAMPLES / f"{name}.json").read_text())
    ticks: list[ReferenceTick] = []
    feed = _feed(ticks)
    fresh = feed.handle(json.dumps(sample["body"]))
    expect = sample["expect"]
    if "ticks" in expect:
        assert fresh
        assert [(t.source, t.exact, t.observed_ts) for t in ticks] == [
            (e["source"], e["exact"], e["observed_ts"]) for e in expect["ticks"]]
        assert ticks[0].value == pytest.approx(float(expect["ticks"][0]["value"]), rel=1e-12)
    else:
        assert not fresh
        assert ticks == []
        if "drop" in expect:
            assert feed.counters.dropped[expect["drop"]] == 1


def _price(source: str, ts_ms: int, value: float, *, history: bool = False) -> str:
    point = {"timestamp": ts_ms, "value": value, "full_accuracy_value": f"{value:.6f}"}
    payload: dict[str, Any] = {"symbol": "btcusd", "source": source}
    payload.update({"data": [point]} if history else point)
    return json.dumps({"v": 1, "channel": "price.crypto", "seq": 1, "ts": ts_ms,
                       "snapshot": history, "payload": payload})


def test_only_a_chainlink_spot_price_is_the_reference() -> None:
    ticks: list[ReferenceTick] = []
    feed = _feed(ticks)
    assert not feed.handle(_price("pyth", 1_788_886_176_000, 78_810.0))
    assert feed.counters.dropped["wrong_source"] == 1
    assert feed.handle(_price("chainlink", 1_788_886_176_000, 78_803.76))
    assert [(t.source, t.value) for t in ticks] == [("chainlink", 78_803.76)]


def test_history_replayed_after_a_reconnect_is_skipped_not_dropped() -> None:
    ticks: list[ReferenceTick] = []
    feed = _feed(ticks)
    assert feed.handle(_price("chainlink", 1_788_886_175_000, 78_800.0))
    assert feed.handle(_price("chainlink", 1_788_886_176_000, 78_801.0))
    # The subscribe answer of a new session repeats the history: known, not a fault.
    assert not feed.handle(_price("chainlink", 1_788_886_175_000, 78_800.0, history=True))
    assert feed.counters.dropped_total == 0
    assert feed.counters.ignored == 1
    # A live update that goes back in time is a fault and counted.
    assert not feed.handle(_price("chainlink", 1_788_886_174_000, 78_799.0))
    assert feed.counters.dropped["out_of_order"] == 1
    assert len(ticks) == 2


# --- loopback -------------------------------------------------------------------------------


async def _until(predicate: Any, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)


@pytest.mark.server
async def test_authenticates_subscribes_streams_pings_and_reconnects() -> None:
    async with FakeRealtime(0.05, pyth=True) as fake:
        ticks: list[ReferenceTick] = []
        feed = RealtimeFeed(fake.url, CLOCK, ticks.append, CREDS, heartbeat_interval_s=0.2,
                            backoff=Backoff(first_s=0.05, cap_s=0.1))
        task = asyncio.create_task(feed.run())
        try:
            await _until(lambda: feed.subscribed.is_set()
                         and sum(t.source == "twap60" for t in ticks) >= 2 and fake.pings >= 1)
            first = [json.loads(m)["op"] for m in fake.connections[0].messages[:2]]
            assert first == ["auth", "subscribe"]
            assert fake.violations == []
            chainlink = [t.value for t in ticks if t.source == "chainlink"]
            assert chainlink
            assert set(chainlink) <= set(fake.chainlink_sent) | set(fake.history_sent)
            assert not set(chainlink) & set(fake.pyth_sent)
            assert feed.counters.dropped["wrong_source"] >= 1
            before = len(ticks)
            assert fake.drop_all() == 1
            await _until(lambda: len(fake.connections) == 2 and len(fake.subscriptions) == 2
                         and len(ticks) > before + 3)
            again = [json.loads(m)["op"] for m in fake.connections[1].messages[:2]]
            assert again == ["auth", "subscribe"]
            stamps = [t.observed_ts for t in ticks if t.source == "chainlink"]
            assert stamps == sorted(set(stamps))  # nothing delivered twice
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.mark.server
async def test_refused_credentials_end_the_feed_without_retrying() -> None:
    async with FakeRealtime(0.05) as fake:
        feed = RealtimeFeed(fake.url, CLOCK, lambda t: None,
                            RealtimeCredentials("synthetic-key", "wrong", "synthetic-pass"),
                            backoff=Backoff(first_s=0.05, cap_s=0.1))
        with pytest.raises(RealtimeAuthError, match=r"auth_invalid.*POLYMARKET_API_KEY"):
            await asyncio.wait_for(feed.run(), 5)
        assert len(fake.connections) == 1
        assert fake.auth_failures == 1
        assert "wrong" not in str(feed.rejection)


# --- LiveFeed -------------------------------------------------------------------------------

LENGTH = 4
SERIES = WindowSeries(slug_prefix="btc-updown-4s", length_s=LENGTH,
                      crypto_price_variant="synthetic")
FAST = FeedTimings(price_to_beat_poll_s=0.1, outcome_poll_s=0.1, startup_timeout_s=5.0)


@contextlib.asynccontextmanager
async def _venue() -> AsyncIterator[tuple[FakeHttp, dict[str, str], FakeRtds, FakeRealtime]]:
    with FakeHttp(length_s=LENGTH, prefix=SERIES.slug_prefix) as http:
        async with (FakeBinance(rate=50) as binance, FakeRtds(0.05) as rtds,
                    FakeRealtime(0.05, pyth=True) as realtime, FakeClobMarket(0.1) as clob):
            urls = dict(binance_ws=binance.url + "/ws/btcusdt@trade", binance_rest=http.url,
                        rtds=rtds.url, clob_ws=clob.url + "/ws/market", clob_rest=http.url,
                        gamma=http.url, crypto_price=http.crypto_price_url)
            yield http, urls, rtds, realtime


@pytest.mark.server
@pytest.mark.parametrize("channel", ["rtds", "realtime"])
async def test_live_feed_takes_the_reference_from_the_configured_channel(channel: str) -> None:
    async with _venue() as (http, urls, rtds, realtime):
        http.default_open_price = 100_000.0
        creds = CREDS if channel == "realtime" else None
        feed = LiveFeed(FeedEndpoints(**urls, realtime=realtime.url, realtime_credentials=creds),
                        CLOCK, series=SERIES, timings=FAST)
        async with feed:
            await _until(lambda: feed.snapshot() is not None
                         and feed.snapshot().reference_price is not None)  # type: ignore[union-attr]
            snap = feed.snapshot()
            assert snap is not None
            assert snap.settlement == "twap"  # the Gamma market's cryptoMarketConfig
            assert snap.settlement_window_s == 60.0
            used, unused = (realtime, rtds) if channel == "realtime" else (rtds, realtime)
            assert used.connections
            assert not unused.connections
            assert set(feed.counters) == {"binance", channel, "clob"}
            sent = realtime.chainlink_sent if channel == "realtime" else rtds.connections[0].sent
            await _until(lambda: feed.store.reference is not None
                         and feed.store.reference.value in sent)
            if channel == "realtime":
                assert feed.store.twap is not None
                assert feed.store.twap.value in realtime.twap_sent
                assert feed.store.reference is not None
                assert feed.store.reference.value not in realtime.pyth_sent


@pytest.mark.server
async def test_live_feed_start_names_refused_credentials() -> None:
    async with _venue() as (_http, urls, _rtds, realtime):
        bad = RealtimeCredentials("synthetic-key", "wrong", "synthetic-pass")
        feed = LiveFeed(FeedEndpoints(**urls, realtime=realtime.url, realtime_credentials=bad),
                        CLOCK, series=SERIES, timings=FAST)
        with pytest.raises(FeedError, match="refused the API credentials") as err:
            await feed.start()
        assert "\n" not in str(err.value)
        assert "wrong" not in str(err.value)


@pytest.mark.server
async def test_live_feed_start_names_the_realtime_url_it_cannot_reach() -> None:
    async with _venue() as (_http, urls, _rtds, _realtime):
        with closed_port() as port:
            feed = LiveFeed(FeedEndpoints(**urls, realtime=f"ws://127.0.0.1:{port}",
                                          realtime_credentials=CREDS),
                            CLOCK, series=SERIES, timings=FAST)
            with pytest.raises(FeedError, match=r"POLYMARKET_REALTIME_URL .*127\.0\.0\.1"):
                await feed.start()


# --- the store: TWAP settlement ---------------------------------------------------------------


def test_time_weighted_mean_of_a_step_path() -> None:
    ticks = [(90.0, 10.0), (101.0, 20.0), (130.0, 40.0)]
    # [100, 160]: 10 for 1 s, 20 for 29 s, 40 for 30 s.
    assert time_weighted_mean(ticks, 100.0, 160.0, 10.0) == pytest.approx(
        (10 + 20 * 29 + 40 * 30) / 60)
    assert time_weighted_mean(ticks, 100.0, 115.0, 10.0) == pytest.approx((10 + 20 * 14) / 15)
    assert time_weighted_mean(ticks, 100.0, 160.0, 5.0) is None  # start not covered
    assert time_weighted_mean(ticks[1:], 100.0, 160.0, 10.0) is None
    assert time_weighted_mean(ticks, 100.0, 100.0, 10.0) is None


def test_store_snapshot_carries_twap_settlement_and_the_mean_so_far() -> None:
    from feeds.binance import Trade
    from tools.polymarket.gamma import MarketWindow
    from tools.polymarket.store import SnapshotStore

    start = 1_788_886_800.0
    end = start + 900.0
    clock = _FrozenClock(end - 20.0)
    store = SnapshotStore(clock)  # type: ignore[arg-type]
    window = MarketWindow(
        slug="btc-updown-15m-1788886800", asset="BTC", condition_id="0xsynthetic",
        start_ts=start, end_ts=end, up_token_id="1", down_token_id="2", tick_size=0.01,
        min_order_shares=5.0, fee_rate=0.07, fee_exponent=1.0, twap_enabled=True,
        twap_lookback_s=60, accepting_orders=True, closed=False)
    store.set_window(window)
    store.on_trade(Trade(1, 100_010.0, 0.1, end - 21.0, end - 21.0, False))
    # Synthetic Chainlink ticks every 10 s from before the averaging window began.
    for k, ts in enumerate(range(int(end - 65), int(end - 20), 10)):
        store.on_reference(ReferenceTick("chainlink", "btc/usd", 100_000.0 + k, float(ts)))
    snap = store.snapshot()
    assert snap is not None
    assert snap.settlement == "twap"
    # Window [end-60, end-20]: 100000 (5 s), 100001 (10 s), 100002 (10), 100003 (10), 100004 (5).
    want = (100_000 * 5 + 100_001 * 10 + 100_002 * 10 + 100_003 * 10 + 100_004 * 5) / 40
    assert snap.settlement_partial_mean == pytest.approx(want, rel=1e-12)
    assert store.status().settlement_partial_mean == pytest.approx(want, rel=1e-12)
    clock.t = end - 90.0  # before the averaging window: nothing fixed yet
    early = store.snapshot()
    assert early is not None
    assert early.settlement_partial_mean is None
    point = SnapshotStore(clock)  # type: ignore[arg-type]
    point.set_window(replace(window, twap_enabled=False))
    point.on_trade(Trade(1, 100_010.0, 0.1, end - 91.0, end - 91.0, False))
    snap_point = point.snapshot()
    assert snap_point is not None
    assert snap_point.settlement == "point"
