"""The venue's refusals as the docs and the official client list them: each maps to one named
state, account restrictions stop the session (never read as market state), venue-wide halts
back off like a restart, a "delayed" answer is journaled as delayed and looked up after the
market's taker delay, never re-sent.  Broker tests run against the loopback fake CLOB."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fakeclob import FakeClob, FakeMarket, serve
from livekit import live_settings, snapshot_for

from core.records import ExecutionReport
from tools.polymarket.broker import ENGINE_RESTART_BACKOFF_S, LiveClobBroker
from tools.polymarket.wire import (
    VenueTrade,
    classify_post,
    normalise_trade_status,
    parse_trades,
    refusal_scope,
)

# docs.polymarket.com, "Placing orders" error table (errorMsg of POST /order) and the error
# codes page; each message is the documented wording or code name.
DOCUMENTED: list[tuple[int, str, str, str, str]] = [
    (400, "INVALID_ORDER_MIN_TICK_SIZE: order is invalid. Price (0.555) breaks minimum tick "
          "size rule: 0.01", "rejected", "invalid_precision", "order"),
    (400, "INVALID_ORDER_MIN_SIZE: order is invalid. Size (2) lower than the minimum: 5",
     "rejected", "below_minimum_size", "order"),
    (400, "INVALID_ORDER_DUPLICATED: order is invalid. Duplicated. Same order has already been "
          "placed, can't be placed again", "unknown", "duplicate_order", "order"),
    (400, "INVALID_ORDER_NOT_ENOUGH_BALANCE: not enough balance / allowance", "rejected",
     "insufficient_balance", "order"),
    (400, "INVALID_ORDER_EXPIRATION: invalid expiration", "rejected", "invalid_expiration",
     "order"),
    (400, "INVALID_ORDER_ERROR: could not insert order", "rejected", "order_rejected", "order"),
    (400, "EXECUTION_ERROR: could not run the execution", "unknown", "execution_error", "order"),
    (400, "DELAYING_ORDER_ERROR: error delaying the order", "unknown", "delay_failed", "order"),
    (400, "FOK_ORDER_NOT_FILLED_ERROR: order couldn't be fully filled, FOK orders are fully "
          "filled/killed", "rejected", "fok_not_filled", "order"),
    (400, "MARKET_NOT_READY: the market is not yet ready to process new orders", "rejected",
     "market_not_ready", "market"),
    (503, "Trading is currently disabled. Check polymarket.com for updates", "rejected",
     "trading_disabled", "venue"),
    (503, "Trading is currently cancel-only. New orders are not accepted, but cancels are "
          "allowed.", "rejected", "cancel_only", "venue"),
    (403, "Trading restricted in your region, please refer to available regions - "
          "https://docs.polymarket.com/developers/CLOB/geoblock", "rejected", "geoblocked",
     "account"),
    (400, "address banned", "rejected", "account_banned", "account"),
    (400, "order rejected: account is in closed only mode", "rejected",
     "account_closed_only", "account"),
    (400, "market is closed", "rejected", "market_closed", "market"),
]


@pytest.mark.parametrize(("status", "message", "kind", "code", "scope"), DOCUMENTED)
def test_every_documented_refusal_is_named(status: int, message: str, kind: str, code: str,
                                           scope: str) -> None:
    result = classify_post(status, content_type="application/json",
                           text=json.dumps({"error": message}), retry_after=None)
    assert (result.kind, result.code, refusal_scope(result.code)) == (kind, code, scope)
    # The same words in a 200 answer's errorMsg mean the same.
    in_body = classify_post(200, content_type="application/json", retry_after=None,
                            text=json.dumps({"success": False, "errorMsg": message}))
    assert (in_body.kind, in_body.code) == (kind, code)


def test_order_delayed_is_an_accepted_order_held_not_a_refusal() -> None:
    answer = {"success": True, "errorMsg": "order match delayed due to market conditions",
              "orderID": "0xab", "status": "delayed"}
    result = classify_post(200, content_type="application/json", text=json.dumps(answer),
                           retry_after=None)
    assert (result.kind, result.venue_status, result.order_id) == ("accepted", "delayed", "0xab")


def test_a_gateway_503_page_is_still_unknown_but_a_halt_answer_is_not() -> None:
    page = classify_post(503, content_type="text/html", text="<html>503</html>",
                         retry_after=None)
    assert (page.kind, page.code) == ("unknown", "venue_5xx")
    halt = classify_post(503, content_type="application/json", retry_after="30",
                         text=json.dumps({"error": DOCUMENTED[10][1]}))
    assert (halt.kind, halt.code, halt.retry_after_s) == ("rejected", "trading_disabled", 30.0)


@pytest.mark.parametrize(("raw", "status", "final"), [
    ("MATCHED", "MATCHED", False), ("TRADE_STATUS_MATCHED_NOT_BROADCASTED",
                                    "MATCHED_NOT_BROADCASTED", False),
    ("TRADE_STATUS_MINED", "MINED", False), ("retrying", "RETRYING", False),
    ("TRADE_STATUS_CONFIRMED", "CONFIRMED", True), ("FAILED", "FAILED", True),
])
def test_trade_statuses_only_confirmed_and_failed_are_final(raw: str, status: str,
                                                            final: bool) -> None:
    assert normalise_trade_status(raw) == status
    trades, _ = parse_trades({"data": [{"id": "t", "price": "0.5", "size": "10",
                                        "status": raw}], "next_cursor": "LTE="})
    trade: VenueTrade = trades[0]
    assert (trade.status, trade.final, trade.failed) == (status, final, status == "FAILED")


# --- the broker against the fake venue --------------------------------------------------------

@dataclass
class Recorder:
    """The broker's order store: what it journaled, in order."""

    signed: list[str] = field(default_factory=list)
    statuses: list[tuple[str, str]] = field(default_factory=list)

    def record_signed_order(self, *, order_id: str, **_: Any) -> None:
        self.signed.append(order_id)

    def record_venue_status(self, order_id: str, *, venue_status: str,
                            trade_ids: tuple[str, ...] = (), ts: float) -> None:
        self.statuses.append((order_id, venue_status))


