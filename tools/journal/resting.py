"""Resting (maker) orders in the journal: schema version 5's ``resting_orders`` and
``maker_fills`` tables.

A resting order is journaled as an intent BEFORE it is sent (status ``intent``: if the process
dies before the venue answers, a restart looks it up and cancels or adopts it, never sends it
again), then every state the venue reports (``resting``, ``filled``, ``cancelled``,
``rejected``) with the fills so far.  ``unknown`` marks a send whose outcome was lost.

When a window's maker activity ends (its cut-off), the runner journals what was bought as the
window's one entry in ``order_intents`` / ``executions`` (``tools.maker``), so settlement, P&L
and the guard's ledger see a maker entry exactly like a taker one.  These tables keep the
detail: every order, replace and fill, and the execution style of each.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from core.resting import RestingOrder
from tools.journal.base import JournalBase, money

OPEN_STATUSES = ("intent", "resting", "unknown")


@dataclass(frozen=True, slots=True)
class RestingRow:
    order_id: str
    account: str
    decision_id: str
    market_id: str
    side: str
    execution_style: str
    price: float
    shares: float
    status: str
    filled_shares: float
    rebate_usd: float
    replaces: str | None
    reason: str | None
    created_ts: float
    updated_ts: float


class RestingOrders:
    """The resting-order tables of one journal (same file, same connection and lock)."""

    def __init__(self, journal: JournalBase) -> None:
        self._journal = journal

    def record_intent(self, *, account: str, run_id: str, decision_id: str, order_id: str,
                      market_id: str, side: str, execution_style: str, price: float,
                      shares: float, post_only: bool, expires_at: float | None,
                      replaces: str | None, ts: float) -> None:
        """Before the order is sent.  A second intent with the same order id raises
        ``sqlite3.IntegrityError``: an order is sent once."""
        with self._journal._tx() as cur:
            self._journal._require_run(cur, run_id)
            cur.execute(
                "INSERT INTO resting_orders (order_id, account, run_id, decision_id, market_id,"
                " side, execution_style, price, shares, post_only, expires_at, replaces,"
                " created_ts, updated_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (order_id, account, run_id, decision_id, market_id, side, execution_style,
                 price, shares, int(post_only), expires_at, replaces, ts, ts))

    def record_state(self, order: RestingOrder, *, ts: float) -> None:
        """The venue's latest view of the order: status, fills so far (new ones appended)."""
        with self._journal._tx() as cur:
            known = cur.execute("SELECT COUNT(*) FROM maker_fills WHERE order_id = ?",
                                (order.order_id,)).fetchone()[0]
            for seq, fill in enumerate(order.fills[known:], start=known):
                cur.execute(
                    "INSERT INTO maker_fills (order_id, seq, ts, shares, price, rebate_usd, rule)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (order.order_id, seq, fill.ts, fill.shares, fill.price,
                     money(fill.rebate_usd), fill.rule))
            updated = cur.execute(
                "UPDATE resting_orders SET status = ?, filled_shares = ?, rebate_usd = ?,"
                " reason = ?, updated_ts = ? WHERE order_id = ?",
                (order.status, order.filled_shares, money(order.rebate_usd), order.reason, ts,
                 order.order_id))
            if updated.rowcount != 1:
                raise sqlite3.IntegrityError(f"no resting order {order.order_id!r} journaled")

    def mark_unknown(self, order_id: str, *, reason: str, ts: float) -> None:
        """The send raised: the venue may hold the order.  Look it up before anything else."""
        with self._journal._tx() as cur:
            cur.execute("UPDATE resting_orders SET status = 'unknown', reason = ?,"
                        " updated_ts = ? WHERE order_id = ?", (reason, ts, order_id))

    def rows(self, *, account: str, market_id: str | None = None,
             open_only: bool = False) -> list[RestingRow]:
        sql = ("SELECT order_id, account, decision_id, market_id, side, execution_style, price,"
               " shares, status, filled_shares, rebate_usd, replaces, reason, created_ts,"
               " updated_ts FROM resting_orders WHERE account = ?")
        args: list[object] = [account]
        if market_id is not None:
            sql += " AND market_id = ?"
            args.append(market_id)
        if open_only:
            sql += f" AND status IN ({', '.join('?' * len(OPEN_STATUSES))})"
            args.extend(OPEN_STATUSES)
        with self._journal._read() as cur:
            return [RestingRow(*r) for r in cur.execute(sql + " ORDER BY created_ts, order_id",
                                                         args).fetchall()]
