"""Fills: whether a filled execution is final on chain (schema v4 ``fills``).

A live match is provisional: the venue's trades go MATCHED -> MINED -> CONFIRMED, or end
FAILED on chain (venue.md).  The journal therefore keeps, per filled execution:

* ``provisional``: matched, not final.  It is exposure from the moment of the match (its
  window is entered, it counts in today's orders, ``ledger_view`` reports it) but not a
  position: settlement waits until it is final.
* ``confirmed``: every remaining trade CONFIRMED.  The execution is the position (reduced to
  the confirmed trades when some of them failed).
* ``failed``: every trade FAILED.  The execution becomes ``killed`` (no position, no P&L, the
  stake back), the match stays in this table for the audit trail.

Paper fills are final at once (``ExecutionReport.final`` defaults to True).  The one way a
final execution changes afterwards is ``adopt_venue_fill``: reconciliation found trades the
broker's answer did not report (a "ghost fill"), and the venue's ledger is the truth.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from core.records import ExecutionReport, FillState
from tools.journal.base import JournalBase, money
from tools.journal.errors import ConflictError, UnknownRecordError


@dataclass(frozen=True, slots=True)
class FillRecord:
    order_id: str
    account: str
    market_id: str
    state: FillState
    trade_ids: tuple[str, ...]
    matched_shares: float
    matched_notional_usd: float
    matched_fee_usd: float
    matched_ts: float
    final_ts: float | None
    detail: str | None


def write_fill(cur: sqlite3.Cursor, report: ExecutionReport, *, ts: float,
               detail: str | None = None) -> None:
    """The fills row of a filled report (insert or replace), inside the caller's transaction."""
    state: FillState = "confirmed" if report.final else "provisional"
    cur.execute(
        "INSERT INTO fills (order_id, state, trade_ids_json, matched_shares,"
        " matched_notional_usd, matched_fee_usd, matched_ts, final_ts, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(order_id) DO UPDATE SET state = excluded.state,"
        " trade_ids_json = excluded.trade_ids_json, matched_shares = excluded.matched_shares,"
        " matched_notional_usd = excluded.matched_notional_usd,"
        " matched_fee_usd = excluded.matched_fee_usd, matched_ts = excluded.matched_ts,"
        " final_ts = excluded.final_ts, detail = excluded.detail",
        (report.order_id, state, json.dumps(list(report.trade_ids)), report.shares,
         money(report.notional_usd), money(report.fee_usd), ts,
         ts if report.final else None, detail),
    )