class Clock:
    """Monotonic time the broker's own sleeps advance: waits are measured, not slept."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@dataclass
class Venue:
    fake: FakeClob
    broker: LiveClobBroker
    store: Recorder
    clock: Clock

    def market(self, n: int = 1, **kw: Any) -> FakeMarket:
        return self.fake.add_market(f"btc-updown-15m-r{n}", window_start=time.time() - 300.0,
                                    **kw)

    def buy(self, market: FakeMarket, order_id: str) -> ExecutionReport:
        return self.broker.place_market_buy(order_id=order_id,
                                            snapshot=snapshot_for(market, time.time()),
                                            side="up", stake_usd=10.0, worst_price=0.57)


@contextmanager
def open_venue(tmp_path: Path) -> Iterator[Venue]:
    key = Account.create()
    fake = FakeClob(address=key.address)
    clock, store = Clock(), Recorder()
    with serve(fake, hang_s=1.0) as url:
        settings = live_settings(url, key.key.hex(), tmp_path)
        broker = LiveClobBroker.from_settings(
            settings, store=store, monotonic=clock.monotonic, sleep=clock.sleep,
            not_found_grace_s=0.3, poll_interval_s=0.05)
        broker.connect()
        try:
            yield Venue(fake, broker, store, clock)
        finally:
            broker.close()


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[Venue]:
    with open_venue(tmp_path) as v:
        yield v


@pytest.mark.server
@pytest.mark.parametrize("fault", ["geoblocked_403", "closed_only"])
def test_account_restriction_stops_every_later_order_and_is_not_market_state(
        venue: Venue, fault: str) -> None:
    market = venue.market()
    venue.fake.inject(fault)
    first = venue.buy(market, "o1")
    assert first.status == "killed"
    code = {"geoblocked_403": "geoblocked", "closed_only": "account_closed_only"}[fault]
    assert first.reason is not None
    assert first.reason.startswith(code)
    assert venue.broker.account_restriction is not None
    # The market is open; the account is not.  No later order is sent, however long we wait.
    venue.clock.t += 10 * ENGINE_RESTART_BACKOFF_S
    second = venue.buy(market, "o2")
    assert second.reason is not None
    assert second.reason.startswith("account_restricted")
    assert "market_closed" not in second.reason
    assert venue.fake.post_count() == 1


@pytest.mark.server
@pytest.mark.parametrize(("fault", "code"), [("trading_disabled_503", "trading_disabled"),
                                             ("cancel_only_503", "cancel_only")])
def test_venue_wide_halt_backs_off_like_an_engine_restart(venue: Venue, fault: str,
                                                          code: str) -> None:
    market = venue.market()
    venue.fake.inject(fault)
    first = venue.buy(market, "o1")
    assert first.status == "killed"
    assert first.reason is not None
    assert first.reason.startswith(code)
    # The order was refused, not lost: nothing looked up as "unknown".
    assert venue.store.statuses[-1] == ("o1", f"rejected:{code}")
    held = venue.buy(market, "o2")
    assert held.reason is not None
    assert held.reason.startswith("backing_off")
    assert venue.fake.post_count() == 1
    venue.clock.t += ENGINE_RESTART_BACKOFF_S + 1
    after = venue.buy(market, "o3")
    assert after.status == "filled"
    assert venue.fake.post_count() == 2


@pytest.mark.server
def test_delayed_answer_is_journaled_delayed_and_looked_up_after_the_taker_delay(
        venue: Venue) -> None:
    market = venue.market(seconds_delay=3)
    venue.fake.inject("delayed")
    report = venue.buy(market, "o1")
    assert report.status == "filled"
    # Journaled as delayed before anything else happened to it, then its final state.
    assert venue.store.statuses[0] == ("o1", "delayed")
    assert venue.store.statuses[-1][1] == "matched"
    # The first wait covered the market's delay before the first lookup; sent exactly once.
    assert venue.clock.sleeps
    assert venue.clock.sleeps[0] == pytest.approx(3.0, abs=0.5)
    assert list(venue.fake.posts_per_hash().values()) == [1]


@pytest.mark.server
def test_delayed_order_still_held_at_the_deadline_stays_named_delayed(venue: Venue) -> None:
    market = venue.market(seconds_delay=1)
    venue.fake.delayed_lookups = 10**6  # the venue never lets go within the lookup time
    venue.fake.inject("delayed")
    report = venue.buy(market, "o1")
    assert report.status == "error"
    assert report.reason is not None
    assert report.reason.startswith("delayed")
    assert list(venue.fake.posts_per_hash().values()) == [1]
