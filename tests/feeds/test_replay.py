"""feeds.replay: as-of snapshots without look-ahead, derived references and settlement, decision
times, fees and speed.  Happy paths use the embedded real dataset; files written under tmp_path
are synthetic fixtures (ids ``syn-*``), never market data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.fees import FEES_QUADRATIC_FROM
from feeds.recorded import EMBEDDED_DATASET_DIR, RecordedDataset, RecordedMarket, load_dataset
from feeds.replay import SKIP_NO_PRICE_PATH, SKIP_PRICE_STARTS_LATE, ReplayFeed

FIRST = "btc-updown-15m-1766745000"


@pytest.fixture(scope="module")
def dataset() -> RecordedDataset:
    return load_dataset(EMBEDDED_DATASET_DIR)


@pytest.fixture(scope="module")
def feed(dataset: RecordedDataset) -> ReplayFeed:
    return ReplayFeed(dataset)


def write_synthetic(root: Path, markets: str, prices: str, book: str | None = None) -> Path:
    d = root / "synthetic_dataset"
    d.mkdir(exist_ok=True)
    (d / "markets.csv").write_text(markets, encoding="utf-8")
    (d / "prices.csv").write_text(prices, encoding="utf-8")
    if book is not None:
        (d / "book.csv").write_text(book, encoding="utf-8")
    return d


# --- embedded dataset -------------------------------------------------------------------


def test_markets_and_cadence(feed: ReplayFeed) -> None:
    assert len(feed.markets) == 32
    assert feed.skipped == {}
    assert feed.markets[0].market_id == FIRST
    assert feed.price_interval_s("BTC") == 60.0
    # Derived reference: the Coinbase close at the window start (prices.csv.gz line 362).
    assert feed.price_to_beat(feed.markets[0]) == 88756.01


def test_snapshot_mid_window(feed: ReplayFeed) -> None:
    m = feed.markets[0]
    s = feed.snapshot_at(m, 1766745300.5)
    assert s.market_id == FIRST
    assert (s.window_start, s.window_end, s.as_of) == (1766745000.0, 1766745900.0, 1766745300.5)
    # prices.csv.gz line 367: 1766745300.0,88632.07
    assert (s.price, s.price_ts, s.price_source) == (88632.07, 1766745300.0, "coinbase_btcusd_1m")
    assert s.price_interval_s == 60.0
    assert s.price_to_beat == 88756.01
    assert s.price_to_beat_verified is False
    assert s.reference_price is None
    # book.csv.gz line 48 (the market's row at 1766745300.0).
    assert s.book_ts == 1766745300.0
    assert s.up is not None
    assert s.down is not None
    assert (s.up.bid, s.up.ask, s.up.bid_size, s.up.ask_size) == (0.09, 0.11, 5872.36, 4734.17)
    assert (s.down.bid, s.down.ask) == (0.9, 0.91)
    assert (s.fee_rate, s.fee_exponent) == (0.0, 1.0)
    assert len(s.candles) == 120
    assert s.candles.close_ts[-1] == 1766745300.0
    assert s.candles.volume is None


def test_snapshot_before_first_book_row_and_before_start(feed: ReplayFeed) -> None:
    m = feed.markets[0]
    s = feed.snapshot_at(m, m.start_ts + 10)  # first book row is at 1766745254
    assert s.up is None
    assert s.down is None
    assert s.book_ts is None
    assert s.price_to_beat == 88756.01
    early = feed.snapshot_at(m, m.start_ts - 0.5)
    assert early.price_to_beat is None  # not known before the window opens
    assert early.price_ts == m.start_ts - 60


def test_zero_price_side_is_none(feed: ReplayFeed, dataset: RecordedDataset) -> None:
    m = dataset.market("btc-updown-15m-1766745900")
    s = feed.snapshot_at(m, 1766746469.0)  # book.csv.gz line 1211: up side 0/0
    assert s.up is not None
    assert (s.up.bid, s.up.ask, s.up.bid_size, s.up.ask_size) == (None, None, None, None)
    assert s.down is not None
    assert (s.down.bid, s.down.ask) == (0.14, 0.16)


def test_no_look_ahead_against_brute_force(feed: ReplayFeed) -> None:
    # Independent reference: read the files with pandas and filter ts <= t by hand.
    book = pd.read_csv(EMBEDDED_DATASET_DIR / "book.csv.gz")
    prices = pd.read_csv(EMBEDDED_DATASET_DIR / "prices.csv.gz")
    rng = np.random.default_rng(7)
    for m in feed.markets[::4]:
        rows = book[book["market_id"] == m.market_id]
        for t in rng.uniform(m.start_ts - 30, m.end_ts + 30, size=25):
            s = feed.snapshot_at(m, float(t))
            seen = prices[prices["ts"] <= t]
            assert s.price_ts == seen["ts"].iloc[-1]
            assert s.price == seen["price"].iloc[-1]
            assert s.candles.close_ts[-1] <= t
            past = rows[rows["ts"] <= t]
            if past.empty:
                assert s.book_ts is None
                continue
            last = past.iloc[-1]  # last row in file order wins on a repeated second
            assert s.book_ts == last["ts"] <= t
            assert s.down is not None
            assert s.down.ask == (last["down_ask"] or None)


def test_settlement_recorded_and_derived_agree(feed: ReplayFeed) -> None:
    for m in feed.markets:
        outcome, verified = feed.settlement(m)
        assert verified
        assert outcome == m.outcome
        derived, derived_verified = feed.settlement(dataclasses.replace(m, outcome=None))
        assert derived == m.outcome
        assert derived_verified is False


def test_decision_times(feed: ReplayFeed) -> None:
    m = feed.markets[0]
    ones = feed.decision_times(m, 1.0)
    assert len(ones) == 899
    assert (ones[0], ones[-1]) == (m.start_ts + 1, m.end_ts - 1)
    assert feed.decision_times(m, 60.0) == [m.start_ts + 60.0 * k for k in range(1, 15)]
    assert feed.decision_times(m, 900.0) == []
    with pytest.raises(ValueError, match="cadence_s"):
        feed.decision_times(m, 0.0)


# --- synthetic fixtures -----------------------------------------------------------------


def test_look_ahead_poisoned_rows_never_show(tmp_path: Path) -> None:
    # Synthetic: everything stamped after T_CUT is poison (price 1e9, ask 0.99).
    t_cut = 1500.0
    prices = "ts,price,volume,source\n"
    prices += "".join(f"{ts},{100 + ts / 1000},1,syn\n" for ts in range(600, 1501, 60))
    prices += "".join(f"{ts},1e9,1e9,poison\n" for ts in (1500.5, 1501, 1560, 1620))
    book = "market_id,ts,up_bid,up_ask,down_bid,down_ask\n"
    book += "".join(f"syn-a,{ts},0.4,0.45,0.55,0.6\n" for ts in range(1001, 1501, 7))
    book += "".join(f"syn-a,{ts},0.98,0.99,0.98,0.99\n" for ts in (1500.25, 1502, 1800))
    markets = "market_id,asset,start_ts,end_ts\nsyn-a,BTC,1000,1900\n"
    feed = ReplayFeed(load_dataset(write_synthetic(tmp_path, markets, prices, book)))
    m = feed.markets[0]
    for t in (1001.0, 1200.0, 1499.9, t_cut):
        s = feed.snapshot_at(m, t)
        assert s.price < 1e3
        assert s.price_ts <= t
        assert s.price_source == "syn"
        assert s.candles.close_ts[-1] <= t
        assert max(s.candles.high) < 1e3
        assert s.candles.volume is not None
        assert max(s.candles.volume) < 1e9
        assert s.book_ts is not None
        assert s.book_ts <= t
        assert s.up is not None
        assert s.up.ask == 0.45
    after = feed.snapshot_at(m, 1600.0)  # sanity: the poison is really in the data
    assert after.price == 1e9
    assert after.up is not None
    assert after.up.ask == 0.99


def test_given_reference_fee_and_dated_fee(tmp_path: Path) -> None:
    q = FEES_QUADRATIC_FROM + 3600  # a synthetic window inside the quadratic-fee period
    markets = "market_id,asset,start_ts,end_ts,price_to_beat,fee_rate\n"
    markets += f"syn-given,BTC,{q},{q + 900},123.5,0.05\nsyn-dated,BTC,{q + 900},{q + 1800},,\n"
    prices = "ts,price\n" + "".join(f"{q - 60 + 60 * k},{100 + k}\n" for k in range(40))
    feed = ReplayFeed(load_dataset(write_synthetic(tmp_path, markets, prices)))
    given, dated = feed.markets
    s = feed.snapshot_at(given, q + 30)
    assert (s.price_to_beat, s.price_to_beat_verified) == (123.5, False)
    assert (s.fee_rate, s.fee_exponent) == (0.05, 1.0)
    assert s.up is None  # no book.csv
    d = feed.snapshot_at(dated, q + 930)
    assert (d.fee_rate, d.fee_exponent) == (0.25, 2.0)
    assert d.price_to_beat == 116.0  # price at q + 900 is row k=16


def test_skipped_windows_are_counted(tmp_path: Path) -> None:
    markets = "market_id,asset,start_ts,end_ts\n"
    markets += "syn-early,BTC,100,1000\nsyn-ok,BTC,1000,1900\nsyn-eth,ETH,1000,1900\n"
    prices = "ts,asset,price\n500,BTC,1\n1000,BTC,2\n"
    feed = ReplayFeed(load_dataset(write_synthetic(tmp_path, markets, prices)))
    assert [m.market_id for m in feed.markets] == ["syn-ok"]
    assert feed.skipped == {SKIP_PRICE_STARTS_LATE: 1, SKIP_NO_PRICE_PATH: 1}
    early = feed.dataset.market("syn-early")
    with pytest.raises(ValueError, match="not replayable"):
        feed.snapshot_at(early, 600.0)
    with pytest.raises(ValueError, match="no BTC price"):
        feed.snapshot_at(feed.markets[0], 400.0)


def test_derived_settlement_ties_gaps_and_stale(tmp_path: Path) -> None:
    markets = "market_id,asset,start_ts,end_ts\n"
    markets += "syn-tie,BTC,1000,1900\nsyn-down,BTC,1900,2800\nsyn-open,BTC,2800,3700\n"
    # 1000: 50 (reference of syn-tie); 1900: 50 (tie -> up, and reference of syn-down);
    # 2800: 49 (down); the path stops at 2800, so syn-open cannot settle.
    prices = "ts,price\n1000,50\n1500,70\n1900,50\n2800,49\n"
    feed = ReplayFeed(load_dataset(write_synthetic(tmp_path, markets, prices)))
    tie, down, open_ = feed.markets
    assert feed.settlement(tie) == ("up", False)
    assert feed.settlement(down) == ("down", False)
    assert feed.settlement(open_) == (None, False)


def test_derived_settlement_refuses_stale_close(tmp_path: Path) -> None:
    markets = "market_id,asset,start_ts,end_ts\nsyn-a,BTC,1000,1900\n"
    # Native cadence 60 s, but nothing between 1060 and 2000: the close at 1900 is unknown.
    prices = "ts,price\n940,1\n1000,1\n1060,2\n2000,3\n2060,3\n"
    feed = ReplayFeed(load_dataset(write_synthetic(tmp_path, markets, prices)))
    assert feed.settlement(feed.markets[0]) == (None, False)
    recorded = dataclasses.replace(feed.markets[0], outcome="down")
    assert feed.settlement(recorded) == ("down", True)


def test_candle_history_and_interval_options(dataset: RecordedDataset) -> None:
    feed = ReplayFeed(dataset, candle_interval_s=300.0, candle_history=10)
    m = feed.markets[0]
    s = feed.snapshot_at(m, m.start_ts + 299.0)
    assert s.candles.interval_s == 300.0
    assert len(s.candles) == 10
    assert s.candles.close_ts[-1] == m.start_ts
    # A 5-minute candle from 1-minute closes spans the 5 rows (start-240 .. start].
    p = dataset.prices["BTC"]
    rows = p.price[(p.ts > m.start_ts - 300) & (p.ts <= m.start_ts)]
    assert s.candles.high[-1] == rows.max()
    assert s.candles.open[-1] == rows[0]
    with pytest.raises(ValueError, match="candle_interval_s"):
        ReplayFeed(dataset, candle_interval_s=0.0)


def test_unknown_market_is_rejected(feed: ReplayFeed) -> None:
    foreign = RecordedMarket("syn-foreign", "BTC", 1.0, 2.0)
    with pytest.raises(ValueError, match="not replayable"):
        feed.snapshot_at(foreign, 1.5)
