"""Feed edges without sockets: wire frames into records or drop reasons, the cross-frame
gates, order books, Gamma/klines/crypto-price parsing and the snapshot store.

Every frame here is synthetic, in the venues' real formats."""

from __future__ import annotations

import email.utils
import json
import math

import numpy as np
import pytest

from core.clock import ReplayClock
from core.fees import dated_fee_schedule
from feeds import binance
from feeds.binance import Kline, KlinesError, Trade, TradeGate, parse_klines, parse_trade
from feeds.candles import build_candles
from feeds.ws import MAX_RETRY_AFTER_S, Backoff, retry_after_s
from tools.polymarket import market_channel as clob_ws
from tools.polymarket import rtds
from tools.polymarket.gamma import BTC_15M, GammaError, parse_market
from tools.polymarket.market_channel import OrderBooks
from tools.polymarket.price_to_beat import PriceToBeat, parse_quote
from tools.polymarket.rtds import ReferenceGate, ReferenceTick
from tools.polymarket.store import SnapshotStore

START = 1_789_999_200  # a synthetic window start (a multiple of 900): 2026-09-21T14:00:00Z
T0 = START + 100.0  # synthetic "now"


def trade_json(**over: object) -> str:
    base: dict[str, object] = {"e": "trade", "E": int(T0 * 1000), "s": "BTCUSDT", "t": 42,
                               "p": "100000.50", "q": "0.01", "T": int(T0 * 1000), "m": True,
                               "M": True}
    base.update(over)
    return json.dumps({k: v for k, v in base.items() if v is not None})


# --- Binance --------------------------------------------------------------------------------


def test_trade_frame_becomes_a_frozen_record() -> None:
    trade = parse_trade(trade_json())
    assert trade == Trade(42, 100000.5, 0.01, T0, T0, True)
    with pytest.raises(AttributeError):
        trade.price = 1.0  # type: ignore[misc,union-attr]


@pytest.mark.parametrize(("frame", "reason"), [
    ("not json {", "not_json"),
    ("[1, 2]", "not_json"),
    (trade_json(p=None), "missing_field"),
    (trade_json(t="42"), "missing_field"),
    (trade_json(T=None), "missing_field"),
    (trade_json(p="NaN"), "bad_price"),
    (trade_json(p="inf"), "bad_price"),
    (trade_json(p="0"), "bad_price"),
    (trade_json(p="-5"), "bad_price"),
    (trade_json(p="abc"), "bad_price"),
    (trade_json(q="-1"), "bad_size"),
    (trade_json(s="ETHUSDT"), "wrong_symbol"),
    (json.dumps({"e": "24hrTicker", "E": 1}), "unknown_event"),
    (json.dumps({"e": "serverShutdown", "E": 1}), "server_shutdown"),
])
def test_bad_trade_frames_are_named(frame: str, reason: str) -> None:
    assert parse_trade(frame) == reason


def test_trade_gate_drops_duplicates_reordering_future_and_spikes() -> None:
    clock = ReplayClock(T0)
    gate = TradeGate(clock, reanchor_after=3)

    def t(i: int, price: float, ts: float = T0) -> Trade:
        return Trade(i, price, 0.01, ts, ts, False)

    assert gate.check(t(10, 100_000.0)) is None
    assert gate.check(t(10, 100_000.0)) == "duplicate"
    assert gate.check(t(9, 100_000.0)) == "out_of_order"
    assert gate.check(t(11, 100_000.0, T0 + 5)) == "future_ts"
    assert gate.check(t(11, 100_000.0, T0 + 0.5)) is None  # a little ahead is clock skew
    assert gate.check(t(12, 1_000_000.0)) == "spike"  # 10x
    assert gate.check(t(13, 10_000.0)) == "spike"  # 0.1x
    assert gate.check(t(14, 100_050.0)) is None
    # A real move: consistent prices beyond the jump limit re-anchor after reanchor_after.
    assert [gate.check(t(20 + i, 80_000.0 + i)) for i in range(3)] == ["spike", "spike", None]
    assert gate.jump.last == 80_002.0


