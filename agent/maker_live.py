"""The live runner's maker execution: the maker desk around a live (or paper) resting broker.

``updown run`` with ``EXECUTION_STYLE=maker|maker_then_taker`` hands each decision to
``RunnerDesk.on_decision`` (the graph's execute node sends nothing in a maker style) and every
fresh book of a window where something rests to ``on_book``.  This module adds what the
replay's desk driver does not need:

* **verified cut-offs**: ``close_window`` cancels, then reads the orders back; an order still
  resting (a lost or refused cancel) gets a market-wide cancel and a second read, up to
  ``cancel_rounds`` times, and is reported if it still rests;
* **shutdown**: every window cancelled and verified, then the venue's open orders read once
  more (the venue has no heartbeat disarm);
* **heartbeat failure**: ``halt`` cancels everything (verified) and no order is placed again
  in this process;
* **start-up recovery** (``recover``): resting orders the journal left ``intent``, ``unknown``
  or ``resting`` are looked up at the venue by their journaled hash and either adopted (still
  resting, window before its cut-off: the desk manages it as its own) or cancelled; never sent
  again.  An order with no journaled hash was never posted.  Open venue orders the journal does
  not know are cancelled.  Windows whose orders filled are given back to the desk, so the
  window's one entry is journaled at its cut-off and no second entry is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from core.guard import GuardLimits
from core.logs import get_logger
from core.maker import ExecutionStyle, maker_params
from core.records import FairValueEstimate, RiskAssessment, TraderDecision
from core.resting import MakerFill, RestingOrder, RestingVerdict
from core.snapshot import MarketSnapshot
from tools.broker import Broker, RestingBroker
from tools.fair_value import estimate_fair_value
from tools.journal import Journal
from tools.journal.resting import RestingOrders, RestingRow
from tools.ledger import guard_ledger
from tools.maker import MakerDesk, WindowDesk
from tools.paper_broker import PaperRestingBook

if TYPE_CHECKING:
    from core.settings import Settings
    from tools.polymarket.broker import LiveClobBroker

log = get_logger("updown.maker_live")


@runtime_checkable
class ForeignOrders(Protocol):
    """A live resting broker's extra power (``tools.polymarket.resting``)."""

    def cancel_foreign(self) -> list[str]: ...


@dataclass
class RecoveryReport:
    adopted: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    never_posted: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    # Orders still unknown (the venue could not be read): no decision until resolved.
    unresolved: list[str] = field(default_factory=list)
    foreign_cancelled: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unresolved


def _fills(journal: Journal, order_id: str) -> tuple[MakerFill, ...]:
    with journal.reading() as conn:
        rows = conn.execute("SELECT ts, shares, price, rebate_usd, rule FROM maker_fills"
                            " WHERE order_id = ? ORDER BY seq", (order_id,)).fetchall()
    return tuple(MakerFill(ts=r[0], shares=r[1], price=r[2], rebate_usd=r[3], rule=r[4])
                 for r in rows)


def _order_of(journal: Journal, row: RestingRow, expires_at: float | None) -> RestingOrder:
    """A journal row as the desk's record (its journaled fills included)."""
    status = row.status if row.status in ("resting", "filled", "cancelled", "rejected") \
        else "resting"
    return RestingOrder(order_id=row.order_id, market_id=row.market_id,
                        side="up" if row.side == "up" else "down", price=row.price,
                        shares=row.shares, expires_at=expires_at,
                        status=status,  # type: ignore[arg-type]
                        created_ts=row.created_ts, fills=_fills(journal, row.order_id),
                        reason=row.reason)


