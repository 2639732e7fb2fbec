"""Startup reconciliation: the journal's open orders resolved at the venue, before any decision.

``reconcile`` must run after the live broker connected and before the first decision of a
process (``agent.live.LiveSession.start`` enforces the order).  It:

1. takes every intent of the account whose outcome is not known (no execution yet, or an
   'error' execution: a crash or a lost answer);
2. closes the ones without a journaled signed order as "never_sent": the broker journals the
   order hash before it posts, so no hash means no post;
3. looks the others up by their order hash (order record, then the trade tape) and records
   the venue's truth, replacing an 'error' execution once (the journal allows exactly that);
4. re-checks every provisional fill (matched, not final on chain) against the venue's
   trades: all CONFIRMED makes it a position, all FAILED reverses it (no position, no P&L,
   logged at warning and journaled), anything else leaves it provisional for the next pass;
5. audits the venue's trades in every market the account entered recently against the journal:
   a fill the venue has and the broker's answer did not report (a "ghost fill", or one
   reported short) is adopted from the venue's trades; a trade by an order the journal does
   not know, or a journal fill the venue does not have, is a discrepancy.

Anything unresolved or discrepant makes the report not ``ok``; the session then refuses to
trade (fail closed) until an operator looks.  Provisional fills do not: they are exposure
the guard already counts.  Nothing here ever posts an order.

The user stream does not replay what happened while it was disconnected, so this runs after
every restart and every reconnect before the next decision (``agent.autorun``).
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
from tools.journal import Journal, JournalError, OrderIntent
from tools.polymarket.http import VenueUnavailable
from tools.polymarket.wire import MarketInfo, VenueFormatError, VenueTrade, dec

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
    # Provisional fills that became final in this pass, and those still provisional.
    confirmed_fills: list[str] = field(default_factory=list)
    failed_fills: list[str] = field(default_factory=list)
    provisional_fills: list[str] = field(default_factory=list)
    # Orders whose fill was adopted from the venue's trades (ghost or short fills).
    adopted_fills: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unresolved and not self.discrepancies


def _never_sent(intent: OrderIntent, broker: str) -> ExecutionReport:
    return ExecutionReport(
        status="killed", broker=broker, order_id=intent.order_id, market_id=intent.market_id,
        side=intent.side, stake_usd=intent.stake_usd, worst_price=intent.worst_price,
        reason="never_sent: no signed order was journaled, so none was posted")


def reconcile(journal: Journal, venue: VenueLedger, *, account: str, clock: Clock,
              audit: bool = True, monotonic: Callable[[], float] = time.monotonic,
              audit_window_s: float = AUDIT_WINDOW_S) -> ReconcileReport:
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
    recheck_provisional(journal, venue, account=account, now=now, report=report)
    if audit:
        report.discrepancies.extend(audit_fills(journal, venue, account=account, now=now,
                                                window_s=audit_window_s,
                                                adopted=report.adopted_fills))
        for problem in report.discrepancies:
            journal.record_reconciliation(account=account, order_id=None,
                                          outcome="discrepancy", detail=problem, ts=now)
    log.info("reconciliation_done", account=account, checked=report.checked,
             resolved=len(report.resolved), unresolved=len(report.unresolved),
             discrepancies=len(report.discrepancies), confirmed=len(report.confirmed_fills),
             failed=len(report.failed_fills), provisional=len(report.provisional_fills),
             adopted=len(report.adopted_fills))
    return report


def _order_tape(venue: VenueLedger, market: MarketInfo, order_hash: str) -> list[VenueTrade]:
    """Every trade (failed ones too) the venue holds for one order, as taker."""
    return [t for t in venue.trades(market=market.condition_id)
            if t.taker_order_id.lower() == order_hash.lower()]


def _amounts(trades: list[VenueTrade], market: MarketInfo) -> tuple[float, float, float]:
    """Shares, notional and taker fee of some trades (Decimal sums, rounded once)."""
    shares = sum((t.shares for t in trades), Decimal(0))
    notional = sum((t.shares * t.price for t in trades), Decimal(0))
    fee = sum((t.shares * dec(market.fee_schedule.per_share(float(t.price))) for t in trades),
              Decimal(0))
    return float(shares), round(float(notional), 6), round(float(fee), 6)


def recheck_provisional(journal: Journal, venue: VenueLedger, *, account: str, now: float,
                        report: ReconcileReport | None = None) -> ReconcileReport:
    """Read the trades of every provisional fill again; record the ones that became final."""
    report = report or ReconcileReport(account=account)
    for fill in journal.fills(account=account, state="provisional"):
        signed = journal.signed_order(fill.order_id)
        if signed is None:  # not a venue order (cannot happen for live fills): nothing to ask
            continue
        try:
            market = venue.market(fill.market_id, fallback_fees=dated_fee_schedule(now))
            tape = _order_tape(venue, market, signed.order_hash)
        except (VenueUnavailable, VenueFormatError) as err:
            log.warning("fill_recheck_failed", order_id=fill.order_id, error=str(err))
            report.provisional_fills.append(fill.order_id)
            continue
        if not tape or not all(t.final for t in tape):
            report.provisional_fills.append(fill.order_id)
            continue
        good = [t for t in tape if not t.failed]
        failed = [t.trade_id for t in tape if t.failed]
        shares, notional, fee = _amounts(good, market)
        if good:
            detail = (f"{len(good)} trade(s) CONFIRMED"
                      + (f", {len(failed)} FAILED on chain" if failed else ""))
            journal.record_fill_final(fill.order_id, state="confirmed", shares=shares,
                                      notional_usd=notional, fee_usd=fee,
                                      trade_ids=tuple(t.trade_id for t in good),
                                      detail=detail, ts=now)
            report.confirmed_fills.append(fill.order_id)
            outcome = "fill_confirmed"
            log.info("fill_confirmed", order_id=fill.order_id, shares=shares,
                     failed_trades=len(failed))
        else:
            detail = (f"every trade FAILED on chain ({', '.join(failed)}): no position, "
                      f"stake {fill.matched_notional_usd + fill.matched_fee_usd:.2f} USDC back")
            journal.record_fill_final(fill.order_id, state="failed", shares=0.0,
                                      notional_usd=0.0, fee_usd=0.0, trade_ids=tuple(failed),
                                      detail=detail, ts=now)
            report.failed_fills.append(fill.order_id)
            outcome = "fill_failed"
            log.warning("fill_failed", order_id=fill.order_id, market_id=fill.market_id,
                        matched_shares=fill.matched_shares, trades=failed)
        journal.record_reconciliation(account=account, order_id=fill.order_id,
                                      outcome=outcome, detail=detail, ts=now)
    return report


def audit_fills(journal: Journal, venue: VenueLedger, *, account: str, now: float,
                window_s: float = AUDIT_WINDOW_S, adopted: list[str] | None = None
                ) -> list[str]:
    """Differences between the venue's trades and the journal in recently entered markets.

    A resolved order the venue filled for more than the journal says (a ghost fill) is
    adopted from the venue's trades and listed in ``adopted``; the rest are problems."""
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
        venue_trades: dict[str, list[VenueTrade]] = {}
        for t in tape:
            if t.failed:
                continue
            order_id = by_hash.get(t.taker_order_id.lower())
            if order_id is None:
                problems.append(f"{market_id}: venue trade {t.trade_id} by an order the "
                                "journal does not know")
                continue
            venue_shares[order_id] = venue_shares.get(order_id, Decimal(0)) + t.shares
            venue_trades.setdefault(order_id, []).append(t)
        for intent in (i for i in recent if i.market_id == market_id):
            got = venue_shares.get(intent.order_id, Decimal(0))
            e = executions.get(intent.order_id)
            journaled = Decimal(repr(e.shares)) if e is not None and e.status == "filled" \
                else Decimal(0)
            if abs(got - journaled) <= Decimal("0.01"):
                continue
            if got > journaled and e is not None and e.status != "error":
                try:
                    _adopt(journal, e, venue_trades[intent.order_id], market, now=now,
                           journaled=journaled, account=account)
                except JournalError as err:
                    problems.append(f"{market_id}: order {intent.order_id}: venue fill not "
                                    f"adopted ({err})")
                    continue
                if adopted is not None:
                    adopted.append(intent.order_id)
                continue
            problems.append(f"{market_id}: order {intent.order_id} has {got} shares at the "
                            f"venue and {journaled} in the journal")
    return problems


def _adopt(journal: Journal, e: ExecutionReport, trades: list[VenueTrade], market: MarketInfo,
           *, now: float, journaled: Decimal, account: str) -> None:
    """The venue's trades of an order become its execution (provisional until CONFIRMED)."""
    shares, notional, fee = _amounts(trades, market)
    report = ExecutionReport(
        status="filled", broker=e.broker, order_id=e.order_id, market_id=e.market_id,
        side=e.side, stake_usd=e.stake_usd, worst_price=e.worst_price, shares=shares,
        avg_price=round(notional / shares, 6), notional_usd=notional, fee_usd=fee,
        final=all(t.final for t in trades), trade_ids=tuple(t.trade_id for t in trades),
        reason=f"filled: adopted from the venue's trades (the journal had {e.status} "
               f"{journaled} shares)")
    detail = (f"ghost fill: venue trades {', '.join(t.trade_id for t in trades)} "
              f"({shares} shares) replace {e.status} {journaled}")
    journal.adopt_venue_fill(report, ts=now, detail=detail)
    journal.record_reconciliation(account=account, order_id=e.order_id, outcome="ghost_fill",
                                  detail=detail, ts=now)
    log.warning("ghost_fill", order_id=e.order_id, shares=shares, journal_had=str(journaled))
