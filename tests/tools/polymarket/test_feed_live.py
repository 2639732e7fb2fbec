"""``LiveFeed`` in-process against the loopback venues: start-up failures, window roll-over
with resubscription, the price to beat from each source (and the guard's view of it), the
outcome after the close, and ``Recorder`` across a roll-over.

Windows here are 2 s long (a synthetic series) so roll-overs happen within the test."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from feedfakes import (
    FakeBinance,
    FakeClobMarket,
    FakeHttp,
    FakeRtds,
    closed_port,
    condition_id,
    token_ids,
)

from core.clock import SystemClock
from core.guard import GuardLimits, evaluate
from core.records import FairValueEstimate, LedgerView, TradeProposal
from feeds.recorded import load_dataset
from feeds.ws import public_url
from tools.polymarket.gamma import WindowSeries
from tools.polymarket.live_feed import FeedEndpoints, FeedTimings, FeedUnreachable, LiveFeed
from tools.polymarket.recorder import Recorder, RecordError

pytestmark = pytest.mark.server
CLOCK = SystemClock()
LENGTH = 2
SERIES = WindowSeries(slug_prefix="btc-updown-2s", length_s=LENGTH,
                      crypto_price_variant="synthetic")
FAST = FeedTimings(price_to_beat_poll_s=0.1, outcome_poll_s=0.1, startup_timeout_s=5.0)


class Venue:
    def __init__(self, http: FakeHttp, binance: FakeBinance, rtds: FakeRtds,
                 clob: FakeClobMarket) -> None:
        self.http, self.binance, self.rtds, self.clob = http, binance, rtds, clob

    def endpoints(self, **over: str) -> FeedEndpoints:
        values = dict(binance_ws=self.binance.url + "/ws/btcusdt@trade",
                      binance_rest=self.http.url, rtds=self.rtds.url,
                      clob_ws=self.clob.url + "/ws/market", clob_rest=self.http.url,
                      gamma=self.http.url, crypto_price=self.http.crypto_price_url)
        values.update(over)
        return FeedEndpoints(**values)


@contextlib.asynccontextmanager
async def loopback(*, twap: bool = False) -> AsyncIterator[Venue]:
    with FakeHttp(length_s=LENGTH, prefix=SERIES.slug_prefix) as http:
        async with (FakeBinance(rate=50) as binance, FakeRtds(0.05, twap=twap) as rtds,
                    FakeClobMarket(0.1) as clob):
            yield Venue(http, binance, rtds, clob)


async def wait_for(predicate: Any, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)


async def test_start_names_the_websocket_it_cannot_reach() -> None:
    async with loopback() as venue:
        with closed_port() as port:
            feed = LiveFeed(venue.endpoints(rtds=f"ws://127.0.0.1:{port}"), CLOCK,
                            series=SERIES, timings=FAST)
            began = time.monotonic()
            with pytest.raises(FeedUnreachable, match=r"POLYMARKET_RTDS_URL .*127\.0\.0\.1"):
                await feed.start()
            assert time.monotonic() - began < 3.0
    assert not feed._tasks  # nothing left running


async def test_gamma_without_the_window_is_a_clear_error() -> None:
    async with loopback() as venue:
        venue.http.gamma_status = 503
        feed = LiveFeed(venue.endpoints(), CLOCK, series=SERIES, timings=FAST)
        with pytest.raises(FeedUnreachable, match=r"POLYMARKET_GAMMA_URL.*HTTP 503"):
            await feed.start()


async def test_roll_over_resubscribes_and_resolves_each_window(tmp_path: Path) -> None:
    async with loopback() as venue:
        venue.http.default_open_price = 100_000.0
        feed = LiveFeed(venue.endpoints(), CLOCK, series=SERIES, timings=FAST)
        recorder = Recorder(tmp_path / "rec", feed, CLOCK, sample_s=0.1)
        recorder.prepare()
        stop = asyncio.Event()
        async with feed:
            first = feed.window
            assert first is not None
            venue.http.close_prices[int(first.start_ts)] = 99_000.0  # synthetic: Down wins
            rec = asyncio.create_task(recorder.run(stop))
            await wait_for(lambda: len(feed.windows) >= 3, 3 * LENGTH + 3)
            second = feed.windows[1]
            # The venue resolves the second window over the market channel (repeated: a
            # roll-over may be resubscribing at the moment of any one broadcast).
            for _ in range(50):
                if second.market_id in feed.store.outcomes:
                    break
                await venue.clob.broadcast({
                    "event_type": "market_resolved", "id": "1", "market": second.condition_id,
                    "assets_ids": list(second.token_ids), "winning_asset_id": second.up_token_id,
                    "winning_outcome": "Up", "timestamp": str(int(time.time() * 1000))})
                await asyncio.sleep(0.1)
            await wait_for(lambda: first.market_id in feed.store.outcomes
                           and second.market_id in feed.store.outcomes, 5)
            await wait_for(lambda: feed.store.price_to_beat is not None, 2)
            ptb = feed.store.price_to_beat
            assert ptb is not None
            assert ptb.market_id == feed.windows[-1].market_id
            stop.set()
            summary = await rec

    starts = [int(w.start_ts) for w in feed.windows]
    assert [b - a for a, b in itertools.pairwise(starts)] == [LENGTH] * (len(starts) - 1)
    # Every window got its own subscription; the previous window's tokens linger (for its
    # market_resolved) until it resolves.
    subs = venue.clob.subscriptions
    assert subs[0] == list(token_ids(starts[0]))
    assert subs[1] == [*token_ids(starts[1]), *token_ids(starts[0])]
    assert feed.counters["clob"].ignored > 0  # the lingering tokens' book events
    assert feed.store.outcomes[first.market_id].outcome == "down"
    assert feed.store.outcomes[first.market_id].source == "crypto_price_api"
    assert feed.store.outcomes[second.market_id].outcome == "up"
    assert feed.store.outcomes[second.market_id].source == "market_resolved"
    assert (ptb.source, ptb.verified) == ("crypto_price_api", True)
    assert second.condition_id == condition_id(starts[1])
    assert feed.counters["clob"].dropped.get("unknown_asset", 0) == 0

    # The recording spans the roll-overs and is a valid dataset.
    assert summary.windows >= 3
    dataset = load_dataset(tmp_path / "rec")
    by_id = {m.market_id: m for m in dataset.markets}
    assert by_id[first.market_id].outcome == "down"
    assert by_id[second.market_id].outcome == "up"
    # (The first window may have been nearly over at start: its price to beat can be missing,
    # never wrong.)
    first_ptb, *later = [m.price_to_beat for m in dataset.markets]
    assert first_ptb in (None, 100_000.0)
    assert later == [100_000.0] * len(later)
    assert sum(len(b) for b in dataset.books.values()) >= 5


async def test_price_to_beat_from_the_twap_stream_when_the_endpoint_fails() -> None:
    async with loopback(twap=True) as venue:
        venue.http.crypto_price_status = 500
        feed = LiveFeed(venue.endpoints(), CLOCK, series=SERIES, timings=FAST)
        async with feed:
            start = feed.windows[0].start_ts
            await wait_for(lambda: len(feed.windows) >= 2, LENGTH + 3)
            await wait_for(lambda: feed.store.price_to_beat is not None, 2)
            ptb = feed.store.price_to_beat
            window = feed.window
    assert ptb is not None
    assert window is not None
    assert window.start_ts > start
    assert (ptb.market_id, ptb.source, ptb.verified) == (window.market_id, "twap_stream", True)
    assert ptb.observed_ts == window.start_ts


async def test_first_chainlink_tick_is_unverified_and_the_guard_refuses_it() -> None:
    async with loopback() as venue:
        venue.http.crypto_price_status = 500
        feed = LiveFeed(venue.endpoints(), CLOCK, series=SERIES, timings=FAST)
        async with feed:
            await wait_for(lambda: len(feed.windows) >= 2, LENGTH + 3)
            await wait_for(lambda: feed.store.price_to_beat is not None, 2)
            snap = feed.snapshot()
    assert snap is not None
    assert snap.price_to_beat is not None
    assert snap.price_to_beat_verified is False
    assert feed.store.price_to_beat is not None
    assert feed.store.price_to_beat.source == "first_chainlink_tick"
    fair = FairValueEstimate(fair_up=0.95, price=snap.price, price_to_beat=snap.price_to_beat,
                             price_to_beat_verified=False, time_to_close_s=1.0,
                             sigma_per_sqrt_s=0.0001, log_moneyness=0.0)
    proposal = TradeProposal(side="up", stake_usd=10.0, confidence=95, fair_p=0.95, ask=0.56,
                             worst_price=0.58)
    verdict = evaluate(proposal, snap, fair, GuardLimits(), LedgerView(), snap.as_of,
                       kill_switch_engaged=False)
    assert not verdict.approved
    assert "price to beat not verified" in [h.detail for h in verdict.rules_fired]


def test_recorder_refuses_a_directory_holding_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "markets.csv").write_text("market_id\n")
    feed = LiveFeed(FeedEndpoints("ws://x", "http://x", "ws://x", "ws://x", "http://x",
                                  "http://x", "http://x"), CLOCK)
    with pytest.raises(RecordError, match="already holds a dataset"):
        Recorder(tmp_path, feed, CLOCK).prepare()


def test_urls_in_logs_and_recordings_keep_no_credentials() -> None:
    assert public_url("https://user:s3cret@gamma.example/api?key=abc") == \
        "https://gamma.example/api"
    assert public_url("wss://h:9443/ws/btcusdt@trade") == "wss://h:9443/ws/btcusdt@trade"
    error = FeedUnreachable("POLYMARKET_GAMMA_URL", "http://u:pw@127.0.0.1:9?token=t", "refused")
    assert "pw" not in str(error)
    assert "token" not in str(error)


def test_status_line_reads_like_the_market() -> None:
    from agent.cli.market_data import status_line
    from tools.polymarket.store import LiveStatus

    line = status_line(LiveStatus(
        as_of=1_789_999_500.0, market_id="btc-updown-15m-1789999200",
        window_start=1_789_999_200.0, window_end=1_790_000_100.0, time_to_close_s=600.0,
        btc_price=100_012.5, btc_price_age_s=0.2, reference_price=100_001.25,
        reference_age_s=0.8, twap60=None, price_to_beat=100_000.0,
        price_to_beat_verified=False, price_to_beat_source="first_chainlink_tick",
        up_bid=0.55, up_ask=0.56, down_bid=0.44, down_ask=0.45, book_age_s=0.3,
        tick_size=0.01))
    assert "BTC 100012.50 (0.2s)" in line
    assert "beat 100000.00 UNVERIFIED (first_chainlink_tick)" in line
    assert "Up 0.550/0.560" in line
    assert "close in 10:00" in line