class Fills(JournalBase):
    """The ``fills`` table: provisional matches, confirmed positions, reversed fills."""

    def fill(self, order_id: str) -> FillRecord | None:
        with self._read() as cur:
            row = cur.execute(_SELECT + " WHERE f.order_id = ?", (order_id,)).fetchone()
        return None if row is None else _fill(row)

    def fills(self, *, account: str, state: FillState | None = None) -> list[FillRecord]:
        """The account's fills (of one state if given), oldest match first."""
        where, args = "i.account = ?", [account]
        if state is not None:
            where, args = where + " AND f.state = ?", [account, state]
        with self._read() as cur:
            rows = cur.execute(_SELECT + f" WHERE {where} ORDER BY f.matched_ts, f.order_id",
                               args).fetchall()
        return [_fill(r) for r in rows]

    def record_fill_final(self, order_id: str, *, state: FillState, shares: float,
                          notional_usd: float, fee_usd: float, trade_ids: tuple[str, ...],
                          detail: str, ts: float) -> bool:
        """A provisional fill became final: ``confirmed`` with the shares of its confirmed
        trades, or ``failed`` (every trade failed: the execution becomes ``killed``).

        Returns True when this call changed it; the same final state again is a no-op
        (False); a different final state than the one recorded raises ConflictError.
        """
        if state not in ("confirmed", "failed"):
            raise ValueError(f"a final fill is confirmed or failed, not {state!r}")
        with self._tx() as cur:
            row = cur.execute(
                "SELECT f.state, e.report_json FROM fills f"
                " JOIN executions e ON e.order_id = f.order_id WHERE f.order_id = ?",
                (order_id,),
            ).fetchone()
            if row is None:
                raise UnknownRecordError(f"no fill for order {order_id!r}")
            if row["state"] != "provisional":
                if row["state"] == state:
                    return False
                raise ConflictError(f"fill of {order_id!r} is already {row['state']}")
            old = ExecutionReport.model_validate_json(row["report_json"])
            if state == "failed" or shares <= 0:
                state = "failed"
                report = ExecutionReport(
                    status="killed", broker=old.broker, order_id=old.order_id,
                    market_id=old.market_id, side=old.side, stake_usd=old.stake_usd,
                    worst_price=old.worst_price, final=True, trade_ids=trade_ids,
                    reason=f"trades_failed: {detail}")
            else:
                report = old.model_copy(update={
                    "shares": shares, "notional_usd": money(notional_usd),
                    "fee_usd": money(fee_usd), "final": True, "trade_ids": trade_ids,
                    "avg_price": round(notional_usd / shares, 6)})
            _replace_execution(cur, report, ts=ts)
            cur.execute(
                "UPDATE fills SET state = ?, trade_ids_json = ?, final_ts = ?, detail = ?"
                " WHERE order_id = ?",
                (state, json.dumps(list(trade_ids)), ts, detail, order_id),
            )
            return True

    def adopt_venue_fill(self, report: ExecutionReport, *, ts: float, detail: str) -> None:
        """Replace an order's execution with the fill the venue's trades show (a ghost fill:
        a match the broker's answer did not report, or reported short).

        Refused (ConflictError) once the position is settled: a settled P&L never moves.
        """
        if report.status != "filled":
            raise ValueError("only a fill found at the venue is adopted")
        with self._tx() as cur:
            if cur.execute("SELECT 1 FROM executions WHERE order_id = ?",
                           (report.order_id,)).fetchone() is None:
                raise UnknownRecordError(f"no execution for order {report.order_id!r}")
            if cur.execute("SELECT 1 FROM settlements WHERE order_id = ?",
                           (report.order_id,)).fetchone() is not None:
                raise ConflictError(f"order {report.order_id!r} is settled already")
            _replace_execution(cur, report, ts=ts)
            write_fill(cur, report, ts=ts, detail=detail)


def _replace_execution(cur: sqlite3.Cursor, report: ExecutionReport, *, ts: float) -> None:
    cur.execute(
        "UPDATE executions SET status = ?, shares = ?, avg_price = ?, notional_usd = ?,"
        " fee_usd = ?, reason = ?, ts = ?, report_json = ? WHERE order_id = ?",
        (report.status, report.shares, report.avg_price, money(report.notional_usd),
         money(report.fee_usd), report.reason, ts, report.model_dump_json(), report.order_id),
    )
    cur.execute("UPDATE order_intents SET status = ? WHERE order_id = ?",
                (report.status, report.order_id))


_SELECT = ("SELECT f.*, i.account, i.market_id FROM fills f"
           " JOIN order_intents i ON i.order_id = f.order_id")


def _fill(r: sqlite3.Row) -> FillRecord:
    return FillRecord(
        order_id=str(r["order_id"]), account=str(r["account"]), market_id=str(r["market_id"]),
        state=r["state"], trade_ids=tuple(str(t) for t in json.loads(r["trade_ids_json"])),
        matched_shares=float(r["matched_shares"]),
        matched_notional_usd=float(r["matched_notional_usd"]),
        matched_fee_usd=float(r["matched_fee_usd"]), matched_ts=float(r["matched_ts"]),
        final_ts=None if r["final_ts"] is None else float(r["final_ts"]),
        detail=None if r["detail"] is None else str(r["detail"]))
