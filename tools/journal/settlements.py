"""Settlements: the realised outcome and P&L of each filled position.

Settlement is per position (filled order) and idempotent: settling a market again settles
only positions not settled yet and returns every settled position of that market.  A
settlement with a different outcome than one already recorded raises ``ConflictError``.
A position with pnl < 0 is a loss, anything else a win (pnl == 0 cannot happen with fees
and a price below 1, and is not a reason to pause).

Only fills final on chain (``fills.state = 'confirmed'``) are settled: a provisional match is
settled once it is confirmed, a failed one never.  A winning position opens its redemption
row in the same transaction (``tools.journal.redemptions``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from core.records import Side
from tools.journal.base import JournalBase, money
from tools.journal.errors import ConflictError


@dataclass(frozen=True, slots=True)
class SettledPosition:
    order_id: str
    account: str
    market_id: str
    side: Side
    outcome: Side
    outcome_verified: bool
    shares: float
    notional_usd: float
    fee_usd: float
    payout_usd: float
    pnl_usd: float
    settled_ts: float



class Settlements(JournalBase):
    """The ``settlements`` table."""

    def record_settlement(
        self,
        *,
        account: str,
        market_id: str,
        outcome: Literal["up", "down"],
        outcome_verified: bool,
        settled_ts: float,
    ) -> list[SettledPosition]:
        """Settle the account's filled positions in a market; returns all settled ones there.

        payout = shares if the position's side won else 0; pnl = payout - notional - fee.
        Idempotent: positions already settled are not settled again.
        """
        if outcome not in ("up", "down"):
            raise ValueError(f"invalid outcome {outcome!r}")
        with self._tx() as cur:
            other = cur.execute(
                "SELECT outcome FROM settlements WHERE account = ? AND market_id = ?"
                " AND outcome != ? LIMIT 1",
                (account, market_id, outcome),
            ).fetchone()
            if other is not None:
                raise ConflictError(
                    f"market {market_id!r} already settled {other['outcome']!r}, not {outcome!r}"
                )
            # Only fills final on chain are positions; a provisional one waits (settling
            # the market again later settles it), a failed one is no longer 'filled'.
            rows = cur.execute(
                "SELECT i.order_id, i.side, e.shares, e.notional_usd, e.fee_usd"
                " FROM order_intents i JOIN executions e ON e.order_id = i.order_id"
                " LEFT JOIN fills f ON f.order_id = i.order_id"
                " LEFT JOIN settlements s ON s.order_id = i.order_id"
                " WHERE i.account = ? AND i.market_id = ? AND e.status = 'filled'"
                " AND COALESCE(f.state, 'confirmed') = 'confirmed' AND s.order_id IS NULL",
                (account, market_id),
            ).fetchall()
            for r in rows:
                shares = float(r["shares"])
                payout = money(shares if r["side"] == outcome else 0.0)
                pnl = money(payout - float(r["notional_usd"]) - float(r["fee_usd"]))
                cur.execute(
                    "INSERT INTO settlements (order_id, account, market_id, side, outcome,"
                    " outcome_verified, shares, notional_usd, fee_usd, payout_usd, pnl_usd,"
                    " settled_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (r["order_id"], account, market_id, r["side"], outcome,
                     int(outcome_verified), shares, r["notional_usd"], r["fee_usd"],
                     payout, pnl, settled_ts),
                )
                if payout > 0:
                    # A winning share pays only once redeemed: its redemption is owed now.
                    cur.execute(
                        "INSERT INTO redemptions (order_id, account, market_id, shares,"
                        " payout_usd, created_ts, updated_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (r["order_id"], account, market_id, shares, payout, settled_ts,
                         settled_ts),
                    )
            settled = cur.execute(
                "SELECT * FROM settlements WHERE account = ? AND market_id = ?"
                " ORDER BY settled_ts, order_id",
                (account, market_id),
            ).fetchall()
        return [_settled(r) for r in settled]

    def unsettled_markets(self, *, account: str) -> list[str]:
        """Markets where the account holds a filled position that is not settled yet."""
        with self._read() as cur:
            rows = cur.execute(
                "SELECT i.market_id, MIN(i.created_ts) AS first_ts"
                " FROM order_intents i JOIN executions e ON e.order_id = i.order_id"
                " LEFT JOIN settlements s ON s.order_id = i.order_id"
                " WHERE i.account = ? AND e.status = 'filled' AND s.order_id IS NULL"
                " GROUP BY i.market_id ORDER BY first_ts, i.market_id",
                (account,),
            ).fetchall()
        return [str(r["market_id"]) for r in rows]

    def settlements(self, *, account: str) -> list[SettledPosition]:
        with self._read() as cur:
            rows = cur.execute(
                "SELECT * FROM settlements WHERE account = ? ORDER BY settled_ts, order_id",
                (account,),
            ).fetchall()
        return [_settled(r) for r in rows]


def _settled(r: sqlite3.Row) -> SettledPosition:
    return SettledPosition(
        order_id=str(r["order_id"]),
        account=str(r["account"]),
        market_id=str(r["market_id"]),
        side=r["side"],
        outcome=r["outcome"],
        outcome_verified=bool(r["outcome_verified"]),
        shares=float(r["shares"]),
        notional_usd=float(r["notional_usd"]),
        fee_usd=float(r["fee_usd"]),
        payout_usd=float(r["payout_usd"]),
        pnl_usd=float(r["pnl_usd"]),
        settled_ts=float(r["settled_ts"]),
    )
