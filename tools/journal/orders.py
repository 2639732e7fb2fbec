"""Orders: intents (journaled before the broker is called), executions, the signed venue
orders of live trading, and what reconciliation found for them.

* Order intents are written BEFORE the order is sent and at most one exists per
  (account, market_id), enforced by a UNIQUE constraint.  An intent whose order was killed or
  errored keeps blocking its window: one attempt per window, because a "killed" report can be
  wrong (the order may have filled after a timeout) and a retry would risk a second entry.
* An 'error' execution may be superseded once by the reconciled report (its outcome may have
  been unknown); 'filled' and 'killed' executions are final.
* An intent without an execution is "pending": its outcome is unknown and must be reconciled
  with the venue (``pending_intents``) before anything else is sent.
* A signed venue order is one per intent and one per hash, written before it is posted.
* Every filled execution has a ``fills`` row saying whether it is final on chain
  (``tools.journal.fills``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from core.records import ExecutionReport, Side
from tools.journal.base import JournalBase, money
from tools.journal.errors import ConflictError, DuplicateEntryError, UnknownRecordError
from tools.journal.fills import write_fill


@dataclass(frozen=True, slots=True)
class OrderIntent:
    order_id: str
    account: str
    run_id: str
    decision_id: str
    market_id: str
    side: Side
    stake_usd: float
    worst_price: float
    created_ts: float
    status: str


@dataclass(frozen=True, slots=True)
class SignedOrderRecord:
    """The venue order signed for an intent (written before it is posted)."""

    order_id: str
    venue: str
    order_hash: str
    token_id: str
    order_type: str
    amount_usd: str
    worst_price: str
    maker_amount: str
    taker_amount: str
    signed_ts: float
    venue_status: str | None
    trade_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReconciliationRecord:
    account: str
    order_id: str | None
    outcome: str
    detail: str
    ts: float



class Orders(JournalBase):
    """The ``order_intents``, ``executions``, ``venue_orders`` and ``reconciliations`` tables."""

    def record_order_intent(
        self,
        *,
        account: str,
        run_id: str,
        decision_id: str,
        order_id: str,
        market_id: str,
        side: Side,
        stake_usd: float,
        worst_price: float,
        created_ts: float,
    ) -> None:
        """Record the intent to send an order; call it BEFORE the order goes to the broker.

        Raises DuplicateEntryError (and writes nothing) when the account already has an intent
        in this market window, or the decision or order id already has one.
        """
        if side not in ("up", "down"):
            raise ValueError(f"invalid side {side!r}")
        with self._tx() as cur:
            self._require_run(cur, run_id)
            clash = cur.execute(
                "SELECT order_id, decision_id, account, market_id FROM order_intents"
                " WHERE (account = ? AND market_id = ?) OR decision_id = ? OR order_id = ?",
                (account, market_id, decision_id, order_id),
            ).fetchone()
            if clash is not None:
                if clash["account"] == account and clash["market_id"] == market_id:
                    what = f"account {account!r} already entered market {market_id!r}"
                elif clash["decision_id"] == decision_id:
                    what = f"decision {decision_id!r} already has an order"
                else:
                    what = f"order id {order_id!r} already used"
                raise DuplicateEntryError(what)
            try:
                cur.execute(
                    "INSERT INTO order_intents (order_id, account, run_id, decision_id,"
                    " market_id, side, stake_usd, worst_price, created_ts)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (order_id, account, run_id, decision_id, market_id, side,
                     money(stake_usd), worst_price, created_ts),
                )
            except sqlite3.IntegrityError as err:
                # The constraint is the backstop for the check above.
                raise DuplicateEntryError(str(err)) from None

    def record_execution(self, report: ExecutionReport, *, ts: float) -> None:
        """Record what the broker did with an order; its intent must already be recorded.

        The intent's status becomes the report's.  Recording the same report again is a
        no-op.  An 'error' report means the outcome may be unknown (a timeout after sending), so
        it may be replaced once by the report reconciliation found; 'filled' and 'killed' are
        final and a different report for them raises ConflictError.
        """
        report_json = report.model_dump_json()
        with self._tx() as cur:
            intent = cur.execute(
                "SELECT market_id, side FROM order_intents WHERE order_id = ?",
                (report.order_id,),
            ).fetchone()
            if intent is None:
                raise UnknownRecordError(f"no order intent for order {report.order_id!r}")
            if intent["market_id"] != report.market_id or intent["side"] != report.side:
                raise ConflictError(
                    f"report for order {report.order_id!r} does not match its intent"
                )
            existing = cur.execute(
                "SELECT status, report_json, superseded_json FROM executions"
                " WHERE order_id = ?",
                (report.order_id,),
            ).fetchone()
            if existing is not None:
                if existing["report_json"] == report_json:
                    return
                if existing["status"] != "error" or existing["superseded_json"] is not None:
                    raise ConflictError(
                        f"order {report.order_id!r} already has another execution"
                    )
                cur.execute(
                    "UPDATE executions SET status = ?, broker = ?, shares = ?, avg_price = ?,"
                    " notional_usd = ?, fee_usd = ?, reason = ?, ts = ?, report_json = ?,"
                    " superseded_json = ? WHERE order_id = ?",
                    (report.status, report.broker, report.shares, report.avg_price,
                     money(report.notional_usd), money(report.fee_usd), report.reason, ts,
                     report_json, existing["report_json"], report.order_id),
                )
                cur.execute(
                    "UPDATE order_intents SET status = ? WHERE order_id = ?",
                    (report.status, report.order_id),
                )
                if report.status == "filled":
                    write_fill(cur, report, ts=ts)
                return
            cur.execute(
                "INSERT INTO executions (order_id, status, broker, shares, avg_price,"
                " notional_usd, fee_usd, reason, ts, report_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (report.order_id, report.status, report.broker, report.shares,
                 report.avg_price, money(report.notional_usd), money(report.fee_usd),
                 report.reason, ts, report_json),
            )
            cur.execute(
                "UPDATE order_intents SET status = ? WHERE order_id = ?",
                (report.status, report.order_id),
            )
            if report.status == "filled":
                # Provisional unless the report says final (paper fills are final at once).
                write_fill(cur, report, ts=ts)

    def pending_intents(self, *, account: str, include_errors: bool = False) -> list[OrderIntent]:
        """Intents with no execution: their outcome must be reconciled before trading on.

        With ``include_errors`` also those whose execution is an 'error' report not yet
        superseded: an exception after sending leaves the venue's outcome unknown.
        """
        statuses = ("pending", "error") if include_errors else ("pending",)
        marks = ", ".join("?" for _ in statuses)
        with self._read() as cur:
            rows = cur.execute(
                "SELECT i.* FROM order_intents i"
                " LEFT JOIN executions e ON e.order_id = i.order_id"
                f" WHERE i.account = ? AND i.status IN ({marks})"
                " AND (e.order_id IS NULL OR e.superseded_json IS NULL)"
                " ORDER BY i.created_ts, i.order_id",
                (account, *statuses),
            ).fetchall()
        return [_intent(r) for r in rows]

    def intent(self, order_id: str) -> OrderIntent | None:
        with self._read() as cur:
            row = cur.execute(
                "SELECT * FROM order_intents WHERE order_id = ?", (order_id,)
            ).fetchone()
        return None if row is None else _intent(row)

    def executions(self, *, account: str) -> list[ExecutionReport]:
        """Every recorded execution of the account, in intent order (for reconciliation)."""
        with self._read() as cur:
            rows = cur.execute(
                "SELECT e.report_json FROM executions e"
                " JOIN order_intents i ON i.order_id = e.order_id"
                " WHERE i.account = ? ORDER BY i.created_ts, i.order_id",
                (account,),
            ).fetchall()
        return [ExecutionReport.model_validate_json(r["report_json"]) for r in rows]


    def intents(self, *, account: str, market_id: str | None = None) -> list[OrderIntent]:
        """Every order intent of the account (of one market window if given), oldest first."""
        where, args = "account = ?", [account]
        if market_id is not None:
            where, args = where + " AND market_id = ?", [account, market_id]
        with self._read() as cur:
            rows = cur.execute(
                f"SELECT * FROM order_intents WHERE {where} ORDER BY created_ts, order_id",
                args,
            ).fetchall()
        return [_intent(r) for r in rows]
    # --- venue orders (live) ---

    def record_signed_order(
        self,
        *,
        order_id: str,
        venue: str,
        order_hash: str,
        token_id: str,
        order_type: str,
        amount_usd: str,
        worst_price: str,
        maker_amount: str,
        taker_amount: str,
        signed_ts: float,
    ) -> None:
        """Record the signed venue order of an intent; must commit BEFORE the order is posted.

        One signed order per intent and per hash: a second one raises DuplicateEntryError, so a
        caller that re-signs by mistake is stopped before it can post a second order.
        """
        with self._tx() as cur:
            if cur.execute(
                "SELECT 1 FROM order_intents WHERE order_id = ?", (order_id,)
            ).fetchone() is None:
                raise UnknownRecordError(f"no order intent for order {order_id!r}")
            try:
                cur.execute(
                    "INSERT INTO venue_orders (order_id, venue, order_hash, token_id,"
                    " order_type, amount_usd, worst_price, maker_amount, taker_amount,"
                    " signed_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (order_id, venue, order_hash, token_id, order_type, amount_usd,
                     worst_price, maker_amount, taker_amount, signed_ts),
                )
            except sqlite3.IntegrityError as err:
                raise DuplicateEntryError(str(err)) from None

    def record_venue_status(
        self, order_id: str, *, venue_status: str, trade_ids: tuple[str, ...] = (), ts: float
    ) -> None:
        """Remember the venue's latest status (and trade ids) of a signed order."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE venue_orders SET venue_status = ?, trade_ids_json = ?, updated_ts = ?"
                " WHERE order_id = ?",
                (venue_status, json.dumps(list(trade_ids)), ts, order_id),
            )
            if cur.rowcount != 1:
                raise UnknownRecordError(f"no signed order for order {order_id!r}")

    def signed_order(self, order_id: str) -> SignedOrderRecord | None:
        with self._read() as cur:
            row = cur.execute(
                "SELECT * FROM venue_orders WHERE order_id = ?", (order_id,)
            ).fetchone()
        return None if row is None else _signed(row)

    def signed_orders(self, *, account: str) -> list[SignedOrderRecord]:
        """Every signed venue order of the account, oldest first (the journal's venue ledger)."""
        with self._read() as cur:
            rows = cur.execute(
                "SELECT v.* FROM venue_orders v JOIN order_intents i ON i.order_id = v.order_id"
                " WHERE i.account = ? ORDER BY v.signed_ts, v.order_id",
                (account,),
            ).fetchall()
        return [_signed(r) for r in rows]

    # --- reconciliation and manual resets ---

    def record_reconciliation(
        self, *, account: str, order_id: str | None, outcome: str, detail: str, ts: float
    ) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO reconciliations (account, order_id, outcome, detail, ts)"
                " VALUES (?, ?, ?, ?, ?)",
                (account, order_id, outcome, detail, ts),
            )

    def reconciliations(self, *, account: str) -> list[ReconciliationRecord]:
        with self._read() as cur:
            rows = cur.execute(
                "SELECT * FROM reconciliations WHERE account = ? ORDER BY ts, reconciliation_id",
                (account,),
            ).fetchall()
        return [ReconciliationRecord(account=str(r["account"]), order_id=r["order_id"],
                                     outcome=str(r["outcome"]), detail=str(r["detail"]),
                                     ts=float(r["ts"])) for r in rows]


def _intent(r: sqlite3.Row) -> OrderIntent:
    return OrderIntent(
        order_id=str(r["order_id"]),
        account=str(r["account"]),
        run_id=str(r["run_id"]),
        decision_id=str(r["decision_id"]),
        market_id=str(r["market_id"]),
        side=r["side"],
        stake_usd=float(r["stake_usd"]),
        worst_price=float(r["worst_price"]),
        created_ts=float(r["created_ts"]),
        status=str(r["status"]),
    )



def _signed(r: sqlite3.Row) -> SignedOrderRecord:
    return SignedOrderRecord(
        order_id=str(r["order_id"]),
        venue=str(r["venue"]),
        order_hash=str(r["order_hash"]),
        token_id=str(r["token_id"]),
        order_type=str(r["order_type"]),
        amount_usd=str(r["amount_usd"]),
        worst_price=str(r["worst_price"]),
        maker_amount=str(r["maker_amount"]),
        taker_amount=str(r["taker_amount"]),
        signed_ts=float(r["signed_ts"]),
        venue_status=None if r["venue_status"] is None else str(r["venue_status"]),
        trade_ids=tuple(str(t) for t in json.loads(r["trade_ids_json"])),
    )
