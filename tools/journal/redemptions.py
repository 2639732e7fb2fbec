"""Redemptions: each winning position paid out exactly once (schema v4 ``redemptions``).

A winning share pays $1 only once it is redeemed.  ``record_settlement`` opens one row per
winning position (``pending``), in the same transaction as the settlement; from there:

``pending`` / ``failed`` --begin--> ``submitted`` --> ``confirmed`` (final) or ``failed``.

* ``begin_redemption`` marks the rows ``submitted`` BEFORE the venue is called (attempts + 1),
  so a crash mid-call leaves a row that must be checked with the venue, never one that looks
  untouched; ``record_redemption_tx`` adds the venue's transaction id after the call.
* ``confirmed`` is final: nothing moves it, and a row can be confirmed once, so the payout
  is counted once whatever is retried.
* ``failed`` rows are retried later (``tools.redemption.redeem_due`` asks the venue first).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from core.records import RedemptionState
from tools.journal.base import JournalBase
from tools.journal.errors import ConflictError, UnknownRecordError

OPEN_STATES: tuple[RedemptionState, ...] = ("pending", "submitted", "failed")


@dataclass(frozen=True, slots=True)
class RedemptionRecord:
    order_id: str
    account: str
    market_id: str
    shares: float
    payout_usd: float
    state: RedemptionState
    attempts: int
    redeemer: str | None
    tx_id: str | None
    tx_hash: str | None
    detail: str | None
    created_ts: float
    updated_ts: float


class Redemptions(JournalBase):
    """The ``redemptions`` table."""

    def redemptions(self, *, account: str, states: Sequence[RedemptionState] | None = None,
                    market_id: str | None = None) -> list[RedemptionRecord]:
        """The account's redemption rows (of some states, of one market), oldest first."""
        where, args = ["account = ?"], [account]
        if states is not None:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            args.extend(states)
        if market_id is not None:
            where.append("market_id = ?")
            args.append(market_id)
        with self._read() as cur:
            rows = cur.execute(
                f"SELECT * FROM redemptions WHERE {' AND '.join(where)}"
                " ORDER BY created_ts, order_id", args).fetchall()
        return [_redemption(r) for r in rows]

    def begin_redemption(self, order_ids: Sequence[str], *, redeemer: str, ts: float) -> None:
        """Mark open rows ``submitted`` before the venue is called (attempts + 1).

        Raises ConflictError (and changes nothing) if any row is confirmed already."""
        with self._tx() as cur:
            for order_id in order_ids:
                state = _state(cur, order_id)
                if state == "confirmed":
                    raise ConflictError(f"redemption of {order_id!r} is confirmed already")
                cur.execute(
                    "UPDATE redemptions SET state = 'submitted', attempts = attempts + 1,"
                    " redeemer = ?, tx_id = NULL, tx_hash = NULL, detail = NULL,"
                    " updated_ts = ? WHERE order_id = ?",
                    (redeemer, ts, order_id))

    def record_redemption_tx(self, order_ids: Sequence[str], *, tx_id: str | None,
                             tx_hash: str | None, ts: float) -> None:
        """The venue's transaction of a submitted redemption."""
        with self._tx() as cur:
            for order_id in order_ids:
                cur.execute(
                    "UPDATE redemptions SET tx_id = ?, tx_hash = ?, updated_ts = ?"
                    " WHERE order_id = ? AND state = 'submitted'",
                    (tx_id, tx_hash, ts, order_id))

    def record_redemption_outcome(self, order_ids: Sequence[str], *,
                                  state: RedemptionState, detail: str, ts: float,
                                  redeemer: str | None = None,
                                  tx_hash: str | None = None) -> list[str]:
        """Rows become ``confirmed`` or ``failed``; returns the ids this call changed.

        Confirmed rows never change again (a second confirmation is a no-op, a failure
        after confirmation is ignored): the payout is counted once."""
        if state not in ("confirmed", "failed"):
            raise ValueError(f"an outcome is confirmed or failed, not {state!r}")
        changed: list[str] = []
        with self._tx() as cur:
            for order_id in order_ids:
                if _state(cur, order_id) == "confirmed":
                    continue
                cur.execute(
                    "UPDATE redemptions SET state = ?, detail = ?, updated_ts = ?,"
                    " redeemer = COALESCE(?, redeemer), tx_hash = COALESCE(?, tx_hash)"
                    " WHERE order_id = ?",
                    (state, detail, ts, redeemer, tx_hash, order_id))
                changed.append(order_id)
        return changed


def _state(cur: sqlite3.Cursor, order_id: str) -> str:
    row = cur.execute("SELECT state FROM redemptions WHERE order_id = ?",
                      (order_id,)).fetchone()
    if row is None:
        raise UnknownRecordError(f"no redemption for order {order_id!r}")
    return str(row["state"])


def _redemption(r: sqlite3.Row) -> RedemptionRecord:
    return RedemptionRecord(
        order_id=str(r["order_id"]), account=str(r["account"]), market_id=str(r["market_id"]),
        shares=float(r["shares"]), payout_usd=float(r["payout_usd"]), state=r["state"],
        attempts=int(r["attempts"]), redeemer=r["redeemer"], tx_id=r["tx_id"],
        tx_hash=r["tx_hash"], detail=r["detail"], created_ts=float(r["created_ts"]),
        updated_ts=float(r["updated_ts"]))