def test_trade_gate_seed_guards_the_first_trade() -> None:
    gate = TradeGate(ReplayClock(T0))
    gate.seed(100_000.0)
    assert gate.check(Trade(1, 1_000_000.0, 0.1, T0, T0, False)) == "spike"


# --- RTDS -----------------------------------------------------------------------------------


def rtds_frame(topic: str = "crypto_prices_chainlink", symbol: str = "btc/usd",
               value: object = 100_000.25, ts: object = int(T0 * 1000), **extra: object) -> str:
    payload = {"symbol": symbol, "timestamp": ts, "value": value, **extra}
    return json.dumps({"topic": topic, "type": "update", "timestamp": int(T0 * 1000) + 5,
                       "payload": payload})


def test_rtds_update_batch_and_heartbeat() -> None:
    assert rtds.parse_frame(rtds_frame()) == [
        ReferenceTick("chainlink", "btc/usd", 100_000.25, T0)]
    batch = json.dumps({"topic": "crypto_prices_chainlink", "type": "subscribe", "payload": {
        "symbol": "btc/usd", "data": [{"timestamp": 1000, "value": 1.5},
                                      {"timestamp": 2000, "value": 2.5}]}})
    assert [t.value for t in rtds.parse_frame(batch)] == [1.5, 2.5]  # type: ignore[union-attr]
    assert rtds.parse_frame("PONG") is None
    assert rtds.parse_frame("") is None


def test_rtds_twap_uses_the_exact_e18_value() -> None:
    exact = "100123456789012345678901"  # 100123.456789012345678901 (synthetic)
    ticks = rtds.parse_frame(rtds_frame("crypto_prices_twap_sixty", value=100123.45,
                                        full_accuracy_value=exact))
    assert isinstance(ticks, list)
    assert ticks[0].source == "twap60"
    assert ticks[0].exact == exact
    assert ticks[0].value == pytest.approx(100123.456789012345678901, rel=1e-15)


@pytest.mark.parametrize(("frame", "reason"), [
    ("{oops", "not_json"),
    (rtds_frame(value=float("nan")), "not_json"),  # a bare NaN literal is not JSON
    (rtds_frame(value="NaN"), "bad_price"),
    (rtds_frame(value=-1), "bad_price"),
    (rtds_frame(value=None), "bad_price"),
    (rtds_frame(symbol="eth/usd"), "wrong_symbol"),
    (rtds_frame(ts="soon"), "missing_field"),
    (rtds_frame(topic="comments"), "unknown_event"),
    (json.dumps({"topic": "crypto_prices_chainlink", "payload": "x"}), "missing_field"),
])
def test_bad_rtds_frames_are_named(frame: str, reason: str) -> None:
    assert rtds.parse_frame(frame) == reason


def test_reference_gate_per_topic() -> None:
    gate = ReferenceGate(ReplayClock(T0))
    cl = ReferenceTick("chainlink", "btc/usd", 100_000.0, T0 - 1)
    assert gate.check(cl) is None
    assert gate.check(cl) == "duplicate"
    assert gate.check(ReferenceTick("chainlink", "btc/usd", 100_000.0, T0 - 2)) == "out_of_order"
    # Another topic keeps its own order.
    assert gate.check(ReferenceTick("twap60", "btc/usd", 100_000.0, T0 - 2)) is None
    assert gate.check(ReferenceTick("chainlink", "btc/usd", 1_000_000.0, T0)) == "spike"
    assert gate.check(ReferenceTick("chainlink", "btc/usd", 100_001.0, T0 + 30)) == "future_ts"


# --- CLOB market channel ----------------------------------------------------------------------

UP, DOWN = "7100000000001", "5200000000002"


