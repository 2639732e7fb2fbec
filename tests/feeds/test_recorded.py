"""feeds.recorded: the embedded real dataset loads with the facts its files state, and every
validation rule names the file and row.  Files written under tmp_path are synthetic fixtures
(``SYN_*`` contents, ids ``syn-*``), never market data."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from feeds.recorded import (
    EMBEDDED_DATASET_DIR,
    DatasetError,
    RecordedDataset,
    load_dataset,
)

# --- synthetic fixtures ------------------------------------------------------------------

SYN_MARKETS = (
    "market_id,asset,start_ts,end_ts,price_to_beat,outcome,fee_rate\n"
    "syn-a,BTC,1000,1900,100.5,up,0.02\n"
    "syn-b,BTC,1900,2800,,,\n"
)
SYN_PRICES = "ts,price,source\n900,100,syn\n960,101,syn\n1020,102,syn\n1080,103,syn\n"
SYN_BOOK = (
    "market_id,ts,up_bid,up_ask,down_bid,down_ask,up_bid_size,up_ask_size\n"
    "syn-a,1001,0.4,0.42,0.58,0.6,10,11\n"
    "syn-a,1002,0.41,0.43,0.57,0.59,12,13\n"
)


def write_synthetic(
    root: Path,
    *,
    markets: str | None = SYN_MARKETS,
    prices: str | None = SYN_PRICES,
    book: str | None = SYN_BOOK,
    gz: tuple[str, ...] = (),
) -> Path:
    """Write a synthetic dataset directory; names in ``gz`` are written as .csv.gz."""
    d = root / "synthetic_dataset"
    d.mkdir(exist_ok=True)
    for stem, text in (("markets", markets), ("prices", prices), ("book", book)):
        if text is None:
            continue
        if stem in gz:
            with gzip.open(d / f"{stem}.csv.gz", "wt", encoding="utf-8") as fh:
                fh.write(text)
        else:
            (d / f"{stem}.csv").write_text(text, encoding="utf-8")
    return d


def load_error(d: Path) -> str:
    with pytest.raises(DatasetError) as info:
        load_dataset(d)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# --- the embedded real dataset ---------------------------------------------------------


@pytest.fixture(scope="module")
def embedded() -> RecordedDataset:
    return load_dataset(EMBEDDED_DATASET_DIR)


def test_embedded_markets(embedded: RecordedDataset) -> None:
    assert embedded.name == "pm15m_20251226_coinbase1m"
    assert len(embedded.markets) == 32
    first, last = embedded.markets[0], embedded.markets[-1]
    assert first.market_id == "btc-updown-15m-1766745000"
    assert (first.asset, first.start_ts, first.end_ts) == ("BTC", 1766745000.0, 1766745900.0)
    assert first.price_to_beat is None
    assert first.outcome == "down"
    assert first.fee_rate == 0.0
    assert last.market_id == "btc-updown-15m-1766772900"
    starts = [m.start_ts for m in embedded.markets]
    assert starts == sorted(starts)
    assert all(m.duration_s == 900.0 for m in embedded.markets)
    assert sum(m.outcome == "up" for m in embedded.markets) == 16
    assert embedded.market("btc-updown-15m-1766745900").start_ts == 1766745900.0
    with pytest.raises(KeyError):
        embedded.market("btc-updown-15m-0")


def test_embedded_prices(embedded: RecordedDataset) -> None:
    assert list(embedded.prices) == ["BTC"]
    p = embedded.prices["BTC"]
    assert len(p) == 841
    assert (p.ts[0], p.price[0]) == (1766723400.0, 88626.46)
    assert (p.ts[-1], p.price[-1]) == (1766773800.0, 87128.02)
    assert p.volume is None
    assert p.source is not None
    assert set(p.source.tolist()) == {"coinbase_btcusd_1m"}
    assert np.all(np.diff(p.ts) == 60.0)
    assert p.index_at(1766723459.0) == 0
    assert p.index_at(1766723399.0) == -1


def test_embedded_book(embedded: RecordedDataset) -> None:
    assert embedded.has_book
    assert len(embedded.books) == 32
    b = embedded.book("btc-updown-15m-1766745000")
    assert b is not None
    # First data row of book.csv.gz.
    assert b.ts[0] == 1766745254.0
    assert (b.up_bid[0], b.up_ask[0], b.down_bid[0], b.down_ask[0]) == (0.09, 0.11, 0.89, 0.9)
    assert (b.up_bid_size[0], b.up_ask_size[0]) == (6151.04, 4386.31)
    assert (b.down_bid_size[0], b.down_ask_size[0]) == (4296.39, 3898.01)
    # 28,494 rows, of which 276 repeat an earlier row's (market, second) and are superseded.
    assert sum(len(x) for x in embedded.books.values()) == 28494 - 276
    for x in embedded.books.values():
        assert np.all(np.diff(x.ts) > 0)


def test_embedded_zero_price_is_no_level(embedded: RecordedDataset) -> None:
    b = embedded.book("btc-updown-15m-1766745900")
    assert b is not None
    # book.csv.gz line 1211: up bid/ask 0.0 with sizes 0.0 (the recorder's empty side).
    i = int(np.flatnonzero(b.ts == 1766746469.0)[0])
    assert math.isnan(b.up_bid[i])
    assert math.isnan(b.up_ask[i])
    assert math.isnan(b.up_bid_size[i])
    assert math.isnan(b.up_ask_size[i])
    assert (b.down_bid[i], b.down_ask[i]) == (0.14, 0.16)
    # Lines 1223-1225 share ts 1766746484.0; the last (line 1225) is kept.
    j = int(np.flatnonzero(b.ts == 1766746484.0)[0])
    assert (b.down_bid[j], b.down_ask[j], b.down_bid_size[j]) == (0.24, 0.26, 2035.58)
    assert math.isnan(b.up_ask[j])


# --- format flexibility (synthetic) ---------------------------------------------------


@pytest.mark.parametrize("gz", [(), ("markets", "prices", "book")])
def test_plain_and_gzip_files(tmp_path: Path, gz: tuple[str, ...]) -> None:
    ds = load_dataset(write_synthetic(tmp_path, gz=gz))
    assert [m.market_id for m in ds.markets] == ["syn-a", "syn-b"]
    a, b = ds.markets
    assert (a.price_to_beat, a.outcome, a.fee_rate) == (100.5, "up", 0.02)
    assert (b.price_to_beat, b.outcome, b.fee_rate) == (None, None, None)
    book = ds.book("syn-a")
    assert book is not None
    assert book.up_ask.tolist() == [0.42, 0.43]
    assert np.isnan(book.down_bid_size).all()  # optional size columns absent
    assert ds.book("syn-b") is None


def test_columns_any_order_unknown_ignored_optional_missing(tmp_path: Path) -> None:
    d = write_synthetic(
        tmp_path,
        markets="EXTRA,end_ts, Market_ID ,start_ts,asset\nz,1900,syn-a,1000,BTC\n",
        prices="price,note,ts\n100,x,900\n101,y,960\n",
        book=None,
    )
    ds = load_dataset(d)
    assert ds.markets[0].market_id == "syn-a"
    assert ds.markets[0].outcome is None
    assert not ds.has_book
    assert ds.books == {}
    p = ds.prices["BTC"]  # no asset column: the only asset in markets.csv
    assert p.ts.tolist() == [900.0, 960.0]
    assert p.volume is None
    assert p.source is None


def test_markets_sorted_by_start_and_outcome_case(tmp_path: Path) -> None:
    markets = "market_id,asset,start_ts,end_ts,outcome\nsyn-late,BTC,2000,2900,Down\n"
    markets += "syn-early,BTC,1000,1900,UP\n"
    ds = load_dataset(write_synthetic(tmp_path, markets=markets, book=None))
    assert [(m.market_id, m.outcome) for m in ds.markets] == [
        ("syn-early", "up"),
        ("syn-late", "down"),
    ]


def test_multi_asset_prices_and_empty_book_cells(tmp_path: Path) -> None:
    markets = "market_id,asset,start_ts,end_ts\nsyn-btc,BTC,1000,1900\nsyn-eth,ETH,1000,1900\n"
    prices = "ts,asset,price,volume\n900,BTC,100,1\n900,ETH,10,\n960,BTC,101,2\n960,ETH,11,3\n"
    book = "market_id,ts,up_bid,up_ask,down_bid,down_ask\nsyn-btc,1001,,0.5,0.4,\n"
    ds = load_dataset(write_synthetic(tmp_path, markets=markets, prices=prices, book=book))
    assert ds.prices["BTC"].price.tolist() == [100.0, 101.0]
    eth_volume = ds.prices["ETH"].volume
    assert eth_volume is not None
    assert math.isnan(eth_volume[0])
    assert eth_volume[1] == 3.0
    b = ds.book("syn-btc")
    assert b is not None
    assert math.isnan(b.up_bid[0])
    assert math.isnan(b.down_ask[0])
    assert b.up_ask[0] == 0.5


def test_interleaved_book_rows_are_grouped_per_market(tmp_path: Path) -> None:
    book = (
        "market_id,ts,up_bid,up_ask,down_bid,down_ask\n"
        "syn-a,1001,0.1,0.2,0.8,0.9\n"
        "syn-b,1950,0.3,0.4,0.6,0.7\n"
        "syn-a,1005,0.2,0.3,0.7,0.8\n"
        "syn-a,1005,0.25,0.3,0.7,0.75\n"
    )
    ds = load_dataset(write_synthetic(tmp_path, book=book))
    a = ds.book("syn-a")
    b = ds.book("syn-b")
    assert a is not None
    assert b is not None
    assert a.ts.tolist() == [1001.0, 1005.0]
    assert a.up_bid.tolist() == [0.1, 0.25]  # the later row at 1005 wins
    assert b.ts.tolist() == [1950.0]


# --- validation: one line, file and row ----------------------------------------------


def test_missing_directory(tmp_path: Path) -> None:
    msg = load_error(tmp_path / "nope")
    assert msg == f"dataset directory {str(tmp_path / 'nope')!r} does not exist"


@pytest.mark.parametrize("missing", ["markets", "prices"])
def test_missing_required_file(tmp_path: Path, missing: str) -> None:
    d = write_synthetic(tmp_path, **{missing: None})  # type: ignore[arg-type]
    msg = load_error(d)
    assert msg.endswith(f"{missing}.csv missing (expected {missing}.csv or {missing}.csv.gz)")


def test_both_plain_and_gzip_is_ambiguous(tmp_path: Path) -> None:
    d = write_synthetic(tmp_path)
    write_synthetic(tmp_path, gz=("prices",))
    assert "both prices.csv and prices.csv.gz exist" in load_error(d)


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        (
            "markets",
            "market_id,asset,start_ts\nsyn-a,BTC,1000\n",
            "markets.csv row 1: required column 'end_ts' missing",
        ),
        ("prices", "ts,px\n900,1\n", "prices.csv row 1: required column 'price' missing"),
        (
            "book",
            "market_id,ts,up_bid,up_ask,down_bid\nsyn-a,1001,0.1,0.2,0.3\n",
            "book.csv row 1: required column 'down_ask' missing",
        ),
    ],
)
def test_missing_required_column(tmp_path: Path, kind: str, text: str, expected: str) -> None:
    d = write_synthetic(tmp_path, **{kind: text})  # type: ignore[arg-type]
    assert load_error(d).startswith(expected)


PRICES_HEAD = "ts,price\n"


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        (PRICES_HEAD + "900,100\nabc,101\n", "prices.csv row 3: ts 'abc' is not a number"),
        (PRICES_HEAD + "900,100\n960,1O1\n", "prices.csv row 3: price '1O1' is not a number"),
        (PRICES_HEAD + "900,100\n960,inf\n", "prices.csv row 3: price inf is not finite"),
        (PRICES_HEAD + "900,100\n960,nan\n", "prices.csv row 3: price 'nan' is not finite"),
        (PRICES_HEAD + "900,100\n960,\n", "prices.csv row 3: price is empty"),
        (PRICES_HEAD + "900,100\n960,0\n", "prices.csv row 3: price 0.0 must be > 0"),
        (PRICES_HEAD + "900,100\n960,-5\n", "prices.csv row 3: price -5.0 must be > 0"),
        (
            PRICES_HEAD + "900,100\n960,101\n930,102\n",
            "prices.csv row 4: ts 930.0 is not after the previous row (unsorted)",
        ),
        (
            PRICES_HEAD + "900,100\n960,101\n960,102\n",
            "prices.csv row 4: ts 960.0 is not after the previous row (duplicate)",
        ),
        (
            # A blank line still counts: the bad row is line 5 of the file.
            PRICES_HEAD + "900,100\n\n960,101\n960,102\n",
            "prices.csv row 5: ts 960.0 is not after the previous row (duplicate)",
        ),
        ("ts,price,volume\n900,100,1\n960,101,-2\n", "prices.csv row 3: volume -2.0 is negative"),
    ],
)
def test_bad_prices(tmp_path: Path, prices: str, expected: str) -> None:
    assert load_error(write_synthetic(tmp_path, prices=prices)) == expected


def test_bad_prices_gzip_name_in_message(tmp_path: Path) -> None:
    prices = PRICES_HEAD + "1766723400.0,1\n1766723460.0,2\n1766723460.0,3\n"
    d = write_synthetic(tmp_path, prices=prices, gz=("prices",))
    assert load_error(d) == (
        "prices.csv.gz row 4: ts 1766723460.0 is not after the previous row (duplicate)"
    )


def test_unsorted_per_asset_names_asset(tmp_path: Path) -> None:
    markets = "market_id,asset,start_ts,end_ts\nsyn-btc,BTC,1000,1900\nsyn-eth,ETH,1000,1900\n"
    # Interleaved assets are fine; only ETH goes backwards (row 5).
    prices = "ts,asset,price\n900,BTC,1\n960,ETH,2\n960,BTC,3\n950,ETH,4\n"
    d = write_synthetic(tmp_path, markets=markets, prices=prices, book=None)
    assert load_error(d) == (
        "prices.csv row 5: ts 950.0 is not after the previous ETH row (unsorted)"
    )


def test_empty_asset_cell_defaults_to_the_single_asset(tmp_path: Path) -> None:
    prices = "ts,asset,price\n900,,1\n960,BTC,2\n"
    ds = load_dataset(write_synthetic(tmp_path, prices=prices, book=None))
    assert ds.prices["BTC"].price.tolist() == [1.0, 2.0]


def test_prices_without_asset_need_a_single_asset(tmp_path: Path) -> None:
    markets = "market_id,asset,start_ts,end_ts\nsyn-btc,BTC,1000,1900\nsyn-eth,ETH,1000,1900\n"
    d = write_synthetic(tmp_path, markets=markets, book=None)
    assert load_error(d) == (
        "prices.csv row 2: no asset column but markets.csv has several assets (BTC, ETH)"
    )


MARKETS_HEAD = "market_id,asset,start_ts,end_ts,price_to_beat,outcome,fee_rate\n"


@pytest.mark.parametrize(
    ("markets", "expected"),
    [
        (
            MARKETS_HEAD
            + "syn-a,BTC,1000,1900,,,\nsyn-b,BTC,1900,2800,,,\nsyn-a,BTC,2800,3700,,,\n",
            "markets.csv row 4: duplicate market_id 'syn-a' (first on row 2)",
        ),
        (
            MARKETS_HEAD + "syn-a,BTC,1000,1900,,,\nsyn-b,BTC,1900,1900,,,\n",
            "markets.csv row 3: start_ts 1900.0 is not before end_ts 1900.0",
        ),
        (
            MARKETS_HEAD + "syn-a,BTC,2000,1900,,,\n",
            "markets.csv row 2: start_ts 2000.0 is not before end_ts 1900.0",
        ),
        (
            MARKETS_HEAD + "syn-a,BTC,1000,1900,0,,\n",
            "markets.csv row 2: price_to_beat 0.0 must be > 0",
        ),
        (
            MARKETS_HEAD + "syn-a,BTC,1000,1900,,maybe,\n",
            "markets.csv row 2: outcome 'maybe' is not up, down or empty",
        ),
        (
            MARKETS_HEAD + "syn-a,BTC,1000,1900,,,1.5\n",
            "markets.csv row 2: fee_rate 1.5 is outside 0..1",
        ),
        (
            MARKETS_HEAD + "syn-a,BTC,1000,1900,,,-0.1\n",
            "markets.csv row 2: fee_rate -0.1 is outside 0..1",
        ),
        (
            MARKETS_HEAD + "syn-a,BTC,10x0,1900,,,\n",
            "markets.csv row 2: start_ts '10x0' is not a number",
        ),
        (MARKETS_HEAD + ",BTC,1000,1900,,,\n", "markets.csv row 2: market_id is empty"),
        (MARKETS_HEAD, "markets.csv: no data rows"),
    ],
)
def test_bad_markets(tmp_path: Path, markets: str, expected: str) -> None:
    assert load_error(write_synthetic(tmp_path, markets=markets, book=None)) == expected


BOOK_HEAD = "market_id,ts,up_bid,up_ask,down_bid,down_ask,up_ask_size\n"


@pytest.mark.parametrize(
    ("book", "expected"),
    [
        (
            BOOK_HEAD + "syn-a,1001,0.4,0.5,0.5,0.6,1\nsyn-x,1002,0.4,0.5,0.5,0.6,1\n",
            "book.csv row 3: unknown market_id 'syn-x' (not in markets.csv)",
        ),
        (
            BOOK_HEAD + "syn-a,1001,0.4,1.2,0.5,0.6,1\n",
            "book.csv row 2: up_ask 1.2 is outside 0..1",
        ),
        (
            BOOK_HEAD + "syn-a,1001,0.4,0.5,-0.01,0.6,1\n",
            "book.csv row 2: down_bid -0.01 is outside 0..1",
        ),
        (
            BOOK_HEAD + "syn-a,1001,0.4,0.5,0.5,0.6,-1\n",
            "book.csv row 2: up_ask_size -1.0 is negative",
        ),
        (
            BOOK_HEAD
            + "syn-a,1001,0.4,0.5,0.5,0.6,1\nsyn-b,1000,0.4,0.5,0.5,0.6,1\n"
            + "syn-a,1000,0.4,0.5,0.5,0.6,1\n",
            "book.csv row 4: ts 1000.0 is not after the previous row of market 'syn-a' (unsorted)",
        ),
        (
            BOOK_HEAD + "syn-a,,0.4,0.5,0.5,0.6,1\n",
            "book.csv row 2: ts is empty",
        ),
    ],
)
def test_bad_book(tmp_path: Path, book: str, expected: str) -> None:
    assert load_error(write_synthetic(tmp_path, book=book)) == expected


def test_bad_book_gzip(tmp_path: Path) -> None:
    book = BOOK_HEAD + "syn-a,1001,0.4,0.5,0.5,0.6,1\n" * 3 + "btc-x,1002,0.4,0.5,0.5,0.6,1\n"
    d = write_synthetic(tmp_path, book=book, gz=("book",))
    assert load_error(d) == "book.csv.gz row 5: unknown market_id 'btc-x' (not in markets.csv)"


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ("ts,price\n900,1,7\n960,2\n", "prices.csv row 2: more fields than the header"),
        ("ts,price\n900,1\n960,2\n1020,3,7\n", "prices.csv row 4: 3 fields where the header has 2"),
    ],
)
def test_rows_longer_than_header(tmp_path: Path, prices: str, expected: str) -> None:
    assert load_error(write_synthetic(tmp_path, prices=prices)) == expected


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    d = write_synthetic(tmp_path, prices="")
    assert load_error(d) == "prices.csv: file is empty (no header)"
    (d / "prices.csv").unlink()
    (d / "prices.csv.gz").write_bytes(b"not gzip at all")
    assert load_error(d).startswith("prices.csv.gz: cannot read:")
