"""Helpers for the eval tests: synthetic datasets in the interchange format, slices of the
embedded recording, and comparable views of decision rows.

Every dataset written by ``write_synthetic`` is synthetic (seeded random walks; ids
``syn-*``): test fixtures, never market data.
"""

from __future__ import annotations

import csv
import gzip
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evals.replay import DecisionRow

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ROOT / "data" / "recorded" / "pm15m_20251226_coinbase1m"
SYN_START = 1_800_000_000  # a multiple of 900 (2027-01-15 08:00 UTC)


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_synthetic(
    root: Path,
    *,
    windows: int = 4,
    window_s: int = 900,
    book: bool = True,
    fee_rate: float | str = 0.07,
    outcomes: Sequence[str | None] | None = None,
    extra_markets: Sequence[tuple[str, float, float]] = (),
    seed: int = 3,
    name: str = "synthetic_dataset",
) -> Path:
    """A synthetic dataset: 1-minute BTC closes (2 h of warm-up before the first window), one
    market per window, and (optionally) a book every 10 s whose Up mid follows a crude fair
    value.  ``outcomes`` overrides the recorded outcome per window (None = empty cell);
    ``extra_markets`` adds (market_id, start_ts, end_ts) windows (e.g. overlapping ones)."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    first = SYN_START - 7200
    last = SYN_START + windows * window_s + 600
    ts = np.arange(first, last + 1, 60, dtype=np.int64)
    price = 60_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0006, size=len(ts))))
    price_at = dict(zip(ts.tolist(), price.tolist(), strict=True))

    def at(t: float) -> float:
        # Outside the synthetic path (a window placed before it on purpose): a flat 1.0.
        return price_at.get(int(t // 60 * 60), 1.0)

    markets: list[tuple[str, float, float]] = [
        (f"syn-{window_s // 60}m-{SYN_START + i * window_s}", SYN_START + i * window_s,
         SYN_START + (i + 1) * window_s) for i in range(windows)]
    markets += list(extra_markets)
    market_rows = []
    for i, (mid, start, end) in enumerate(markets):
        derived = "up" if at(end) >= at(start) else "down"
        outcome = derived if outcomes is None or i >= len(outcomes) else (outcomes[i] or "")
        market_rows.append([mid, "BTC", start, end, "", outcome, fee_rate])
    _write_csv(d / "markets.csv",
               ["market_id", "asset", "start_ts", "end_ts", "price_to_beat", "outcome",
                "fee_rate"], market_rows)
    _write_csv(d / "prices.csv", ["ts", "price", "volume", "source"],
               [[int(t), round(p, 2), 1.0, "synthetic"] for t, p in zip(ts, price, strict=True)])
    if book:
        rows = []
        for mid, start, end in markets:
            k = at(start)
            for t in range(int(start) + 5, int(end), 10):
                s = at(t)
                mid_up = 0.5 + 0.45 * math.tanh((s / k - 1.0) * 800.0)
                mid_up = min(0.97, max(0.03, mid_up + rng.normal(0.0, 0.03)))
                up_bid, up_ask = round(mid_up - 0.01, 2), round(mid_up + 0.01, 2)
                rows.append([mid, t, up_bid, up_ask, round(1 - up_ask, 2), round(1 - up_bid, 2),
                             400.0, 400.0, 400.0, 400.0])
        _write_csv(d / "book.csv",
                   ["market_id", "ts", "up_bid", "up_ask", "down_bid", "down_ask",
                    "up_bid_size", "up_ask_size", "down_bid_size", "down_ask_size"], rows)
    return d


def embedded_slice(root: Path, windows: int, name: str = "embedded_slice") -> Path:
    """The first ``windows`` windows of the embedded real recording (prices kept whole)."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    lines = (EMBEDDED / "markets.csv").read_text(encoding="utf-8").splitlines()
    keep = lines[1:windows + 1]
    (d / "markets.csv").write_text("\n".join([lines[0], *keep]) + "\n", encoding="utf-8")
    ids = {row.split(",")[0] for row in keep}
    (d / "prices.csv.gz").write_bytes((EMBEDDED / "prices.csv.gz").read_bytes())
    with gzip.open(EMBEDDED / "book.csv.gz", "rt") as src:
        book = src.read().splitlines()
    with gzip.open(d / "book.csv.gz", "wt") as dst:
        dst.write("\n".join([book[0], *(r for r in book[1:] if r.split(",")[0] in ids)])
                  + "\n")
    return d


def row_view(r: DecisionRow) -> tuple[Any, ...]:
    """A decision row without what legitimately differs between runs (wall-clock latency and
    the run id inside decision and order ids)."""
    order = None
    if r.order is not None:
        rep = r.order.report
        order = (rep.status, rep.side, rep.shares, rep.avg_price, rep.notional_usd, rep.fee_usd,
                 rep.stake_usd, rep.worst_price, r.order.ts, r.order.intent is not None)
    guard = None
    if r.guard is not None:
        guard = (r.guard.proposal, r.guard.fair, r.guard.verdict)
    return (r.window, r.market_id, r.t, r.p_agent, r.p_fair, r.p_market, r.decision,
            r.decided_by, r.proposal_side, r.edge_after_fees, r.approved, r.rejected_by,
            r.after_entry, r.llm_calls, guard, order)


def cut_embedded(
    root: Path,
    name: str,
    *,
    windows: int,
    price_from: float | None = None,
    price_to: float | None = None,
    holes: Sequence[tuple[float, float]] = (),
    drop_book: Sequence[int] = (),
    price_to_beat: bool = False,
) -> Path:
    """The first ``windows`` windows of the embedded real recording, its price path cut: rows
    before ``price_from`` / after ``price_to`` dropped, rows inside each (a, b) hole dropped
    (times relative to nothing: absolute epoch seconds); book rows of the windows at the
    indices in ``drop_book`` dropped; ``price_to_beat`` fills that column from the uncut path
    (the close at each start), so nothing needs deriving.  Real data, only cut."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    markets = (EMBEDDED / "markets.csv").read_text(encoding="utf-8").splitlines()
    header, rows = markets[0], markets[1:windows + 1]
    with gzip.open(EMBEDDED / "prices.csv.gz", "rt") as src:
        prices = src.read().splitlines()
    close_at = {float(r.split(",")[0]): r.split(",")[1] for r in prices[1:]}
    if price_to_beat:
        cols = header.split(",")
        k = cols.index("price_to_beat")
        cut = []
        for r in rows:
            cells = r.split(",")
            cells[k] = close_at[float(cells[cols.index("start_ts")])]
            cut.append(",".join(cells))
        rows = cut
    (d / "markets.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")

    def keep(line: str) -> bool:
        ts = float(line.split(",")[0])
        if price_from is not None and ts < price_from:
            return False
        if price_to is not None and ts > price_to:
            return False
        return not any(a < ts < b for a, b in holes)

    with gzip.open(d / "prices.csv.gz", "wt") as dst:
        dst.write("\n".join([prices[0], *(r for r in prices[1:] if keep(r))]) + "\n")
    ids = [r.split(",")[0] for r in rows]
    dropped = {ids[i] for i in drop_book}
    with gzip.open(EMBEDDED / "book.csv.gz", "rt") as src:
        book = src.read().splitlines()
    with gzip.open(d / "book.csv.gz", "wt") as dst:
        dst.write("\n".join([book[0], *(r for r in book[1:] if r.split(",")[0] in ids
                                        and r.split(",")[0] not in dropped)]) + "\n")
    return d