def book(asset: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]],
         ts: int = int(T0 * 1000)) -> dict[str, object]:
    return {"event_type": "book", "asset_id": asset, "market": "0xsyn",
            "bids": [{"price": p, "size": s} for p, s in bids],
            "asks": [{"price": p, "size": s} for p, s in asks], "timestamp": str(ts)}


def change(asset: str, price: str, size: str, side: str, ts: int = int(T0 * 1000)
           ) -> dict[str, object]:
    return {"event_type": "price_change", "market": "0xsyn", "timestamp": str(ts),
            "price_changes": [{"asset_id": asset, "price": price, "size": size, "side": side,
                               "best_bid": "0.5", "best_ask": "0.6"}]}


def apply_all(books: OrderBooks, *events: object) -> list[str | None]:
    out: list[str | None] = []
    for event in events:
        for item in clob_ws.parse_frame(json.dumps(event)) or []:
            out.append(item if isinstance(item, str) else books.apply(item))
    return out


def test_book_best_levels_do_not_depend_on_order() -> None:
    books = OrderBooks(ReplayClock(T0))
    books.set_assets([UP, DOWN])
    # /book order: bids ascending, asks descending (best last) ...
    assert apply_all(books, book(UP, [("0.50", "10"), ("0.54", "3")],
                                 [("0.60", "9"), ("0.56", "4")])) == [None]
    # ... and the reverse order gives the same top.
    assert apply_all(books, book(DOWN, [("0.44", "6"), ("0.40", "1")],
                                 [("0.46", "2"), ("0.49", "8")])) == [None]
    up, down = books.top(UP), books.top(DOWN)
    assert (up.bid, up.bid_size, up.ask, up.ask_size) == (0.54, 3.0, 0.56, 4.0)  # type: ignore[union-attr]
    assert (down.bid, down.ask) == (0.44, 0.46)  # type: ignore[union-attr]
    assert books.book(UP).depth("SELL", 2) == [(0.56, 4.0), (0.60, 9.0)]  # type: ignore[union-attr]


def test_price_change_updates_and_removes_levels() -> None:
    books = OrderBooks(ReplayClock(T0))
    books.set_assets([UP, DOWN])
    assert apply_all(books, change(UP, "0.55", "5", "BUY")) == ["no_book"]
    apply_all(books, book(UP, [("0.54", "3")], [("0.56", "4")]))
    assert apply_all(books, change(UP, "0.55", "5", "BUY"), change(UP, "0.56", "0", "SELL"),
                     change(UP, "0.58", "7", "SELL")) == [None, None, None]
    top = books.top(UP)
    assert (top.bid, top.bid_size, top.ask) == (0.55, 5.0, 0.58)  # type: ignore[union-attr]
    assert apply_all(books, change("999", "0.5", "1", "BUY")) == ["unknown_asset"]
    assert apply_all(books, change(UP, "0.5", "1", "BUY", ts=int(T0 * 1000) - 1)) == [
        "out_of_order"]


def test_tick_size_change_invalidates_until_the_next_snapshot() -> None:
    books = OrderBooks(ReplayClock(T0))
    books.set_assets([UP, DOWN])
    apply_all(books, book(UP, [("0.96", "3")], [("0.97", "4")]))
    tick = {"event_type": "tick_size_change", "asset_id": UP, "market": "0xsyn",
            "old_tick_size": "0.01", "new_tick_size": "0.001", "timestamp": str(int(T0 * 1000))}
    assert apply_all(books, tick) == [None]
    assert books.top(UP) is None
    assert apply_all(books, change(UP, "0.965", "5", "BUY")) == ["no_book"]
    apply_all(books, book(UP, [("0.965", "3")], [("0.971", "4")]))
    assert books.top(UP).bid == 0.965  # type: ignore[union-attr]
    assert books.book(UP).tick_size == 0.001  # type: ignore[union-attr]


