"""Realised P&L after fees, grouped by day, window or market (``updown profit``, the dashboard).

The figures are the ones ``Journal.summary`` reports for a run, over any set of orders: trades
are filled orders, fees and the stake (notional) are those of filled orders settled or not,
P&L is the sum of settled positions' P&L (already net of fees), a settled position with
P&L < 0 is a loss and any other a win.  So a journal holding one run gives the run summary's
figures exactly.

Orders are grouped by their entry (an order's fee, stake and P&L stay in one group even when
the window settles after midnight): ``day`` is the UTC date of entry, ``window`` the window's
market id, ``market`` the series the window belongs to (its slug without the start time).
The total is its own aggregate over the same orders, not a sum of rounded groups.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from typing import Literal, get_args

from tools.journal.base import money
from tools.journal.reads.common import (
    UNKNOWN_OUTCOME_SQL,
    intent_filters,
    market_series,
    rows,
)

ProfitBy = Literal["day", "window", "market"]
PROFIT_BY: tuple[str, ...] = get_args(ProfitBy)

_KEY_SQL = {
    "day": "strftime('%Y-%m-%d', i.created_ts, 'unixepoch')",
    "window": "i.market_id",
    # Folded into series in Python from per-window rows: SQLite has no regex replace.
    "market": "i.market_id",
}

_AGGREGATES = (
    " COUNT(*) AS orders,"
    " COALESCE(SUM(i.status = 'filled'), 0) AS trades,"
    " COALESCE(SUM(i.status = 'killed'), 0) AS killed,"
    " COALESCE(SUM(i.status = 'error'), 0) AS errors,"
    f" COALESCE(SUM({UNKNOWN_OUTCOME_SQL}), 0) AS unknown,"
    " COALESCE(SUM(i.status = 'filled' AND s.order_id IS NULL), 0) AS open,"
    " COALESCE(SUM(s.pnl_usd >= 0), 0) AS wins,"
    " COALESCE(SUM(s.pnl_usd < 0), 0) AS losses,"
    " COALESCE(SUM(CASE WHEN e.status = 'filled' THEN e.notional_usd END), 0.0) AS staked,"
    " COALESCE(SUM(CASE WHEN e.status = 'filled' THEN e.fee_usd END), 0.0) AS fees,"
    " COALESCE(SUM(s.pnl_usd), 0.0) AS pnl,"
    " MIN(i.created_ts) AS first_ts, MAX(i.created_ts) AS last_ts"
    " FROM order_intents i"
    " LEFT JOIN executions e ON e.order_id = i.order_id"
    " LEFT JOIN settlements s ON s.order_id = i.order_id"
)


@dataclass(frozen=True, slots=True)
class ProfitRow:
    # The group (a UTC date, a window's market id, a market series) or "total".
    key: str
    orders: int
    # Filled orders.
    trades: int
    killed: int
    # Orders whose report is 'error' (reconciled or not).
    errors: int
    # Orders whose outcome is unknown (pending, or an unreconciled 'error').
    unknown: int
    # Filled orders whose window is not settled yet.
    open: int
    wins: int
    losses: int
    staked_usd: float
    fees_usd: float
    # Realised P&L of settled positions, net of fees.
    pnl_usd: float
    first_entry_ts: float | None
    last_entry_ts: float | None

    @property
    def hit_rate(self) -> float | None:
        """wins / (wins + losses); None when nothing has settled."""
        settled = self.wins + self.losses
        return None if settled == 0 else self.wins / settled


@dataclass(frozen=True, slots=True)
class ProfitReport:
    by: str
    groups: tuple[ProfitRow, ...]
    total: ProfitRow


def profit(
    conn: sqlite3.Connection,
    *,
    by: str = "day",
    account: str | None = None,
    market_id: str | None = None,
    run_id: str | None = None,
) -> ProfitReport:
    """P&L of the orders matching every given filter, grouped ``by`` (day|window|market)."""
    if by not in _KEY_SQL:
        raise ValueError(f"by must be one of {', '.join(PROFIT_BY)} (got {by!r})")
    where, args = intent_filters(account=account, market_id=market_id, run_id=run_id)
    found = rows(
        conn,
        f"SELECT {_KEY_SQL[by]} AS key,{_AGGREGATES}{where}"
        " GROUP BY key ORDER BY first_ts, key",
        args,
    )
    groups = [_row(r) for r in found]
    if by == "market":
        groups = _by_series(groups)
    total = _row(rows(conn, f"SELECT 'total' AS key,{_AGGREGATES}{where}", args)[0])
    return ProfitReport(by=by, groups=tuple(groups), total=total)


def _row(r: sqlite3.Row) -> ProfitRow:
    return ProfitRow(
        key=str(r["key"]),
        orders=int(r["orders"]),
        trades=int(r["trades"]),
        killed=int(r["killed"]),
        errors=int(r["errors"]),
        unknown=int(r["unknown"]),
        open=int(r["open"]),
        wins=int(r["wins"]),
        losses=int(r["losses"]),
        staked_usd=money(float(r["staked"])),
        fees_usd=money(float(r["fees"])),
        pnl_usd=money(float(r["pnl"])),
        first_entry_ts=None if r["first_ts"] is None else float(r["first_ts"]),
        last_entry_ts=None if r["last_ts"] is None else float(r["last_ts"]),
    )


def _by_series(windows: list[ProfitRow]) -> list[ProfitRow]:
    """Fold per-window rows (in entry order) into one row per market series."""
    merged: dict[str, ProfitRow] = {}
    for w in windows:
        key = market_series(w.key)
        m = merged.get(key)
        if m is None:
            merged[key] = replace(w, key=key)
            continue
        merged[key] = ProfitRow(
            key=key, orders=m.orders + w.orders, trades=m.trades + w.trades,
            killed=m.killed + w.killed, errors=m.errors + w.errors,
            unknown=m.unknown + w.unknown, open=m.open + w.open, wins=m.wins + w.wins,
            losses=m.losses + w.losses, staked_usd=money(m.staked_usd + w.staked_usd),
            fees_usd=money(m.fees_usd + w.fees_usd), pnl_usd=money(m.pnl_usd + w.pnl_usd),
            first_entry_ts=_min(m.first_entry_ts, w.first_entry_ts),
            last_entry_ts=_max(m.last_entry_ts, w.last_entry_ts))
    return list(merged.values())


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)
