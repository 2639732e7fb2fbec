"""Reference prices in both wire forms, error answers counted (never taken for heartbeats), and
the price to beat from Gamma's event cross-checked against the other verified sources."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from httpfakes import send_json, serving

from core.clock import ReplayClock
from core.settings import Settings
from tools.polymarket import rtds
from tools.polymarket.gamma import MarketWindow
from tools.polymarket.price_to_beat import (
    PRICE_TO_BEAT_TOLERANCE_REL,
    GammaEventClient,
    PriceToBeat,
    PriceToBeatSource,
    parse_event_prices,
)
from tools.polymarket.store import SnapshotStore

START = 1_767_200_400.0


def _frame(**payload: Any) -> str:
    return json.dumps({"topic": "crypto_prices_twap_sixty", "type": "update",
                       "timestamp": 1, "payload": {"symbol": "btc/usd",
                                                   "timestamp": 1_000, **payload}})


@pytest.mark.parametrize(("payload", "value"), [
    # E18 integer, with and without the display value beside it.
    ({"full_accuracy_value": "65000500000000000000000", "value": 65000.5}, 65000.5),
    ({"full_accuracy_value": "65000500000000000000000"}, 65000.5),
    # A plain decimal is the number itself, never divided by 1e18.
    ({"full_accuracy_value": "65000.5", "value": 65000.5}, 65000.5),
    ({"full_accuracy_value": "65000.5"}, 65000.5),
    # An integer the display value says is plain (a whole-dollar price).
    ({"full_accuracy_value": "65000", "value": 65000}, 65000.0),
])
def test_exact_value_in_either_form_is_the_price(payload: dict[str, Any], value: float
                                                 ) -> None:
    ticks = rtds.parse_frame(_frame(**payload))
    assert isinstance(ticks, list)
    assert ticks[0].value == value


@pytest.mark.parametrize("payload", [
    {"full_accuracy_value": "65000500000000000000000", "value": 64000.0},  # they disagree
    {"full_accuracy_value": "6.5e22", "value": 65000.0},  # a decimal that is not the value
    {"full_accuracy_value": "NaN"},
    {"full_accuracy_value": "65000.5", "value": "abc"},
])
def test_exact_and_display_values_that_disagree_are_dropped(payload: dict[str, Any]) -> None:
    assert rtds.parse_frame(_frame(**payload)) == "bad_price"


@pytest.mark.parametrize("frame", [
    '{"message": "Invalid request body", "connectionId": "x", "requestId": "y"}',
    '{"statusCode": 429, "body": "Too Many Requests"}',
    '{"op": "error", "rid": 3, "code": "bad_filter"}',
    '{"error": "unauthorized"}',
])
def test_error_answers_are_counted_not_taken_for_heartbeats(frame: str) -> None:
    assert rtds.parse_frame(frame) == rtds.VENUE_ERROR
    feed = rtds.RtdsFeed("ws://127.0.0.1:9", ReplayClock(START), lambda _t: None)
    assert feed.handle(frame) is False
    assert feed.counters.heartbeats == 0
    assert feed.counters.dropped[rtds.VENUE_ERROR] == 1


@pytest.mark.parametrize("frame", ["PONG", "", '{"op": "subscribed", "rid": 1}', "{}"])
def test_acknowledgements_are_not_errors(frame: str) -> None:
    assert rtds.parse_frame(frame) is None


def test_authenticated_channel_refuses_another_oracle() -> None:
    frame = {"v": 1, "channel": "price.crypto", "seq": 1, "ts": 1, "snapshot": False,
             "payload": {"symbol": "btcusd", "timestamp": 1000, "value": 1.0,
                         "full_accuracy_value": "1.0", "source": "pyth"}}
    assert rtds.parse_frame(json.dumps(frame)) == rtds.WRONG_SOURCE


# --- price to beat ---------------------------------------------------------------------------

def _window() -> MarketWindow:
    return MarketWindow(slug="btc-updown-15m-1767200400", asset="BTC", condition_id="0xc",
                        start_ts=START, end_ts=START + 900, up_token_id="u", down_token_id="d",
                        tick_size=0.01, min_order_shares=5, fee_rate=0.07, fee_exponent=1,
                        twap_enabled=True, twap_lookback_s=60, accepting_orders=True,
                        closed=False)


def test_tolerance_default_is_the_setting() -> None:
    assert PRICE_TO_BEAT_TOLERANCE_REL == Settings.model_fields[
        "price_to_beat_tolerance_rel"].default == 1e-4


@pytest.mark.parametrize(("second", "verified"), [
    (87_000.0 * (1 + 0.5e-4), True),   # within 1e-4: the same number, rounded differently
    (87_000.0 * (1 + 3e-4), False),    # beyond: one of them is wrong, trade nothing
])
def test_verified_sources_that_disagree_leave_it_unverified(second: float, verified: bool
                                                           ) -> None:
    pairs: tuple[tuple[PriceToBeatSource, PriceToBeatSource], ...] = (
        ("crypto_price_api", "gamma_event"),
        ("gamma_event", "crypto_price_api"), ("twap_stream", "gamma_event"))
    for first_source, second_source in pairs:
        store = SnapshotStore(ReplayClock(START + 60))
        store.set_window(_window())
        store.offer_price_to_beat(PriceToBeat(_window().market_id, 87_000.0, first_source,
                                              True))
        store.offer_price_to_beat(PriceToBeat(_window().market_id, second, second_source,
                                              True))
        ptb = store.price_to_beat
        assert ptb is not None
        assert ptb.verified is verified, (first_source, second_source)
        if not verified:
            # A later agreeing source cannot re-verify a disputed window.
            store.offer_price_to_beat(PriceToBeat(_window().market_id, 87_000.0,
                                                  "crypto_price_api", True))
            assert store.price_to_beat is not None
            assert not store.price_to_beat.verified


def test_tolerance_is_configurable() -> None:
    store = SnapshotStore(ReplayClock(START + 60), price_to_beat_tolerance=1e-2)
    store.set_window(_window())
    store.offer_price_to_beat(PriceToBeat(_window().market_id, 87_000.0, "gamma_event", True))
    store.offer_price_to_beat(PriceToBeat(_window().market_id, 87_100.0, "crypto_price_api",
                                          True))
    assert store.price_to_beat is not None
    assert store.price_to_beat.verified


@pytest.mark.parametrize(("doc", "ptb", "final"), [
    ({"slug": "s", "eventMetadata": {"priceToBeat": 83884.316, "finalPrice": 83900.1}},
     83884.316, 83900.1),
    ([{"slug": "s", "eventMetadata": {"priceToBeat": "80424.78"}}], 80424.78, None),
    ({"slug": "s", "eventMetadata": json.dumps({"priceToBeat": 1.5})}, 1.5, None),
    ({"slug": "s"}, None, None),
    ({"slug": "s", "eventMetadata": {"priceToBeat": -1}}, None, None),
])
def test_event_prices(doc: Any, ptb: float | None, final: float | None) -> None:
    prices = parse_event_prices(doc)
    assert prices is not None
    assert (prices.price_to_beat, prices.final_price) == (ptb, final)


@contextmanager
def gamma_events(events: dict[str, Any]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            slug = self.path.removeprefix("/events/slug/")
            if slug in events:
                send_json(self, 200, events[slug])
            else:
                send_json(self, 404, {"error": "not found"})

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as srv:
        yield f"http://127.0.0.1:{srv.server_address[1]}"


def test_gamma_event_client_on_loopback() -> None:
    window = _window()
    event = {"slug": window.slug, "eventMetadata": {"priceToBeat": 87123.45}}

    async def run(url: str) -> tuple[PriceToBeat | None, PriceToBeat | None]:
        async with httpx.AsyncClient() as http:
            client = GammaEventClient(url, http)
            found = await client.price_to_beat(window)
            # A window Gamma does not list (404) has no price to beat from it.
            missing = await GammaEventClient(url + "/nothing", http).price_to_beat(window)
            return found, missing

    with gamma_events({window.slug: event}) as url:
        found, missing = asyncio.run(run(url))
    assert found == PriceToBeat(window.market_id, 87123.45, "gamma_event", True)
    assert missing is None