def _expires_at(journal: Journal, order_id: str) -> float | None:
    with journal.reading() as conn:
        row = conn.execute("SELECT expires_at FROM resting_orders WHERE order_id = ?",
                           (order_id,)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


class RunnerDesk:
    """The maker desk as the autonomous runner drives it."""

    def __init__(self, desk: MakerDesk, *, cancel_rounds: int = 3) -> None:
        self.desk = desk
        self.cancel_rounds = cancel_rounds
        # Set by ``halt`` (heartbeat failure): no order is placed again in this process.
        self.halted: str | None = None
        # Orders found resting after a cut-off, the kill switch or shutdown (must stay empty).
        self.left_resting: list[str] = []

    @property
    def broker(self) -> RestingBroker:
        return self.desk.broker

    def on_decision(self, *, snapshot: MarketSnapshot, fair: FairValueEstimate | None,
                    trader: TraderDecision, risk: RiskAssessment | None, decision_id: str,
                    now: float) -> RestingVerdict | None:
        if self.halted is not None:
            return None
        return self.desk.on_decision(snapshot=snapshot, fair=fair, trader=trader, risk=risk,
                                     decision_id=decision_id, now=now)

    def on_book(self, snapshot: MarketSnapshot, fair: FairValueEstimate | None,
                now: float) -> None:
        w = self.desk.windows.get(snapshot.market_id)
        if w is None or w.closed:
            return
        if now >= w.window_end - self.desk.params.cancel_last_s:
            self.close_window(snapshot.market_id, now)
            return
        self.desk.on_book(snapshot, fair, now)
        if self.desk.stop_file.exists():
            self._verify_everywhere(now, reason="kill switch")

    def book(self, snapshot: MarketSnapshot, now: float) -> None:
        """A fresh book of a window from the live feed: the paper venue matches it first
        (live fills happen at the venue), then the desk sees it with its fair value."""
        w = self.desk.windows.get(snapshot.market_id)
        if w is None or w.closed:
            return
        if isinstance(self.broker, PaperRestingBook):
            self.broker.match(snapshot, now)
        self.on_book(snapshot, estimate_fair_value(snapshot), now)

    def needs_books(self, market_id: str) -> bool:
        return self.desk.needs_books(market_id)

    def entered(self, market_id: str) -> bool:
        w = self.desk.windows.get(market_id)
        return w is not None and (w.has_fill or (w.taker is not None
                                                 and w.taker.status == "filled"))

    def has_open(self) -> bool:
        return self.desk.has_open()

    def close_window(self, market_id: str, now: float) -> list[RestingOrder]:
        """The cut-off: cancel and verify, with market-wide cancels if one is left."""
        left = self.desk.close_window(market_id, now)
        for _ in range(self.cancel_rounds):
            if not left:
                return []
            self.broker.cancel_all(market_id, now=now)
            left = self.desk.close_window(market_id, now)
        if left:
            self.left_resting.extend(o.order_id for o in left)
            log.error("resting_after_cutoff", market_id=market_id,
                      order_ids=[o.order_id for o in left])
        return left

    def _verify_everywhere(self, now: float, *, reason: str) -> list[RestingOrder]:
        left = self.desk.cancel_everything(now, reason=reason)
        for _ in range(self.cancel_rounds):
            if not left:
                return []
            for market_id in {o.market_id for o in left}:
                self.broker.cancel_all(market_id, now=now)
            left = self.desk.cancel_everything(now, reason=reason)
        if left:
            self.left_resting.extend(o.order_id for o in left)
            log.error("resting_not_cancelled", reason=reason,
                      order_ids=[o.order_id for o in left])
        return left

    def halt(self, now: float, *, reason: str) -> list[RestingOrder]:
        """Heartbeat failure: cancel everything (verified); place nothing more."""
        self.halted = reason
        log.error("maker_halted", reason=reason)
        return self._verify_everywhere(now, reason=reason)

    def shutdown(self, now: float) -> list[RestingOrder]:
        """Cancel everything, verified, and journal what each window bought."""
        left = self._verify_everywhere(now, reason="shutdown")
        left = left or self.desk.shutdown(now)
        return left

    # --- start-up ------------------------------------------------------------------------

    def recover(self, journal: Journal, *, account: str, now: float) -> RecoveryReport:
        """Find every resting order a previous process left and cancel or adopt it."""
        report = RecoveryReport()
        store = RestingOrders(journal)
        entered = {i.market_id for i in journal.intents(account=account)}
        rows = store.rows(account=account)
        open_markets = {r.market_id for r in rows if r.status in ("intent", "unknown",
                                                                   "resting")}
        filled_markets = {r.market_id for r in rows if r.filled_shares > 0}
        markets = (open_markets | filled_markets) - entered
        params = self.desk.params
        for market_id in sorted(markets):
            orders: list[RestingOrder] = []
            decision_ids: dict[str, str] = {}
            window_end: float | None = None
            for row in (r for r in rows if r.market_id == market_id):
                expires_at = _expires_at(journal, row.order_id)
                if expires_at is not None:
                    window_end = max(window_end or 0.0, expires_at + params.cancel_last_s)
                order = self._recover_one(journal, store, row, expires_at, now, report)
                if order is None:
                    continue
                orders.append(order)
                decision_ids[order.order_id] = row.decision_id
            if window_end is None or not orders:
                continue
            w = WindowDesk(market_id, window_end, orders=orders, decision_ids=decision_ids)
            self.desk.windows[market_id] = w
            cutoff_passed = now >= window_end - params.cancel_last_s
            killed = self.desk.stop_file.exists()
            for order in w.open_orders():
                if cutoff_passed or killed or self.halted is not None:
                    final = self.broker.cancel(order.order_id, now=now)
                    report.cancelled.append(order.order_id)
                    if final is not None:
                        w.orders = [final if o.order_id == final.order_id else o
                                    for o in w.orders]
                        store.record_state(final, ts=now)
                else:
                    report.adopted.append(order.order_id)
            if cutoff_passed:
                left = self.close_window(market_id, now)
                if not left:
                    report.closed.append(market_id)
        self._cancel_foreign(report)
        log.info("resting_recovered", adopted=report.adopted, cancelled=report.cancelled,
                 never_posted=report.never_posted, closed=report.closed,
                 unresolved=report.unresolved, foreign=report.foreign_cancelled)
        return report

    def _recover_one(self, journal: Journal, store: RestingOrders, row: RestingRow,
                     expires_at: float | None, now: float, report: RecoveryReport
                     ) -> RestingOrder | None:
        if row.status not in ("intent", "unknown", "resting"):
            return _order_of(journal, row, expires_at)
        seen = self.broker.lookup_resting(row.order_id)
        if seen is None:
            if self._has_hash(journal, row.order_id) and row.status != "resting":
                # Hash journaled, venue silent: it may still appear; decide later.
                report.unresolved.append(row.order_id)
                return None
            # Paper venue gone with its process, or no hash journaled: the order never
            # rested at any venue that can still fill it.
            base = _order_of(journal, row, expires_at)
            seen = base.model_copy(update={
                "status": "cancelled" if base.fills else "rejected",
                "reason": "never posted (no order hash journaled)"
                if row.status != "resting" else "venue lost with the previous process"})
            report.never_posted.append(row.order_id)
        store.record_state(seen, ts=now)
        return seen

    @staticmethod
    def _has_hash(journal: Journal, order_id: str) -> bool:
        with journal.reading() as conn:
            table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND"
                                 " name = 'resting_venue_orders'").fetchone()
            if table is None:
                return False
            return conn.execute("SELECT 1 FROM resting_venue_orders WHERE order_id = ?",
                                (order_id,)).fetchone() is not None

    def _cancel_foreign(self, report: RecoveryReport) -> None:
        """Open venue orders this journal never signed: cancelled, never adopted."""
        venue = self.broker
        if isinstance(venue, ForeignOrders):
            report.foreign_cancelled.extend(venue.cancel_foreign())


def build_runner_desk(*, style: ExecutionStyle, settings: Settings, limits: GuardLimits,
                      journal: Journal, account: str, run_id: str, stop_file: Path,
                      taker: Broker, live: LiveClobBroker | None) -> RunnerDesk:
    """The desk of a run: on the live CLOB (resting broker sharing the session's broker) or
    on the paper venue (resting orders matched against the live feed's books)."""
    params = maker_params(settings)
    resting: RestingBroker
    if live is not None:
        from tools.polymarket.resting import LiveRestingBroker, RestingVenueStore

        resting = LiveRestingBroker(live, RestingVenueStore(journal))
    else:
        resting = PaperRestingBook(queue_fill_fraction=params.queue_fill_fraction,
                                   rebate_share=params.rebate_share)
    exits = resting if isinstance(resting, PaperRestingBook) else None
    desk = MakerDesk(style=style, params=params, broker=resting, limits=limits,
                     stop_file=stop_file, account=account, run_id=run_id, journal=journal,
                     taker=taker, exit_broker=exits,
                     ledger=lambda now: guard_ledger(journal, account=account, now=now))
    return RunnerDesk(desk)
