"""Maker latency on loopback (``make bench-latency``): how fast a stale quote is pulled and a
decision becomes an order on the wire.

A loopback HTTP server stands in for the CLOB (``POST /order``, ``DELETE /order``, answering
200 at once); requests go over one persistent keep-alive connection, and each measurement
stops when the request has been written to the socket (it has left the process).

* trade -> cancel: a Binance ``btcusdt@trade`` frame (text, as the websocket delivers it) is
  parsed (``feeds.binance.parse_trade``), the snapshot takes its price, fair value is
  recomputed (``tools.fair_value``), the resting bid re-quoted (``core.maker``) and, the
  quote having moved past the threshold, the cancel is sent.  Every frame alternates the
  price by enough to move fair value past the threshold, so every frame ends in a cancel.
* decision -> order: from the trader's decision to the post-only order on the wire: the
  maker side and price, the resting-order guard, the intent journaled in a SQLite journal on
  disk (WAL, synchronous=FULL, as in production) and the send.

Targets (quiet machine): trade -> cancel p99 <= 10 ms, decision -> order p99 <= 15 ms.
"""

from __future__ import annotations

import http.client
import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from core.guard import GuardLimits
from core.maker import MakerParams, maker_side, needs_replace, quote_price
from core.records import TradeProposal
from core.resting import RestingExposure
from core.resting_guard import evaluate_resting
from core.settings import Settings
from core.snapshot import BookTop, MarketSnapshot
from feeds.binance import Trade, parse_trade
from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed
from tools.fair_value import estimate_fair_value
from tools.journal import Journal
from tools.journal.resting import RestingOrders

TARGET_TRADE_TO_CANCEL_MS = 10.0
TARGET_DECISION_TO_ORDER_MS = 15.0
DATASET = Path(__file__).resolve().parents[2] / "data" / "recorded" / "pm15m_20251226_coinbase1m"


