"""The ledger read models: what the guard needs (``ledger_view``), what a run did
(``summary``), the manual daily loss resets that move "today" forward, and the accounts.

Time-windowed reads in ``ledger_view`` only count rows stamped at or before ``now`` so a
replay that reuses a journal never sees the future.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from core.records import LedgerView
from tools.journal.base import JournalBase, money


@dataclass(frozen=True, slots=True)
class DailyLossReset:
    account: str
    reset_ts: float
    note: str


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    decisions: int
    approved: int
    filled: int
    killed: int
    errors: int
    # Intents with no recorded execution (outcome unknown until reconciled).
    pending: int
    wins: int
    losses: int
    # wins / (wins + losses); None when nothing has settled.
    hit_rate: float | None
    # Realised P&L of settled positions, net of fees.
    pnl_usd: float
    # Taker fees of all filled orders, settled or not.
    fees_usd: float
    # Dollars paid for shares (notional, excluding fees) across filled orders.
    staked_usd: float
    # Guard rules that fired on decisions that were not approved.
    rejections: Counter[str] = field(default_factory=Counter)


class Ledger(JournalBase):
    """Reads across every table, and the ``daily_loss_resets`` table."""

    def record_daily_loss_reset(self, *, account: str, reset_ts: float, note: str) -> None:
        """The manual reset of the daily loss limit: P&L before ``reset_ts`` stops counting.

        Only the operator's ``reset-daily-loss`` command calls this; no graph node can.
        """
        if not note.strip():
            raise ValueError("a daily loss reset needs a note saying why")
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO daily_loss_resets (account, reset_ts, note) VALUES (?, ?, ?)",
                (account, reset_ts, note.strip()),
            )

    def daily_loss_resets(self, *, account: str) -> list[DailyLossReset]:
        with self._read() as cur:
            rows = cur.execute(
                "SELECT * FROM daily_loss_resets WHERE account = ? ORDER BY reset_ts, reset_id",
                (account,),
            ).fetchall()
        return [DailyLossReset(account=str(r["account"]), reset_ts=float(r["reset_ts"]),
                               note=str(r["note"])) for r in rows]

    def accounts(self) -> list[str]:
        """Every account with an order intent, a run or a reset, sorted."""
        with self._read() as cur:
            rows = cur.execute(
                "SELECT account FROM order_intents UNION SELECT account FROM runs"
                " UNION SELECT account FROM daily_loss_resets ORDER BY account"
            ).fetchall()
        return [str(r["account"]) for r in rows]

    def ledger_view(self, *, account: str, day_start: float, now: float) -> LedgerView:
        """What the guard needs: entered windows, today's orders and P&L, the losing streak,
        and the provisional fills (matched, not final on chain) as open exposure.

        A provisional fill counts toward every limit from the moment of its match: its
        intent already enters the window and today's orders, whatever becomes of it."""
        with self._read() as cur:
            # Every intent blocks its window, whatever its status (see module docstring).
            entered = frozenset(
                str(r["market_id"])
                for r in cur.execute(
                    "SELECT market_id FROM order_intents WHERE account = ?", (account,)
                )
            )
            orders_today = int(cur.execute(
                "SELECT COUNT(*) FROM order_intents"
                " WHERE account = ? AND created_ts >= ? AND created_ts <= ?",
                (account, day_start, now),
            ).fetchone()[0])
            # A manual reset today moves the start of the counted losses forward.
            last_reset = cur.execute(
                "SELECT MAX(reset_ts) FROM daily_loss_resets"
                " WHERE account = ? AND reset_ts <= ?",
                (account, now),
            ).fetchone()[0]
            counted_from = day_start if last_reset is None else max(day_start,
                                                                     float(last_reset))
            pnl_today = float(cur.execute(
                "SELECT COALESCE(SUM(pnl_usd), 0.0) FROM settlements"
                " WHERE account = ? AND settled_ts >= ? AND settled_ts <= ?",
                (account, counted_from, now),
            ).fetchone()[0])
            # Newest first; ties in settled_ts broken by entry time so the order is stable.
            history = cur.execute(
                "SELECT s.pnl_usd, s.settled_ts FROM settlements s"
                " JOIN order_intents i ON i.order_id = s.order_id"
                " WHERE s.account = ? AND s.settled_ts <= ?"
                " ORDER BY s.settled_ts DESC, i.created_ts DESC, s.order_id DESC",
                (account, now),
            ).fetchall()
            provisional = cur.execute(
                "SELECT COUNT(*) AS n, COALESCE(SUM(e.notional_usd + e.fee_usd), 0.0) AS usd"
                " FROM fills f JOIN executions e ON e.order_id = f.order_id"
                " JOIN order_intents i ON i.order_id = f.order_id"
                " WHERE i.account = ? AND f.state = 'provisional' AND f.matched_ts <= ?",
                (account, now),
            ).fetchone()
        streak = 0
        for r in history:
            if float(r["pnl_usd"]) < 0:
                streak += 1
            else:
                break
        last_loss_ts = next(
            (float(r["settled_ts"]) for r in history if float(r["pnl_usd"]) < 0), None
        )
        return LedgerView(
            entered_market_ids=entered,
            orders_today=orders_today,
            realized_pnl_today=money(pnl_today),
            consecutive_losses=streak,
            last_loss_ts=last_loss_ts,
            provisional_fills=int(provisional["n"]),
            provisional_exposure_usd=money(float(provisional["usd"])),
        )

    def summary(self, *, run_id: str) -> RunSummary:
        """Counts and money of one run, from what the journal holds."""
        with self._read() as cur:
            self._require_run(cur, run_id)
            d = cur.execute(
                "SELECT COUNT(*) AS n, COALESCE(SUM(approved), 0) AS a"
                " FROM decisions WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            rejections: Counter[str] = Counter()
            for r in cur.execute(
                "SELECT rules_fired_json FROM decisions WHERE run_id = ? AND approved = 0",
                (run_id,),
            ):
                rejections.update(str(rule) for rule in json.loads(r["rules_fired_json"]))
            status: Counter[str] = Counter(
                {
                    str(r["status"]): int(r["n"])
                    for r in cur.execute(
                        "SELECT status, COUNT(*) AS n FROM order_intents WHERE run_id = ?"
                        " GROUP BY status",
                        (run_id,),
                    )
                }
            )
            spent = cur.execute(
                "SELECT COALESCE(SUM(e.fee_usd), 0.0) AS fees,"
                " COALESCE(SUM(e.notional_usd), 0.0) AS staked"
                " FROM executions e JOIN order_intents i ON i.order_id = e.order_id"
                " WHERE i.run_id = ? AND e.status = 'filled'",
                (run_id,),
            ).fetchone()
            s = cur.execute(
                "SELECT COALESCE(SUM(s.pnl_usd < 0), 0) AS losses,"
                " COALESCE(SUM(s.pnl_usd >= 0), 0) AS wins,"
                " COALESCE(SUM(s.pnl_usd), 0.0) AS pnl"
                " FROM settlements s JOIN order_intents i ON i.order_id = s.order_id"
                " WHERE i.run_id = ?",
                (run_id,),
            ).fetchone()
        wins, losses = int(s["wins"]), int(s["losses"])
        return RunSummary(
            run_id=run_id,
            decisions=int(d["n"]),
            approved=int(d["a"]),
            filled=status["filled"],
            killed=status["killed"],
            errors=status["error"],
            pending=status["pending"],
            wins=wins,
            losses=losses,
            hit_rate=None if wins + losses == 0 else wins / (wins + losses),
            pnl_usd=money(float(s["pnl"])),
            fees_usd=money(float(spent["fees"])),
            staked_usd=money(float(spent["staked"])),
            rejections=rejections,
        )
