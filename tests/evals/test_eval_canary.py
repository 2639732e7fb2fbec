"""Look-ahead canary: poisoning data a decision must not see cannot change the eval.

A slice of the embedded recording is copied and its *future* rows are poisoned (BTC prices
scaled by 1.37, Up and Down quotes swapped, depth cut to one share; outcomes untouched):

* rows no decision may ever read (book rows that are never the latest at or before a decision
  time, prices after the last decision) -> the whole eval JSON is identical;
* everything after a cut time -> every decision up to the cut is identical.

The last test plants a one-minute look-ahead in the replay and checks the canary catches it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from evalkit import embedded_slice, row_view

from core.settings import load_settings
from core.snapshot import MarketSnapshot
from evals.runner import EvalOptions, EvalResult, run_eval, summarize
from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed

CADENCE = 60.0
WINDOWS = 6


def _eval(path: Path) -> EvalResult:
    return run_eval(path, EvalOptions(cadence_s=CADENCE, trader="quant", workers=1),
                    settings=load_settings())


def _poison(src: Path, dst: Path, price_rows: Callable[[pd.DataFrame], Any],
            book_rows: Callable[[pd.DataFrame], Any]) -> Path:
    dst.mkdir(parents=True)
    (dst / "markets.csv").write_bytes((src / "markets.csv").read_bytes())
    prices = pd.read_csv(src / "prices.csv.gz")
    bad = price_rows(prices)
    prices.loc[bad, "price"] = (prices.loc[bad, "price"] * 1.37).round(2)
    prices.to_csv(dst / "prices.csv", index=False)
    book = pd.read_csv(src / "book.csv.gz")
    bad = book_rows(book)
    swapped = book.loc[bad, ["down_bid", "down_ask", "up_bid", "up_ask"]].to_numpy()
    book.loc[bad, ["up_bid", "up_ask", "down_bid", "down_ask"]] = swapped
    for col in ("up_bid_size", "up_ask_size", "down_bid_size", "down_ask_size"):
        book.loc[bad, col] = 1.0
    book.to_csv(dst / "book.csv", index=False)
    return dst


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EvalResult]:
    path = embedded_slice(tmp_path_factory.mktemp("canary"), WINDOWS)
    return path, _eval(path)


def _comparable(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in ("timing", "dataset")}


def test_rows_nobody_may_read_change_nothing(clean: tuple[Path, EvalResult],
                                             tmp_path: Path) -> None:
    path, result = clean
    feed = ReplayFeed(load_dataset(path))
    last_decision = max(r.t for r in result.decisions)
    visible: set[tuple[str, float]] = set()
    for m in feed.markets:
        book = feed.dataset.book(m.market_id)
        assert book is not None
        for t in feed.decision_times(m, CADENCE):
            j = book.index_at(t)
            if j >= 0:
                visible.add((m.market_id, float(book.ts[j])))

    def invisible_book(b: pd.DataFrame) -> Any:
        return ~pd.Series([(mid, float(ts)) in visible for mid, ts in
                           zip(b["market_id"], b["ts"], strict=True)], index=b.index)

    poisoned = _poison(path, tmp_path / "poisoned", lambda p: p["ts"] > last_decision,
                       invisible_book)
    # The poison is real: most book rows and the closing prices were changed.
    assert (pd.read_csv(poisoned / "book.csv")["up_ask"].to_numpy()
            != pd.read_csv(path / "book.csv.gz")["up_ask"].to_numpy()).mean() > 0.5
    dirty = _eval(poisoned)
    assert [row_view(r) for r in dirty.decisions] == [row_view(r) for r in result.decisions]
    assert _comparable(summarize(dirty)) == _comparable(summarize(result))


def _cut_time(result: EvalResult) -> float:
    m = result.feed.markets[WINDOWS // 2]
    return m.start_ts + 450.0 + 7.0  # mid-window, between two decision times


def test_everything_after_a_cut_cannot_reach_decisions_before_it(
        clean: tuple[Path, EvalResult], tmp_path: Path) -> None:
    path, result = clean
    cut = _cut_time(result)
    poisoned = _poison(path, tmp_path / "poisoned", lambda p: p["ts"] > cut,
                       lambda b: b["ts"] > cut)
    dirty = _eval(poisoned)
    before = [row_view(r) for r in result.decisions if r.t <= cut]
    assert [row_view(r) for r in dirty.decisions if r.t <= cut] == before
    assert len(before) > 30
    # After the cut the poison bites (so the equality above is not vacuous).
    after_clean = [r.p_market for r in result.decisions if r.t > cut]
    after_dirty = [r.p_market for r in dirty.decisions if r.t > cut]
    assert after_clean != after_dirty


def test_canary_catches_a_planted_leak(clean: tuple[Path, EvalResult], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay that peeks one minute ahead (while claiming the decision time) is caught."""
    path, result = clean
    cut = _cut_time(result)
    poisoned = _poison(path, tmp_path / "poisoned", lambda p: p["ts"] > cut,
                       lambda b: b["ts"] > cut)
    honest = ReplayFeed.snapshot_at

    def leaky(self: ReplayFeed, market: Any, t: float) -> MarketSnapshot:
        ahead = honest(self, market, min(t + 60.0, market.end_ts - 1e-3))
        return ahead.model_copy(update={"as_of": t})  # claims t, knows t + 60

    monkeypatch.setattr(ReplayFeed, "snapshot_at", leaky)
    leaky_clean = _eval(path)
    leaky_dirty = _eval(poisoned)
    before_clean = [row_view(r) for r in leaky_clean.decisions if r.t <= cut]
    before_dirty = [row_view(r) for r in leaky_dirty.decisions if r.t <= cut]
    assert before_clean != before_dirty
    differing = [a[2] for a, b in zip(before_clean, before_dirty, strict=True) if a != b]
    assert np.all(np.array(differing) > cut - 60.0)  # exactly the minute the leak reaches