def test_clob_batches_garbage_and_other_events() -> None:
    frame = json.dumps([
        book(UP, [("0.5", "1")], [("0.6", "1")]),
        {"event_type": "book", "asset_id": UP, "market": "0xsyn", "bids": [],
         "asks": [{"price": "1.5", "size": "1"}], "timestamp": "1"},
        {"event_type": "mystery"},
        {"event_type": "best_bid_ask", "asset_id": UP, "market": "0xsyn", "best_bid": "0.5",
         "best_ask": "0.6", "spread": "0.1", "timestamp": "5"},
        {"event_type": "market_resolved", "market": "0xsyn", "winning_asset_id": UP,
         "winning_outcome": "Up", "timestamp": "6", "assets_ids": [UP, DOWN]},
        {"event_type": "new_market", "market": "0xother"},
    ])
    parsed = clob_ws.parse_frame(frame)
    assert parsed is not None
    kinds = [p if isinstance(p, str) else type(p).__name__ for p in parsed]
    assert kinds == ["BookSnapshot", "bad_price", "unknown_event", "BestBidAsk",
                     "MarketResolved"]
    assert clob_ws.parse_frame("PONG") is None
    assert clob_ws.parse_frame("<html>") == ["not_json"]


def test_reconnect_and_lingering_tokens() -> None:
    books = OrderBooks(ReplayClock(T0))
    books.set_assets([UP, DOWN])
    apply_all(books, book(UP, [("0.5", "1")], [("0.6", "1")]))
    books.await_snapshots()
    assert books.top(UP) is None  # nothing patched over a book from before the reconnect
    books.set_assets(["1", "2"])
    books.linger([UP, DOWN])
    assert books.subscribed_ids == ("1", "2", UP, DOWN)
    assert apply_all(books, book(UP, [("0.5", "1")], [("0.6", "1")])) == ["ignored"]


# --- Gamma, klines, crypto-price ------------------------------------------------------------


def gamma(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "slug": f"btc-updown-15m-{START}", "conditionId": "0xsyn",
        "startDate": "2026-09-20T13:00:00Z",  # listing time: must not be taken as the start
        "eventStartTime": "2026-09-21T14:00:00Z", "endDate": "2026-09-21T14:15:00Z",
        "outcomes": '["Up", "Down"]', "clobTokenIds": json.dumps([UP, DOWN]),
        "outcomePrices": '["0.52", "0.48"]', "orderPriceMinTickSize": 0.01,
        "orderMinSize": 5, "feesEnabled": True,
        "feeSchedule": {"rate": 0.07, "exponent": 1, "takerOnly": True, "rebateRate": 0},
    }
    base.update(over)
    return base


def test_gamma_market_maps_tokens_by_label_and_uses_event_start() -> None:
    w = parse_market(gamma())
    assert (w.up_token_id, w.down_token_id) == (UP, DOWN)
    assert w.start_ts == START
    assert w.end_ts - w.start_ts == 900
    assert (w.fee_rate, w.fee_exponent, w.tick_size, w.min_order_shares) == (0.07, 1.0, 0.01, 5)
    flipped = parse_market(gamma(outcomes='["Down", "Up"]',
                                 clobTokenIds=json.dumps([DOWN, UP]),
                                 outcomePrices='["0.48", "0.52"]'))
    assert (flipped.up_token_id, flipped.down_token_id, flipped.up_price) == (UP, DOWN, 0.52)


def test_gamma_fees_and_twap() -> None:
    # A stated schedule wins even beside feesEnabled=false (overstating the fee is the safe
    # mistake); without one, feesEnabled=false means no fee.
    assert parse_market(gamma(feesEnabled=False)).fee_rate == 0.07
    assert parse_market(gamma(feesEnabled=False, feeSchedule=None)).fee_rate == 0.0
    assert parse_market(gamma(feeSchedule='{"rate": 0.05, "exponent": 1}')).fee_rate == 0.05
    dated = parse_market(gamma(feeSchedule=None))
    assert dated.fee_rate == dated_fee_schedule(dated.start_ts).rate
    assert parse_market(gamma(cryptoMarketConfig='{"twapEnabled": false}')).twap_enabled is False
    # No config: windows from 2026-08-07 on settle on the TWAP.
    assert parse_market(gamma()).twap_enabled is True