class _Clob(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        body = b'{"success":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = _answer
    do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Wire:
    """One keep-alive connection to the loopback CLOB; ``send`` returns when the request has
    been written to the socket, the answer is read afterwards (outside the measurement)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def send(self, method: str, body: bytes) -> float:
        self.conn.request(method, "/order", body=body,
                          headers={"Content-Type": "application/json"})
        sent = time.perf_counter()
        self.conn.getresponse().read()
        return sent


def _base_snapshot() -> MarketSnapshot:
    """A real decision point of the embedded recording, mid-window, with a two-sided book."""
    feed = ReplayFeed(load_dataset(DATASET), cadence_s=30.0, max_price_age_s=2.0)
    market = feed.markets[len(feed.markets) // 2]
    snap = feed.snapshot_at(market, market.start_ts + 400.0)
    return snap.model_copy(update={
        "up": BookTop(bid=0.48, ask=0.52, bid_size=200.0, ask_size=200.0),
        "down": BookTop(bid=0.48, ask=0.52, bid_size=200.0, ask_size=200.0),
        "price_to_beat": snap.price, "price_interval_s": 0.0, "price_ts": snap.as_of,
        "book_ts": snap.as_of})


def _frames(price: float, n: int, move: float) -> list[str]:
    out = []
    for i in range(n):
        p = price * (1.0 + (move if i % 2 else -move))
        out.append(json.dumps({"e": "trade", "E": 1_766_750_000_000 + i, "s": "BTCUSDT",
                               "t": 1000 + i, "p": f"{p:.2f}", "q": "0.01",
                               "T": 1_766_750_000_000 + i, "m": False}))
    return out


def trade_to_cancel(wire: _Wire, n: int, params: MakerParams) -> list[float]:
    snap = _base_snapshot()
    fair = estimate_fair_value(snap)
    assert fair is not None
    resting_price = quote_price(fair, snap, "up", params) or 0.4
    latencies: list[float] = []
    for frame in _frames(snap.price, n, move=0.002):
        start = time.perf_counter()
        trade = parse_trade(frame)
        if not isinstance(trade, Trade):
            raise RuntimeError(f"benchmark frame refused: {trade}")
        now = snap.as_of
        moved = snap.model_copy(update={"price": trade.price, "price_ts": now})
        fv = estimate_fair_value(moved)
        new_price = None if fv is None else quote_price(fv, moved, "up", params)
        if not needs_replace(resting_price, new_price, params):
            raise RuntimeError("the benchmark move did not pass the replace threshold")
        sent = wire.send("DELETE", b'{"orderID":"0xbench"}')
        latencies.append(sent - start)
        resting_price = new_price if new_price is not None else resting_price
    return latencies


def decision_to_order(wire: _Wire, n: int, params: MakerParams, journal_path: Path
                      ) -> list[float]:
    snap = _base_snapshot()
    fair = estimate_fair_value(snap.model_copy(update={"price": snap.price * 1.001}))
    assert fair is not None
    snap = snap.model_copy(update={"price": fair.price})
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    limits = GuardLimits.for_replay(settings)
    journal = Journal(journal_path)
    resting = RestingOrders(journal)
    run_id = journal.start_run(account="bench", mode="paper", dataset=None, config={})
    latencies: list[float] = []
    for i in range(n):
        start = time.perf_counter()
        quote = maker_side(fair, snap, params, limits.min_edge)
        if quote is None:
            raise RuntimeError("the benchmark snapshot offers no maker edge")
        side, price = quote
        book = snap.book_for(side)
        assert book is not None
        assert book.ask is not None
        proposal = TradeProposal(side=side, stake_usd=25.0, confidence=90,
                                 fair_p=fair.fair_for(side), ask=book.ask,
                                 worst_price=min(book.ask + 0.02, 0.99))
        verdict = evaluate_resting(proposal, snap, fair, limits,
                                   journal.ledger_view(account="bench", day_start=0.0,
                                                       now=snap.as_of),
                                   snap.as_of, price=price, exposure=RestingExposure(),
                                   params=params, kill_switch_engaged=False)
        if not verdict.approved:
            raise RuntimeError(f"benchmark order refused: {verdict.rules_fired}")
        order_id = f"bench-{i}"
        resting.record_intent(account="bench", run_id=run_id, decision_id=order_id,
                              order_id=order_id, market_id=snap.market_id, side=side,
                              execution_style="maker", price=price, shares=verdict.shares,
                              post_only=True, expires_at=snap.window_end - 60.0,
                              replaces=None, ts=snap.as_of)
        body = json.dumps({"order": {"tokenID": "bench", "price": f"{price:.2f}",
                                     "size": f"{verdict.shares:.2f}", "side": "BUY"},
                           "orderType": "GTD", "postOnly": True}).encode()
        sent = wire.send("POST", body)
        latencies.append(sent - start)
    journal.close()
    return latencies


def _stats(latencies: list[float]) -> dict[str, float]:
    ms = np.asarray(latencies) * 1000.0
    return {"n": float(ms.size), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p90_ms": round(float(np.percentile(ms, 90)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "max_ms": round(float(ms.max()), 3)}


def run(n: int = 2000) -> dict[str, Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Clob)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        wire = _Wire(server.server_address[1])
        params = MakerParams.load()
        trade_to_cancel(wire, 50, params)  # warm-up: imports, caches, the connection
        t2c = _stats(trade_to_cancel(wire, n, params))
        with tempfile.TemporaryDirectory() as tmp:
            decision_to_order(wire, 50, params, Path(tmp) / "warm.db")
            d2o = _stats(decision_to_order(wire, n, params, Path(tmp) / "bench.db"))
        # The same path with the journal in memory: what the code costs without the disk's
        # fsync (the intent is journaled durably before the send, so production pays it).
        mem = _stats(decision_to_order(wire, n, params, Path(":memory:")))
    finally:
        server.shutdown()
        server.server_close()
    return {"trade_to_cancel": {**t2c, "target_p99_ms": TARGET_TRADE_TO_CANCEL_MS,
                                "met": t2c["p99_ms"] <= TARGET_TRADE_TO_CANCEL_MS},
            "decision_to_order": {**d2o, "target_p99_ms": TARGET_DECISION_TO_ORDER_MS,
                                  "met": d2o["p99_ms"] <= TARGET_DECISION_TO_ORDER_MS},
            "decision_to_order_memory_journal": {
                **mem, "target_p99_ms": TARGET_DECISION_TO_ORDER_MS,
                "met": mem["p99_ms"] <= TARGET_DECISION_TO_ORDER_MS}}


def latency_bench_command(n: int, json_out: Path | None) -> None:
    """``updown bench --suite latency``: print (and optionally write) the figures."""
    result = run(n)
    for name, r in result.items():
        sys.stdout.write(f"{name:28s} n={r['n']:.0f} p50 {r['p50_ms']:.3f} ms  "
              f"p90 {r['p90_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  "
              f"max {r['max_ms']:.3f} ms  (target p99 <= "
              f"{r['target_p99_ms']:g} ms: {'met' if r['met'] else 'NOT met'})\n")
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
