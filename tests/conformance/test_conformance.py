"""Our parsers against real captured venue traffic (``samples/<kind>/<name>.json``).

Each sample is a frame or response captured from the venue, an official client's test fixture
or a documentation example, with its provenance under ``_provenance`` (listed in
``samples/PROVENANCE.md``).  Every sample goes through the parser the live code uses, and the
parsed values are compared with the values written in the sample itself: a parser that only
ever met our own fakes agrees with our fakes, not with the venue.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.fees import FeeSchedule
from feeds.binance import parse_klines, parse_trade
from tools.polymarket import market_channel, rtds
from tools.polymarket.gamma import GammaError, parse_market, stated_fees
from tools.polymarket.wire import (
    VenueFormatError,
    classify_post,
    parse_gamma_market,
    refusal_scope,
)

SAMPLES = Path(__file__).parent / "samples"
FALLBACK_FEES = FeeSchedule(0.07, 1.0)


def _load(kind: str) -> list[Any]:
    paths = sorted((SAMPLES / kind).glob("*.json"))
    assert paths, f"no {kind} samples"
    return [pytest.param(json.loads(p.read_text()), id=p.stem) for p in paths]


def _utc(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_every_sample_names_its_provenance() -> None:
    for path in SAMPLES.rglob("*.json"):
        prov = json.loads(path.read_text())["_provenance"]
        assert ("repository" in prov and "path" in prov) or "url" in prov \
            or "index_file_id" in prov, path
        assert path.stem in (SAMPLES / "PROVENANCE.md").read_text(), path


def test_corpus_covers_every_kind() -> None:
    counts = {d.name: len(list(d.glob("*.json"))) for d in SAMPLES.iterdir() if d.is_dir()}
    assert sum(counts.values()) >= 40
    assert set(counts) >= {"gamma", "market_channel", "rtds", "realtime", "binance", "orders"}


# --- RTDS and the authenticated realtime channel -----------------------------------------

@pytest.mark.parametrize("sample", _load("rtds") + _load("realtime"))
def test_reference_frames(sample: dict[str, Any]) -> None:
    symbols = rtds.ReferenceSymbols(**sample["symbols"])
    parsed = rtds.parse_frame(json.dumps(sample["body"]), symbols)
    expect = sample["expect"]
    if "drop" in expect:
        assert parsed == expect["drop"]
        return
    if expect.get("ack"):
        assert parsed is None
        return
    assert isinstance(parsed, list), parsed
    assert len(parsed) == len(expect["ticks"])
    for tick, want in zip(parsed, expect["ticks"], strict=True):
        assert tick.source == want["source"]
        # The exact decimal, to float precision: a price scaled by 1e18 cannot pass.
        assert tick.value == pytest.approx(float(Decimal(want["value"])), rel=1e-12)
        assert tick.observed_ts == pytest.approx(want["observed_ts"], abs=1e-6)
        assert tick.exact == want.get("exact")


@pytest.mark.parametrize("sample", _load("rtds") + _load("realtime"))
def test_reference_frames_agree_with_their_own_display_value(sample: dict[str, Any]) -> None:
    """Where a frame carries both the exact and the display value (rounded, e.g. to cents on
    the authenticated channel), we return the same price to within that rounding."""
    payload = sample["body"].get("payload") or {}
    points = payload.get("data") or [payload]
    parsed = rtds.parse_frame(json.dumps(sample["body"]),
                              rtds.ReferenceSymbols(**sample["symbols"]))
    if not isinstance(parsed, list):
        return
    for tick, point in zip(parsed, points, strict=True):
        assert tick.value == pytest.approx(float(point["value"]), rel=1e-6)


# --- CLOB market channel --------------------------------------------------------------------

@pytest.mark.parametrize("sample", _load("market_channel"))
def test_market_channel_events(sample: dict[str, Any]) -> None:
    body, expect = sample["body"], sample["expect"]
    events = market_channel.parse_frame(json.dumps(body))
    assert events is not None
    if expect.get("ignored"):
        assert events == []
        return
    assert len(events) == 1
    event = events[0]
    assert not isinstance(event, str), event
    ts = int(body["timestamp"]) / 1000
    kind = expect["event"]
    if kind == "book":
        assert isinstance(event, market_channel.BookSnapshot)
        assert event.asset_id == body["asset_id"]
        assert event.market == body["market"]
        assert event.bids == tuple((float(b["price"]), float(b["size"])) for b in body["bids"])
        assert event.asks == tuple((float(a["price"]), float(a["size"])) for a in body["asks"])
        assert event.ts == ts
        if "best_bid" in expect:
            assert max(p for p, _ in event.bids) == float(expect["best_bid"])
            assert min(p for p, _ in event.asks) == float(expect["best_ask"])
    elif kind == "price_change":
        assert isinstance(event, market_channel.PriceChange)
        assert event.market == body["market"]
        assert event.ts == ts
        assert [(c.asset_id, c.price, c.size, c.side) for c in event.changes] == [
            (c["asset_id"], float(c["price"]), float(c["size"]), c["side"])
            for c in body["price_changes"]]
    elif kind == "last_trade_price":
        assert isinstance(event, market_channel.LastTradePrice)
        assert (event.asset_id, event.price, event.size, event.ts) == (
            body["asset_id"], float(body["price"]), float(body["size"]), ts)
    elif kind == "tick_size_change":
        assert isinstance(event, market_channel.TickSizeChange)
        assert (event.old_tick_size, event.new_tick_size) == (
            float(body["old_tick_size"]), float(body["new_tick_size"]))
    elif kind == "best_bid_ask":
        assert isinstance(event, market_channel.BestBidAsk)
        assert (event.best_bid, event.best_ask) == (float(body["best_bid"]),
                                                    float(body["best_ask"]))
    elif kind == "market_resolved":
        assert isinstance(event, market_channel.MarketResolved)
        assert (event.market, event.winning_asset_id, event.winning_outcome) == (
            body["market"], body["winning_asset_id"], body["winning_outcome"])
    else:  # pragma: no cover - a sample with an unknown expectation is a corpus bug
        pytest.fail(f"unknown expectation {kind}")


# --- Binance --------------------------------------------------------------------------------

@pytest.mark.parametrize("sample", _load("binance"))
def test_binance(sample: dict[str, Any]) -> None:
    body, expect = sample["body"], sample["expect"]
    if isinstance(body, dict):
        trade = parse_trade(json.dumps(body), expect["symbol"])
        assert not isinstance(trade, str), trade
        assert trade.trade_id == body["t"]
        assert trade.price == float(body["p"])
        assert trade.qty == float(body["q"])
        assert trade.trade_ts == body["T"] / 1000
        assert trade.event_ts == body["E"] / 1000
        assert trade.buyer_is_maker is body["m"]
        return
    interval = expect["interval_s"]
    klines = parse_klines(body, interval, now=math.inf)
    assert len(klines) == len(body)
    for k, row in zip(klines, body, strict=True):
        assert k.open_ts == row[0] / 1000
        assert (k.open, k.high, k.low, k.close, k.volume) == tuple(float(v) for v in row[1:6])
        # Binance's closeTime is the last millisecond of the candle; ours is its boundary.
        assert k.close_ts == pytest.approx(row[6] / 1000, abs=0.0011)


# --- POST /order answers --------------------------------------------------------------------

@pytest.mark.parametrize("sample", _load("orders"))
def test_order_answers(sample: dict[str, Any]) -> None:
    body, expect = sample["body"], sample["expect"]
    result = classify_post(sample["http_status"], content_type="application/json",
                           text=json.dumps(body), retry_after=None)
    assert (result.kind, result.code) == (expect["kind"], expect["code"])
    if "scope" in expect:
        assert refusal_scope(result.code) == expect["scope"]
    if result.kind == "accepted":
        assert result.order_id == expect["order_id"]
        assert result.venue_status == expect["venue_status"]
        assert result.making_amount == (Decimal(expect["making_amount"])
                                        if "making_amount" in expect else None)
        assert result.taking_amount == (Decimal(expect["taking_amount"])
                                        if "taking_amount" in expect else None)
        assert list(result.trade_ids) == expect.get("trade_ids", [])


# --- Gamma ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sample", _load("gamma"))
def test_gamma_markets(sample: dict[str, Any]) -> None:
    body, expect = sample["body"], sample["expect"]
    stated = stated_fees(body)
    assert stated is not None
    assert stated[0] == expect["fee_rate"]
    if "refused" in expect:
        with pytest.raises(VenueFormatError, match=expect["refused"]):
            parse_gamma_market(body, fallback_fees=FALLBACK_FEES)
        with pytest.raises(GammaError, match=expect["refused"]):
            parse_market(body)
        return
    info = parse_gamma_market(body, fallback_fees=FALLBACK_FEES)
    window = parse_market(body)
    for parsed in (info, window):
        assert parsed.up_token_id == expect["up_token_id"]
        assert parsed.down_token_id == expect["down_token_id"]
    assert info.condition_id == body["conditionId"]
    assert info.slug == body["slug"]
    assert (info.window_start, info.window_end) == (_utc(expect["start"]), _utc(expect["end"]))
    assert (window.start_ts, window.end_ts) == (_utc(expect["start"]), _utc(expect["end"]))
    assert info.tick_size == Decimal(expect["tick"])
    assert info.min_order_shares == Decimal(expect["min_shares"])
    assert info.fee_schedule.rate == expect["fee_rate"] == window.fee_rate
    assert info.seconds_delay == expect["seconds_delay"]
    assert (info.up_price, info.down_price) == (Decimal(expect["up_price"]),
                                                Decimal(expect["down_price"]))
    assert info.accepting_orders is body["acceptingOrders"]
    assert info.closed is body["closed"]