@pytest.mark.parametrize("bad", [
    {"outcomes": '["Yes", "No"]'}, {"clobTokenIds": "[oops"}, {"clobTokenIds": json.dumps([UP])},
    {"eventStartTime": None, "slug": "weird", "endDate": None},
])
def test_gamma_garbage_is_a_one_line_error(bad: dict[str, object]) -> None:
    with pytest.raises(GammaError):
        parse_market(gamma(**bad))


@pytest.mark.parametrize("over", [
    {}, {"outcomes": '["Down", "Up"]', "clobTokenIds": json.dumps([DOWN, UP]),
         "outcomePrices": '["0.48", "0.52"]'},
    {"feesEnabled": False}, {"feesEnabled": False, "feeSchedule": None}, {"feeSchedule": None},
    {"feeSchedule": '{"rate": 0.05, "exponent": 1}'}, {"outcomePrices": '["0.52"]'},
])
def test_feed_and_live_broker_read_a_gamma_market_alike(over: dict[str, object]) -> None:
    """One Gamma document, two readers (the feed's MarketWindow, the live broker's MarketInfo):
    the same tokens by label, outcome prices and taker fee."""
    from core.fees import FeeSchedule
    from tools.polymarket.wire import parse_gamma_market

    doc = gamma(**over)
    window = parse_market(doc)
    fallback = dated_fee_schedule(window.start_ts)
    info = parse_gamma_market(doc, fallback_fees=fallback)
    assert (info.up_token_id, info.down_token_id) == (window.up_token_id, window.down_token_id)
    assert (info.up_token_id, info.down_token_id) == (UP, DOWN)
    assert info.fee_schedule == FeeSchedule(window.fee_rate, window.fee_exponent)
    up = None if info.up_price is None else float(info.up_price)
    assert up == window.up_price
    if over.get("outcomePrices") == '["0.52"]':
        assert window.up_price is None  # one price for two outcomes: none is trusted


def test_window_series_slugs() -> None:
    assert BTC_15M.start_at(START + 899.9) == START
    assert BTC_15M.slug(START) == f"btc-updown-15m-{START}"


def test_klines_keep_complete_candles_closing_on_the_boundary() -> None:
    minute = math.floor(T0 / 60) * 60
    open_ms = int((minute - 180) * 1000)
    rows = [[open_ms + i * 60_000, "100", "102", "99", "101", "3.5", open_ms + i * 60_000 + 59_999,
             "0", 1, "0", "0", "0"] for i in range(4)]
    klines = parse_klines(rows, 60.0, T0)
    assert [k.close_ts - k.open_ts for k in klines] == [60.0] * len(klines)
    assert all(k.close_ts <= T0 for k in klines)
    assert len(klines) == 3  # the candle still forming is not history
    with pytest.raises(KlinesError):
        parse_klines([[open_ms, "100", "90", "99", "101", "1"]], 60.0, T0)  # high < open


def test_crypto_price_quote() -> None:
    q = parse_quote({"openPrice": 100123.5, "closePrice": None, "completed": False})
    assert q is not None
    assert (q.open_price, q.close_price, q.completed) == (100123.5, None, False)
    assert parse_quote({"openPrice": "NaN"}).open_price is None  # type: ignore[union-attr]


