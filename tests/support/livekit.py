"""Helpers for the live-trading tests: settings aimed at a fake venue, synthetic snapshots of
its synthetic markets, and the invariants every fault test checks afterwards."""

from __future__ import annotations

import multiprocessing
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fakeclob import FakeClob, FakeMarket

from core.settings import Settings
from core.snapshot import BookTop, Candles, MarketSnapshot
from tools.execution import send_order
from tools.journal import Journal
from tools.journal.resting import RestingOrders
from tools.polymarket.resting import RestingVenueStore, SignedResting

if TYPE_CHECKING:
    from core.records import ExecutionReport
    from graphs.context import Context

# What the fork server imports once, so that each child process starts in milliseconds.
PRELOAD = ["live_driver", "canary_run", "agent.live", "agent.manual_order", "evals.replay_runner",
           "graphs.nodes", "graphs.graph", "langgraph.checkpoint.sqlite.aio"]


class SimTime:
    """Simulated time shared by a fake venue and the client: sleeping advances it, so a
    10 s lookup budget or a heartbeat deadline costs nothing in wall time."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.start = start
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt

    def now(self) -> float:
        return self.start + self.t


def execute_approved(state: dict[str, Any], ctx: Context) -> ExecutionReport:
    """The execute node's own call, outside the graph: the approved verdict in ``state`` sent
    through ``tools.execution.send_order`` with the context's broker, journal and clock."""
    journal, run_id = ctx.journaling()
    snap: MarketSnapshot = state["snapshot"]
    return send_order(verdict=state["verdict"], snapshot=snap, decision_id=state["decision_id"],
                      broker=ctx.order_broker, journal=journal, account=ctx.account,
                      run_id=run_id, stop_file=ctx.kill_switch, now=ctx.now(snap.as_of))


