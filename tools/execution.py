"""The order path: one approved verdict becomes at most one order, exactly once.

Shared by the graph's ``execute`` node and the operator's manual order, so both go through the
same steps in the same order (design.md, reliability.md):

1. the STOP file is checked again right before sending, after any model latency;
2. the order intent is journaled before the broker is called (an intent without an execution
   is "outcome unknown" to reconciliation, never "not sent");
3. one broker call, never retried; an exception means the outcome is unknown and is recorded
   as such for reconciliation, never re-sent;
4. the execution report is journaled.
"""

from __future__ import annotations

from pathlib import Path

from core.records import ExecutionReport, ExecutionStatus, Side, Verdict
from core.resting import RestingOrder
from core.snapshot import MarketSnapshot
from tools.broker import Broker, RestingBroker
from tools.journal import DuplicateEntryError, Journal
from tools.journal.resting import RestingOrders


class NotApproved(RuntimeError):
    """The order path was reached without an approved verdict: a structural bug."""


def order_id_for(decision_id: str) -> str:
    """One order per decision: the id the journal, the broker and reconciliation share."""
    return f"{decision_id}#1"


def send_order(
    *,
    verdict: Verdict,
    snapshot: MarketSnapshot,
    decision_id: str,
    broker: Broker,
    journal: Journal | None,
    account: str,
    run_id: str,
    stop_file: Path,
    now: float,
) -> ExecutionReport:
    """Check the kill switch, journal the intent, send once; an exception means "unknown"."""
    side, worst_price = verdict.side, verdict.worst_price
    if not verdict.approved or side is None or worst_price is None:
        raise NotApproved("the order path was reached without an approved verdict")
    order_id = order_id_for(decision_id)

    def unsent(status: ExecutionStatus, reason: str) -> ExecutionReport:
        return ExecutionReport(
            status=status, broker=broker.name, order_id=order_id, market_id=snapshot.market_id,
            side=side, stake_usd=verdict.stake_usd, worst_price=worst_price, reason=reason)

    if stop_file.exists():
        return unsent("killed", "STOP file present at send time")
    if journal is not None:
        try:
            journal.record_order_intent(
                account=account, run_id=run_id, decision_id=decision_id, order_id=order_id,
                market_id=snapshot.market_id, side=side, stake_usd=verdict.stake_usd,
                worst_price=worst_price, created_ts=now)
        except DuplicateEntryError:
            return unsent("killed", "journal already holds an entry for this window")
    try:
        report = broker.place_market_buy(order_id=order_id, snapshot=snapshot, side=side,
                                         stake_usd=verdict.stake_usd, worst_price=worst_price)
    except Exception as exc:  # outcome unknown: record it for reconciliation, never resend
        report = unsent("error", f"outcome unknown ({type(exc).__name__}): reconcile before "
                        "any new order")
    if journal is not None:
        journal.record_execution(report, ts=now)
    return report


def resting_order_id(decision_id: str, n: int = 1) -> str:
    """The n-th resting order a decision (or its window's upkeep) sends: distinct from the
    taker order id so one decision's taker and maker legs never share an id."""
    return f"{decision_id}#r{n}"


def send_resting_order(
    *,
    order_id: str,
    decision_id: str,
    snapshot: MarketSnapshot,
    side: Side,
    price: float,
    shares: float,
    expires_at: float | None,
    execution_style: str,
    replaces: str | None,
    broker: RestingBroker,
    journal: RestingOrders | None,
    account: str,
    run_id: str,
    stop_file: Path,
    now: float,
) -> RestingOrder | None:
    """The resting-order path, in the same steps as ``send_order``: kill switch right before
    sending, intent journaled first, one post-only send never retried, the answer journaled.

    None when the kill switch stopped it or the send raised (the journal then says "unknown":
    look the order up before anything else, never send it again)."""
    if stop_file.exists():
        return None
    if journal is not None:
        journal.record_intent(account=account, run_id=run_id, decision_id=decision_id,
                              order_id=order_id, market_id=snapshot.market_id, side=side,
                              execution_style=execution_style, price=price, shares=shares,
                              post_only=True, expires_at=expires_at, replaces=replaces, ts=now)
    try:
        order = broker.place_limit_buy(order_id=order_id, snapshot=snapshot, side=side,
                                       price=price, shares=shares, post_only=True,
                                       expires_at=expires_at, now=now)
    except Exception as exc:  # outcome unknown: reconcile by lookup, never resend
        if journal is not None:
            journal.mark_unknown(order_id, reason=f"outcome unknown ({type(exc).__name__})",
                                 ts=now)
        return None
    if journal is not None:
        journal.record_state(order, ts=now)
    return order