def test_backoff_and_retry_after() -> None:
    b = Backoff()
    assert [b.delay(n) for n in range(5)] == [0.0, 1.0, 2.0, 2.0, 2.0]
    clock = ReplayClock(T0)
    assert retry_after_s("3", clock) == 3.0
    http_date = email.utils.formatdate(T0 + 10.0, usegmt=True)
    assert retry_after_s(http_date, clock) == pytest.approx(10.0)
    assert retry_after_s("999999", clock) == MAX_RETRY_AFTER_S
    assert retry_after_s("soon", clock) == MAX_RETRY_AFTER_S
    assert retry_after_s(None, clock) is None


# --- the store --------------------------------------------------------------------------------


def store_with_window(clock: ReplayClock, **over: object) -> SnapshotStore:
    store = SnapshotStore(clock)
    store.set_window(parse_market(gamma(**over)))
    return store


def test_store_candles_match_tools_candles() -> None:
    """Live bucketing equals the replay's build_candles on the same (synthetic) trades."""
    rng = np.random.default_rng(3)
    boundary = math.floor((T0 - 300) / 60) * 60.0  # a trade exactly on a candle boundary
    ts = np.unique(np.concatenate([rng.uniform(T0 - 600, T0, 400), [boundary]]))
    prices = 100_000 + np.cumsum(rng.normal(0, 5, len(ts)))
    qty = rng.uniform(0.001, 0.5, len(ts))
    clock = ReplayClock(T0)
    store = SnapshotStore(clock, candle_history=1000)
    for i, (t, p, q) in enumerate(zip(ts, prices, qty, strict=True)):
        store.on_trade(Trade(i, float(p), float(q), float(t), float(t), False))
    expected = build_candles(ts, prices, qty).tail(T0, 1000)
    got = store.candles(T0)
    assert got.close_ts == expected.close_ts
    assert got.close == expected.close
    assert got.open == expected.open
    assert np.allclose(got.high, expected.high)
    assert np.allclose(got.low, expected.low)
    assert np.allclose(got.volume, expected.volume)  # type: ignore[arg-type]
    assert all(c <= T0 for c in got.close_ts)


def test_store_exposes_only_complete_candles_and_warmup_first() -> None:
    clock = ReplayClock(T0)
    store = SnapshotStore(clock)
    minute = math.floor(T0 / 60) * 60
    store.seed_klines([Kline(minute - 120, minute - 60, 1, 2, 0.5, 1.5, 3),
                       Kline(minute - 60, minute, 1.5, 2, 1, 1.8, 4)])
    store.on_trade(Trade(1, 100.0, 1.0, T0 - 1, T0 - 1, False))  # in the minute still open
    assert store.candles(T0).close_ts == (minute - 60, minute)
    clock.advance_to(minute + 60)
    assert store.candles(clock.now()).close_ts == (minute - 60, minute, minute + 60)


def test_snapshot_prices_ages_and_price_to_beat() -> None:
    clock = ReplayClock(START - 10.0)
    store = store_with_window(clock)
    assert store.snapshot() is None  # no price yet
    store.on_trade(Trade(1, 100_000.0, 0.1, START - 9.0, START - 9.0, False))
    store.on_reference(ReferenceTick("chainlink", "btc/usd", 99_990.0, START - 1.0))
    store.offer_price_to_beat(PriceToBeat(f"btc-updown-15m-{START}", 99_995.0,
                                          "crypto_price_api", True))
    snap = store.snapshot()
    assert snap is not None
    assert snap.price_to_beat is None  # before the start nobody knows it
    clock.advance_to(START + 5.0)
    # The exchange clock a little ahead of ours: clamped to as_of, never fresher than now.
    store.on_trade(Trade(2, 100_010.0, 0.1, START + 5.4, START + 5.4, False))
    snap = store.snapshot()
    assert snap is not None
    assert (snap.price, snap.price_ts, snap.as_of) == (100_010.0, START + 5.0, START + 5.0)
    assert (snap.price_to_beat, snap.price_to_beat_verified) == (99_995.0, True)
    assert (snap.reference_price, snap.fee_rate, snap.price_interval_s) == (99_990.0, 0.07, 0.0)
    assert snap.up is None
    assert snap.book_ts is None