def fork_server() -> Any:
    """The multiprocessing context the process tests start their children from.

    A fork server is a fresh interpreter (not a fork of the test process and its threads)
    that has imported the project; every child is its own process, killed or exiting on its
    own.  The preload only takes effect if set before the server's first use, so every test
    asks for the context here.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def live_settings(url: str, private_key: str, tmp: Path, **overrides: Any) -> Settings:
    """Live settings pointed at a loopback fake venue; nothing read from the environment."""
    values: dict[str, Any] = {
        "polymarket_mode": "live",
        "polymarket_private_key": private_key,
        "polymarket_clob_url": url,
        "polymarket_gamma_url": url + "/gamma",
        "polymarket_order_timeout_s": 0.5,
        "polymarket_lookup_timeout_s": 10.0,
        "live_confirm": "trade real money",
        "journal_path": tmp / "journal.db",
        "stop_file": tmp / "STOP",
        "ai_decision_log_path": tmp / "decisions.jsonl",
        "openai_api_key": None,
        "sentiment_enabled": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def snapshot_for(market: FakeMarket, now: float, **overrides: Any) -> MarketSnapshot:
    """A synthetic snapshot of a fake market at ``now`` that passes every guard rule."""
    up_ask = market.asks[market.up_token][0][0] if market.asks[market.up_token] else None
    down_ask = market.asks[market.down_token][0][0] if market.asks[market.down_token] else None
    base: dict[str, Any] = {
        "market_id": market.slug,
        "as_of": now,
        "window_start": market.window_start,
        "window_end": market.window_end,
        "price_to_beat": 100_000.0,
        "price_to_beat_verified": True,
        "price": 100_010.0,
        "price_ts": now,
        "price_source": "synthetic",
        "candles": Candles(interval_s=60.0),
        "up": BookTop(ask=float(up_ask) if up_ask else None, ask_size=1000.0,
                      bid=float(up_ask) - 0.02 if up_ask else None, bid_size=1000.0),
        "down": BookTop(ask=float(down_ask) if down_ask else None, ask_size=1000.0,
                        bid=float(down_ask) - 0.02 if down_ask else None, bid_size=1000.0),
        "book_ts": now,
        "fee_rate": market.fee_rate,
        "tick_size": float(market.tick),
        "min_order_shares": float(market.min_size),
    }
    base.update(overrides)
    return MarketSnapshot(**base)


def journal_vs_venue(journal: Journal, fake: FakeClob, account: str) -> list[str]:
    """Every difference between the journal and the fake venue's ledger (empty = equal).

    Checked: at most one POST per order hash, at most one signed order per decision id and per
    market window, every posted hash journaled before it was posted, and for every order the
    journal's execution equals the venue's fills (shares and notional).
    """
    problems: list[str] = []
    signed = journal.signed_orders(account=account)
    by_hash = {s.order_hash.lower(): s for s in signed}
    resting_hashes = {r.order_hash.lower() for r in _resting_signed(journal)}
    intents = {i.order_id: i for i in journal.intents(account=account)}
    executions = {e.order_id: e for e in journal.executions(account=account)}
    for h, n in fake.posts_per_hash().items():
        if n > 1:
            problems.append(f"hash {h[:12]} posted {n} times")
        if h.lower() not in by_hash and h.lower() not in resting_hashes:
            problems.append(f"hash {h[:12]} posted but not journaled")
    decisions: dict[str, int] = {}
    windows: dict[str, int] = {}
    for s in signed:
        intent = intents[s.order_id]
        decisions[intent.decision_id] = decisions.get(intent.decision_id, 0) + 1
        windows[intent.market_id] = windows.get(intent.market_id, 0) + 1
    problems += [f"decision {d} signed {n} orders" for d, n in decisions.items() if n > 1]
    problems += [f"window {w} has {n} orders" for w, n in windows.items() if n > 1]
    venue = fake.filled_by_hash()
    for h in venue:
        if h.lower() not in by_hash:
            problems.append(f"venue fill of unknown order {h[:12]}")
    for s in signed:
        shares, notional = venue.get(s.order_hash, (Decimal(0), Decimal(0)))
        e = executions.get(s.order_id)
        if e is None or e.status == "error":
            problems.append(f"order {s.order_id} unresolved in the journal")
            continue
        j_shares = Decimal(repr(e.shares)) if e.status == "filled" else Decimal(0)
        j_notional = Decimal(repr(e.notional_usd)) if e.status == "filled" else Decimal(0)
        if abs(j_shares - shares) > Decimal("0.000001") or \
                abs(j_notional - notional) > Decimal("0.000001"):
            problems.append(f"order {s.order_id}: journal {e.status} {j_shares}/{j_notional}"
                            f" vs venue {shares}/{notional}")
    return problems + resting_vs_venue(journal, fake, account)


def _resting_signed(journal: Journal) -> list[SignedResting]:
    with journal.reading() as conn:
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND"
                              " name = 'resting_venue_orders'").fetchone()
    return RestingVenueStore(journal).all_signed() if exists else []


def resting_vs_venue(journal: Journal, fake: FakeClob, account: str) -> list[str]:
    """The resting-order part of the invariant (issue 16): every resting order the venue
    holds was journaled (intent and hash) before it was posted, each hash posted once, and
    per order the journal's state equals the venue's: open iff LIVE at the venue, the same
    filled shares (every maker fill journaled, none invented)."""
    problems: list[str] = []
    rows = {r.order_id: r for r in RestingOrders(journal).rows(account=account)}
    signed = _resting_signed(journal)
    maker = fake.maker_filled_by_hash()
    known = {s.order_hash.lower() for s in signed}
    for h, fo in fake.orders.items():
        if fo.order_type in ("GTC", "GTD") and h.lower() not in known:
            problems.append(f"resting order {h[:12]} at the venue, not journaled")
    for h in maker:
        if h.lower() not in known:
            problems.append(f"maker fill of unknown order {h[:12]}")
    for s in signed:
        row = rows.get(s.order_id)
        if row is None:
            problems.append(f"resting order {s.order_id} signed without an intent")
            continue
        venue_order = fake.orders.get(s.order_hash)
        venue_open = venue_order is not None and venue_order.status == "LIVE"
        journal_open = row.status in ("intent", "unknown", "resting")
        if venue_open != journal_open:
            problems.append(f"resting order {s.order_id}: journal {row.status}, venue "
                            f"{venue_order.status if venue_order else 'never posted'}")
        venue_shares = maker.get(s.order_hash, Decimal(0))
        if abs(Decimal(repr(row.filled_shares)) - venue_shares) > Decimal("0.000001"):
            problems.append(f"resting order {s.order_id}: journal filled {row.filled_shares}"
                            f" vs venue {venue_shares}")
    return problems
