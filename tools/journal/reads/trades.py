"""One row per order: entry, fill, outcome and P&L (``updown trades``, the dashboard's list).

Newest entry first, paged by ``limit``/``offset``: an account places at most
``MAX_ORDERS_PER_DAY`` orders a day, so the table holds thousands of orders, not millions, and
the ``order_intents_created`` index serves the order.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from core.records import Side
from tools.journal.reads.common import UNKNOWN_OUTCOME_SQL, check_page, intent_filters, rows


@dataclass(frozen=True, slots=True)
class TradeRow:
    order_id: str
    account: str
    run_id: str
    market_id: str
    side: Side
    entry_ts: float
    # What the guard approved: the intended stake and the worst price accepted.
    stake_usd: float
    worst_price: float
    # Intent status: pending | filled | killed | error.
    status: str
    # Pending, or an 'error' report not yet reconciled: the venue may have filled it.
    outcome_unknown: bool
    # The fill (None / 0 until an execution is recorded, 0 shares when killed).
    price: float | None
    shares: float
    notional_usd: float
    fee_usd: float
    # The settlement (None until the window is settled).
    outcome: Side | None
    outcome_verified: bool | None
    settled_ts: float | None
    payout_usd: float | None
    pnl_usd: float | None


def trades(
    conn: sqlite3.Connection,
    *,
    account: str | None = None,
    market_id: str | None = None,
    run_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[TradeRow]:
    """Orders matching every given filter, newest entry first (ties by order id, descending)."""
    check_page(limit, offset)
    where, args = intent_filters(account=account, market_id=market_id, run_id=run_id)
    found = rows(
        conn,
        "SELECT i.order_id, i.account, i.run_id, i.market_id, i.side, i.created_ts,"
        " i.stake_usd, i.worst_price, i.status,"
        f" {UNKNOWN_OUTCOME_SQL} AS outcome_unknown,"
        " e.avg_price, e.shares, e.notional_usd, e.fee_usd,"
        " s.outcome, s.outcome_verified, s.settled_ts, s.payout_usd, s.pnl_usd"
        " FROM order_intents i"
        " LEFT JOIN executions e ON e.order_id = i.order_id"
        " LEFT JOIN settlements s ON s.order_id = i.order_id"
        f"{where} ORDER BY i.created_ts DESC, i.order_id DESC LIMIT ? OFFSET ?",
        [*args, limit, offset],
    )
    return [_trade(r) for r in found]


def _opt(x: Any) -> float | None:
    return None if x is None else float(x)


def _trade(r: sqlite3.Row) -> TradeRow:
    return TradeRow(
        order_id=str(r["order_id"]),
        account=str(r["account"]),
        run_id=str(r["run_id"]),
        market_id=str(r["market_id"]),
        side=r["side"],
        entry_ts=float(r["created_ts"]),
        stake_usd=float(r["stake_usd"]),
        worst_price=float(r["worst_price"]),
        status=str(r["status"]),
        outcome_unknown=bool(r["outcome_unknown"]),
        price=_opt(r["avg_price"]),
        shares=float(r["shares"] or 0.0),
        notional_usd=float(r["notional_usd"] or 0.0),
        fee_usd=float(r["fee_usd"] or 0.0),
        outcome=r["outcome"],
        outcome_verified=None if r["outcome_verified"] is None else bool(r["outcome_verified"]),
        settled_ts=_opt(r["settled_ts"]),
        payout_usd=_opt(r["payout_usd"]),
        pnl_usd=_opt(r["pnl_usd"]),
    )