def test_price_to_beat_from_the_streams() -> None:
    market = f"btc-updown-15m-{START}"
    clock = ReplayClock(START + 3.0)
    store = store_with_window(clock)
    store.on_reference(ReferenceTick("chainlink", "btc/usd", 100_000.0, START - 0.6))
    store.on_reference(ReferenceTick("chainlink", "btc/usd", 100_004.0, START + 0.4))
    ptb = store.price_to_beat
    assert ptb == PriceToBeat(market, 100_004.0, "first_chainlink_tick", False, START + 0.4)
    # The TWAP stamped exactly at the start outranks it and is verified.
    store.on_reference(ReferenceTick("twap60", "btc/usd", 100_001.5, START - 1.0))
    store.on_reference(ReferenceTick("twap60", "btc/usd", 100_002.5, float(START)))
    assert store.price_to_beat == PriceToBeat(market, 100_002.5, "twap_stream", True, START)
    # A lower-ranked source never replaces it.
    assert not store.offer_price_to_beat(PriceToBeat(market, 1.0, "first_chainlink_tick", False))


def test_first_chainlink_tick_needs_the_tick_before_the_start() -> None:
    clock = ReplayClock(START + 30.0)
    store = store_with_window(clock)
    # Connected mid-window: the first tick we see is not the window's first tick.
    store.on_reference(ReferenceTick("chainlink", "btc/usd", 100_000.0, START + 20.0))
    store.on_reference(ReferenceTick("chainlink", "btc/usd", 100_001.0, START + 21.0))
    assert store.price_to_beat is None


def test_window_roll_over_finds_a_start_tick_already_seen() -> None:
    clock = ReplayClock(START + 1.0)
    store = SnapshotStore(clock)
    store.on_reference(ReferenceTick("chainlink", "btc/usd", 100_000.0, START - 0.5))
    store.on_reference(ReferenceTick("twap60", "btc/usd", 100_002.0, float(START)))
    store.on_reference(ReferenceTick("chainlink", "btc/usd", 100_003.0, START + 0.5))
    store.set_window(parse_market(gamma()))
    assert store.price_to_beat is not None
    assert (store.price_to_beat.source, store.price_to_beat.verified) == ("twap_stream", True)


def test_snapshot_book_needs_both_sides_valid() -> None:
    clock = ReplayClock(START + 60.0)
    store = store_with_window(clock)
    store.on_trade(Trade(1, 100_000.0, 0.1, START + 59.0, START + 59.0, False))
    ms = int((START + 59.5) * 1000)
    assert apply_all(store.books, book(UP, [("0.54", "3")], [("0.56", "4")], ms)) == [None]
    assert store.snapshot().up is None  # type: ignore[union-attr]
    assert apply_all(store.books, book(DOWN, [("0.44", "6")], [("0.46", "2")], ms)) == [None]
    snap = store.snapshot()
    assert snap is not None
    assert snap.up is not None
    assert snap.down is not None
    assert (snap.up.ask, snap.up.ask_size, snap.down.ask, snap.book_ts) == (
        0.56, 4.0, 0.46, START + 60.0)
    assert store.depth("up", "SELL") == [(0.56, 4.0)]


def test_resolution_outcome_by_winning_token() -> None:
    clock = ReplayClock(START + 901.0)
    store = store_with_window(clock)
    assert store.window is not None
    event = clob_ws.MarketResolved("0xsyn", DOWN, "Down", START + 900.5)
    store.on_resolved(event, [store.window])
    assert store.outcomes[store.window.market_id].outcome == "down"


def test_feed_modules_document_what_they_own() -> None:
    for module in (binance, rtds, clob_ws):
        assert module.__doc__
        assert len(module.__doc__) > 100
