"""feeds.candles: bucketing rule (close at interval end, boundary row ends its candle), gaps,
and the as-of tail.  Hand-made arrays here are synthetic fixtures; the last test uses the
embedded real dataset."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.candles import CandleSeries, build_candles
from feeds.recorded import EMBEDDED_DATASET_DIR


def _arr(*xs: float) -> np.ndarray:
    return np.array(xs, dtype=np.float64)


def test_one_minute_closes_are_one_candle_each() -> None:
    # Synthetic 1-minute closes stamped at the close: each row is its own candle.
    ts = _arr(60.0, 120.0, 180.0)
    px = _arr(100.0, 101.0, 99.5)
    c = build_candles(ts, px, None, 60.0)
    assert c.close_ts.tolist() == [60.0, 120.0, 180.0]
    assert c.open.tolist() == c.close.tolist() == c.high.tolist() == c.low.tolist() == px.tolist()
    assert c.volume is None
    assert len(c) == 3


def test_boundary_row_belongs_to_candle_ending_there_and_gaps_are_not_filled() -> None:
    # Synthetic ticks: 60.0 closes the first candle, 60.5 opens the second; nothing in 120..180.
    ts = _arr(0.5, 30.0, 60.0, 60.5, 119.0, 180.2, 200.0)
    px = _arr(10.0, 12.0, 11.0, 9.0, 9.5, 20.0, 19.0)
    vol = _arr(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)
    c = build_candles(ts, px, vol, 60.0)
    assert c.close_ts.tolist() == [60.0, 120.0, 240.0]
    assert c.open.tolist() == [10.0, 9.0, 20.0]
    assert c.high.tolist() == [12.0, 9.5, 20.0]
    assert c.low.tolist() == [10.0, 9.0, 19.0]
    assert c.close.tolist() == [11.0, 9.5, 19.0]
    assert c.volume is not None
    assert c.volume.tolist() == [6.0, 9.0, 13.0]


def test_unknown_volume_makes_that_candle_unknown() -> None:
    c = build_candles(_arr(10.0, 20.0, 70.0), _arr(1.0, 2.0, 3.0), _arr(1.0, np.nan, 2.0))
    assert c.volume is not None
    assert math.isnan(c.volume[0])
    assert c.volume[1] == 2.0


def test_other_interval_and_empty_input() -> None:
    c = build_candles(_arr(1.0, 299.0, 300.0, 301.0), _arr(1.0, 3.0, 2.0, 5.0), None, 300.0)
    assert c.close_ts.tolist() == [300.0, 600.0]
    assert c.close.tolist() == [2.0, 5.0]
    empty = build_candles(_arr(), _arr(), _arr(), 60.0)
    assert len(empty) == 0
    assert empty.volume is not None
    assert len(empty.tail(1e12, 10)) == 0


@pytest.mark.parametrize(
    ("ts", "px", "interval", "match"),
    [
        (_arr(2.0, 1.0), _arr(1.0, 1.0), 60.0, "strictly increasing"),
        (_arr(1.0, 1.0), _arr(1.0, 1.0), 60.0, "strictly increasing"),
        (_arr(1.0, 2.0), _arr(1.0), 60.0, "same length"),
        (_arr(1.0, np.inf), _arr(1.0, 1.0), 60.0, "finite"),
        (_arr(1.0), _arr(1.0), 0.0, "interval_s"),
    ],
)
def test_bad_input_is_rejected(ts: np.ndarray, px: np.ndarray, interval: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_candles(ts, px, None, interval)


def test_tail_is_as_of_and_bounded() -> None:
    ts = np.arange(1, 11, dtype=np.float64) * 60.0  # synthetic closes at 60..600
    c = build_candles(ts, ts / 60.0, None, 60.0)
    assert len(c.tail(59.9, 5)) == 0
    t = c.tail(300.0, 3)  # a candle closing exactly at as_of is included
    assert t.close_ts == (180.0, 240.0, 300.0)
    assert t.close == (3.0, 4.0, 5.0)
    assert t.interval_s == 60.0
    assert t.volume is None
    assert c.tail(359.0, 100).close_ts[-1] == 300.0
    assert len(c.tail(359.0, 100)) == 5
    assert len(c.tail(1e9, 0)) == 0
    assert c.count_at(300.0) == 5
    # Repeated calls for the same minute reuse the built object (the decision hot path).
    assert c.tail(300.5, 3) is c.tail(359.0, 3)


def test_series_rejects_misaligned_columns() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        CandleSeries(60.0, _arr(60.0), _arr(1.0), _arr(1.0), _arr(1.0), _arr())


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.01, max_value=200.0), min_size=1, max_size=80),
    interval=st.sampled_from([1.0, 15.0, 60.0, 300.0]),
    as_of=st.floats(min_value=0.0, max_value=20_000.0),
)
def test_candle_invariants(gaps: list[float], interval: float, as_of: float) -> None:
    ts = np.cumsum(np.array(gaps))
    if not np.all(np.diff(ts) > 0):
        return  # float addition collapsed two ticks; not a valid path
    px = 100.0 + np.sin(ts)  # synthetic price path
    c = build_candles(ts, px, np.ones_like(ts), interval)
    assert np.all(np.diff(c.close_ts) > 0)
    assert np.all(c.high >= np.maximum(c.open, c.close))
    assert np.all(c.low <= np.minimum(c.open, c.close))
    assert c.volume is not None
    assert c.volume.sum() == pytest.approx(len(ts))
    # Every row lies in (close_ts - interval, close_ts] of exactly one candle.
    idx = np.searchsorted(c.close_ts, ts, side="left")
    assert np.all(ts <= c.close_ts[idx])
    assert np.all(ts > c.close_ts[idx] - interval)
    tail = c.tail(as_of, 7)
    assert len(tail) <= 7
    assert all(x <= as_of for x in tail.close_ts)
    assert len(tail) == min(7, int(np.sum(c.close_ts <= as_of)))


def test_embedded_coinbase_closes_make_one_candle_per_row() -> None:
    prices = pd.read_csv(EMBEDDED_DATASET_DIR / "prices.csv.gz")
    c = build_candles(prices["ts"].to_numpy(), prices["price"].to_numpy(), None, 60.0)
    assert len(c) == 841
    assert c.close_ts[0] == 1766723400.0
    assert c.close[0] == 88626.46
    assert np.array_equal(c.close_ts, prices["ts"].to_numpy())
