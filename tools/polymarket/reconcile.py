"""Startup reconciliation: the journal's open orders resolved at the venue, before any decision.

``reconcile`` must run after the live broker connected and before the first decision of a
process (``agent.live.LiveSession.start`` enforces the order).  It:

1. takes every intent of the account whose outcome is not known (no execution yet, or an
   'error' execution: a crash or a lost answer);
2. closes the ones without a journaled signed order as "never_sent": the broker journals the
   order hash before it posts, so no hash means no post;
3. looks the others up by their order hash (order record, then the trade tape) and records
   the venue's truth, replacing an 'error' execution once (the journal allows exactly that);
4. audits the venue's trades in every market the account entered recently against the journal:
   a trade the journal does not know, or shares that differ, is a discrepancy.

Anything unresolved or discrepant makes the report not ``ok``; the session then refuses to
trade (fail closed) until an operator looks.  Nothing here ever posts an order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from core.clock import Clock
from core.fees import FeeSchedule, dated_fee_schedule
from core.logs import get_logger
from core.records import ExecutionReport
from tools.journal import Journal, OrderIntent
from tools.polymarket.http import VenueUnavailable
from tools.polymarket.wire import MarketInfo, VenueFormatError, VenueTrade

log = get_logger("updown.reconcile")

# Markets entered within this many seconds are audited against the venue's trade tape.
AUDIT_WINDOW_S = 2 * 86400.0


class VenueLedger(Protocol):
    """What reconciliation needs from the venue (``tools.polymarket.broker.LiveClobBroker``)."""

    name: str
    lookup_timeout_s: float

    def market(self, market_id: str, *, fallback_fees: FeeSchedule) -> MarketInfo: ...

    def resolve_intent(self, intent: OrderIntent, order_hash: str, market: MarketInfo, *,
                       signed_ts: float) -> ExecutionReport | None: ...

    def trades(self, **params: str) -> list[VenueTrade]: ...


@dataclass
class ReconcileReport:
    account: str
    checked: int = 0
    resolved: list[ExecutionReport] = field(default_factory=list)
    # Order ids whose outcome is still unknown (venue unreachable).
    unresolved: list[str] = field(default_factory=list)
    # Human-readable differences between the venue's trades and the journal.
    discrepancies: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unresolved and not self.discrepancies


def _never_sent(intent: OrderIntent, broker: str) -> ExecutionReport:
    return ExecutionReport(
        status="killed", broker=broker, order_id=intent.order_id, market_id=intent.market_id,
        side=intent.side, stake_usd=intent.stake_usd, worst_price=intent.worst_price,
        reason="never_sent: no signed order was journaled, so none was posted")


def reconcile(journal: Journal, venue: VenueLedger, *, account: str, clock: Clock,
              audit: bool = True, monotonic: Callable[[], float] = time.monotonic
              ) -> ReconcileReport:
    """Resolve every open intent of ``account`` at the venue and audit recent fills."""
    report = ReconcileReport(account=account)
    now = clock.now()
    for intent in journal.pending_intents(account=account, include_errors=True):
        report.checked += 1
        signed = journal.signed_order(intent.order_id)
        if signed is None:
            execution: ExecutionReport | None = _never_sent(intent, venue.name)
        else:
            try:
                market = venue.market(intent.market_id, fallback_fees=dated_fee_schedule(now))
                execution = venue.resolve_intent(intent, signed.order_hash, market,
                                                 signed_ts=signed.signed_ts)
            except (VenueUnavailable, VenueFormatError) as err:
                log.warning("reconcile_lookup_failed", order_id=intent.order_id,
                            error=str(err))
                execution = None
        if execution is None:
            report.unresolved.append(intent.order_id)
            journal.record_reconciliation(account=account, order_id=intent.order_id,
                                          outcome="unresolved",
                                          detail="venue lookup did not resolve it", ts=now)
            continue
        journal.record_execution(execution, ts=now)
        journal.record_reconciliation(account=account, order_id=intent.order_id,
                                      outcome=execution.status,
                                      detail=execution.reason or "", ts=now)
        report.resolved.append(execution)
        log.info("reconciled", order_id=intent.order_id, status=execution.status,
                 reason=execution.reason)
    if audit:
        report.discrepancies.extend(audit_fills(journal, venue, account=account, now=now))
        for problem in report.discrepancies:
            journal.record_reconciliation(account=account, order_id=None,
                                          outcome="discrepancy", detail=problem, ts=now)
    log.info("reconciliation_done", account=account, checked=report.checked,
             resolved=len(report.resolved), unresolved=len(report.unresolved),
             discrepancies=len(report.discrepancies))
    return report


def audit_fills(journal: Journal, venue: VenueLedger, *, account: str, now: float,
                window_s: float = AUDIT_WINDOW_S) -> list[str]:
    """Differences between the venue's trades and the journal in recently entered markets."""
    signed = {s.order_id: s for s in journal.signed_orders(account=account)}
    by_hash = {s.order_hash.lower(): s.order_id for s in signed.values()}
    executions = {e.order_id: e for e in journal.executions(account=account)}
    problems: list[str] = []
    recent = [i for i in journal.intents(account=account) if i.created_ts >= now - window_s
              and i.order_id in signed]
    for market_id in sorted({i.market_id for i in recent}):
        try:
            market = venue.market(market_id, fallback_fees=dated_fee_schedule(now))
            tape = venue.trades(market=market.condition_id)
        except (VenueUnavailable, VenueFormatError) as err:
            problems.append(f"{market_id}: venue trades unavailable ({err})")
            continue
        venue_shares: dict[str, Decimal] = {}
        for t in tape:
            if t.failed:
                continue
            order_id = by_hash.get(t.taker_order_id.lower())
            if order_id is None:
                problems.append(f"{market_id}: venue trade {t.trade_id} by an order the "
                                "journal does not know")
                continue
            venue_shares[order_id] = venue_shares.get(order_id, Decimal(0)) + t.shares
        for intent in (i for i in recent if i.market_id == market_id):
            got = venue_shares.get(intent.order_id, Decimal(0))
            e = executions.get(intent.order_id)
            journaled = Decimal(repr(e.shares)) if e is not None and e.status == "filled" \
                else Decimal(0)
            if abs(got - journaled) > Decimal("0.01"):
                problems.append(f"{market_id}: order {intent.order_id} has {got} shares at the "
                                f"venue and {journaled} in the journal")
    return problems
