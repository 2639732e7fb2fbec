"""The maker desk: who owns resting orders between decision ticks.

The graph decides (direction, confidence, the risk manager's stake); in a maker style its
``execute`` node sends nothing and the runner hands the decision to this desk, which:

* prices a post-only bid from policy code (``core.maker``), judges it with the resting-order
  guard (``core.resting_guard``) and sends it through ``tools.execution.send_resting_order``;
  an LLM trader may veto the side (it chose another side or hold) or shrink the stake (through
  the risk level), never set a price or a size;
* on every book (``on_book``): records fills, cancels at the window's cut-off, on stale data
  and on the kill switch, replaces when fair value or the book moved past the threshold
  (rate-limited by the guard), takes near the deadline in ``maker_then_taker`` if the edge
  after fees still holds, and sells held shares when exits are on;
* at the window's end (``close_window``) cancels and verifies by lookup that nothing rests,
  and journals what was bought as the window's one entry (so settlement and the guard's
  ledger see it like a taker entry); at shutdown (``shutdown``) cancels everything, verified.

One entry per window holds as for takers: after a window's first fill no new order or
replace is sent there (the remainder rests until it fills or is cancelled).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core import guard as guard_rules
from core.guard import MAX_WORST_PRICE, GuardLimits
from core.logs import get_logger
from core.maker import (
    ExecutionStyle,
    MakerParams,
    exit_signal,
    maker_side,
    needs_replace,
    quote_price,
    taker_fallback,
)
from core.records import (
    ExecutionReport,
    FairValueEstimate,
    LedgerView,
    RiskAssessment,
    Side,
    TradeProposal,
    TraderDecision,
)
from core.resting import ExitFill, RestingExposure, RestingOrder, RestingVerdict
from core.resting_guard import evaluate_resting
from core.snapshot import MarketSnapshot
from tools.broker import Broker, ExitBroker, RestingBroker
from tools.execution import resting_order_id, send_order, send_resting_order
from tools.journal import DuplicateEntryError, Journal
from tools.journal.resting import RestingOrders

log = get_logger("updown.maker")

# Who decided with the deterministic policy: its hold means "no taker edge", not a veto.
_POLICY = "policy"


@dataclass
class WindowDesk:
    """One window's maker state (only the desk writes it)."""

    market_id: str
    window_end: float
    orders: list[RestingOrder] = field(default_factory=list)
    decision_ids: dict[str, str] = field(default_factory=dict)
    replaces: int = 0
    last_replace_ts: float | None = None
    sent: int = 0
    taker: ExecutionReport | None = None
    exits: list[ExitFill] = field(default_factory=list)
    closed: bool = False

    def open_orders(self) -> list[RestingOrder]:
        return [o for o in self.orders if o.is_open]

    def open_for(self, side: Side) -> RestingOrder | None:
        return next((o for o in self.orders if o.is_open and o.side == side), None)

    @property
    def filled_shares(self) -> dict[Side, float]:
        held: dict[Side, float] = {"up": 0.0, "down": 0.0}
        for o in self.orders:
            held[o.side] += o.filled_shares
        for e in self.exits:
            held[e.side] -= e.shares
        return held

    @property
    def has_fill(self) -> bool:
        return any(o.fills for o in self.orders)

    def cost_usd(self, side: Side) -> float:
        return sum(o.filled_usd for o in self.orders if o.side == side)

    def bought_shares(self, side: Side) -> float:
        return sum(o.filled_shares for o in self.orders if o.side == side)


class MakerDesk:
    """Owns the resting orders of a run across decision ticks (paper or live broker)."""

    def __init__(
        self,
        *,
        style: ExecutionStyle,
        params: MakerParams,
        broker: RestingBroker,
        limits: GuardLimits,
        stop_file: Path,
        account: str,
        run_id: str,
        journal: Journal | None = None,
        taker: Broker | None = None,
        exit_broker: ExitBroker | None = None,
        ledger: Callable[[float], LedgerView] | None = None,
    ) -> None:
        if style == "taker":
            raise ValueError("the maker desk serves maker styles only")
        self.style = style
        self.params = params
        self.broker = broker
        self.limits = limits
        self.stop_file = stop_file
        self.account = account
        self.run_id = run_id
        self.journal = journal
        self.resting_journal = RestingOrders(journal) if journal is not None else None
        self.taker = taker
        self.exit_broker = exit_broker
        self._ledger = ledger or (lambda _now: LedgerView())
        self.windows: dict[str, WindowDesk] = {}
        # Every guard answer, for the decision records and the eval.
        self.verdicts: list[tuple[str, RestingVerdict]] = []

    # --- views -----------------------------------------------------------------------------

    def window(self, snapshot: MarketSnapshot) -> WindowDesk:
        w = self.windows.get(snapshot.market_id)
        if w is None:
            w = self.windows[snapshot.market_id] = WindowDesk(snapshot.market_id,
                                                               snapshot.window_end)
        return w

    def has_open(self, market_id: str | None = None) -> bool:
        return any(w.open_orders() for m, w in self.windows.items()
                   if market_id is None or m == market_id)

    def needs_books(self, market_id: str) -> bool:
        """Does this window need every book (something rests, or exits watch held shares)?"""
        w = self.windows.get(market_id)
        if w is None or w.closed:
            return False
        held = any(v > 0 for v in w.filled_shares.values())
        return bool(w.open_orders()) or (self.params.exits_enabled and held)

    def exposure(self, w: WindowDesk) -> RestingExposure:
        pending = sum(1 for x in self.windows.values()
                      if not x.closed and (x.open_orders() or x.has_fill) and x is not w)
        resting_total = sum(o.resting_usd for x in self.windows.values()
                            for o in x.open_orders())
        return RestingExposure(
            resting_usd_up=sum(o.resting_usd for o in w.open_orders() if o.side == "up"),
            resting_usd_down=sum(o.resting_usd for o in w.open_orders() if o.side == "down"),
            filled_usd=sum(o.filled_usd for o in w.orders),
            open_up=sum(1 for o in w.open_orders() if o.side == "up"),
            open_down=sum(1 for o in w.open_orders() if o.side == "down"),
            pending_windows=pending, resting_usd_total=resting_total,
            replaces=w.replaces, last_replace_ts=w.last_replace_ts)

    # --- decisions ---------------------------------------------------------------------------

    def on_decision(self, *, snapshot: MarketSnapshot, fair: FairValueEstimate | None,
                    trader: TraderDecision, risk: RiskAssessment | None, decision_id: str,
                    now: float) -> RestingVerdict | None:
        """A decision tick: rest a bid on the side with maker edge, unless vetoed."""
        w = self.window(snapshot)
        if w.closed or w.taker is not None or fair is None or risk is None:
            return None
        self._sync(w, now)
        if w.has_fill:
            return None  # one entry per window: the remainder rests, nothing new
        quote = maker_side(fair, snapshot, self.params, self.limits.min_edge)
        if quote is None:
            return None
        side, price = quote
        if trader.decided_by != _POLICY and trader.analysis.decision != side:
            # The model vetoes this side (another side, or hold): nothing of ours rests.
            self._cancel_window(w, now, reason="vetoed by the trader")
            return None
        other = w.open_for("down" if side == "up" else "up")
        if other is not None:
            self._cancel(w, other, now, reason="edge moved to the other side")
        current = w.open_for(side)
        if current is not None and not needs_replace(current.price, price, self.params):
            return None
        proposal = self._proposal(snapshot, fair, side, risk.stake_usd)
        return self._rest(w, snapshot, fair, proposal, price, decision_id, now,
                          replacing=current)

    def _proposal(self, snapshot: MarketSnapshot, fair: FairValueEstimate, side: Side,
                  stake_usd: float) -> TradeProposal | None:
        book = snapshot.book_for(side)
        if book is None or book.ask is None:
            return None
        return TradeProposal(side=side, stake_usd=stake_usd,
                             confidence=min(100, max(0, round(100 * fair.fair_for(side)))),
                             fair_p=fair.fair_for(side), ask=book.ask,
                             worst_price=min(book.ask + self.limits.max_slippage,
                                             MAX_WORST_PRICE))

    def _rest(self, w: WindowDesk, snapshot: MarketSnapshot, fair: FairValueEstimate,
              proposal: TradeProposal | None, price: float, decision_id: str, now: float,
              *, replacing: RestingOrder | None) -> RestingVerdict:
        kill = self.stop_file.exists()
        verdict = evaluate_resting(
            proposal, snapshot, fair, self.limits, self._ledger(now), now, price=price,
            exposure=self.exposure(w), params=self.params, kill_switch_engaged=kill,
            replacing_usd=None if replacing is None else replacing.resting_usd)
        self.verdicts.append((decision_id, verdict))
        if not verdict.approved or verdict.side is None or verdict.price is None:
            if replacing is not None and not self._still_good(replacing, fair, verdict):
                self._cancel(w, replacing, now, reason="replace refused: "
                             + ", ".join(sorted({h.rule for h in verdict.rules_fired
                                                 if h.action == "reject"})))
            return verdict
        if replacing is not None:
            # A replace is a cancel, then a new order sized on what the cancel left filled.
            final = self._cancel(w, replacing, now, reason="replaced")
            w.replaces += 1
            w.last_replace_ts = now
            if final is not None and final.fills:
                return verdict  # it filled meanwhile: one entry per window, no new order
        w.sent += 1
        order_id = resting_order_id(decision_id, w.sent)
        order = send_resting_order(
            order_id=order_id, decision_id=decision_id, snapshot=snapshot, side=verdict.side,
            price=verdict.price, shares=verdict.shares,
            expires_at=w.window_end - self.params.cancel_last_s,
            execution_style=self.style,
            replaces=None if replacing is None else replacing.order_id,
            broker=self.broker, journal=self.resting_journal, account=self.account,
            run_id=self.run_id, stop_file=self.stop_file, now=now)
        if order is not None:
            w.orders.append(order)
            w.decision_ids[order.order_id] = decision_id
            log.info("resting_order", order_id=order.order_id, market_id=w.market_id,
                     side=order.side, price=order.price, shares=order.shares,
                     status=order.status, execution_style=self.style)
        return verdict

    def _still_good(self, order: RestingOrder, fair: FairValueEstimate,
                    verdict: RestingVerdict) -> bool:
        """A refused replace keeps the old order only when just the rate limit refused it and
        the old price still leaves the minimum edge."""
        rejected = {h.rule for h in verdict.rules_fired if h.action == "reject"}
        return rejected == {"replace_rate"} and (
            fair.fair_for(order.side) - order.price >= self.limits.min_edge - 1e-12)

    # --- books -----------------------------------------------------------------------------

    def on_book(self, snapshot: MarketSnapshot, fair: FairValueEstimate | None,
                now: float) -> None:
        """One book of a window (every book while something rests): fills, cut-off, stale
        data, kill switch, replaces, the taker deadline and exits."""
        w = self.windows.get(snapshot.market_id)
        if w is None or w.closed:
            return
        self._sync(w, now)
        if self.stop_file.exists():
            self.cancel_everything(now, reason="kill switch")
            return
        if w.window_end - now <= self.params.cancel_last_s:
            self.close_window(w.market_id, now)
            return
        stale = (snapshot.book_ts is None
                 or now - snapshot.book_ts > self.limits.max_book_age_s
                 or now - snapshot.price_ts > self.limits.max_price_age_s
                 + snapshot.price_interval_s)
        if stale or fair is None:
            self._cancel_window(w, now, reason="stale data" if stale else "no fair value")
            return
        if (self.style == "maker_then_taker" and w.taker is None and not w.has_fill
                and w.open_orders()
                and w.window_end - now <= self.params.cancel_last_s
                + self.params.taker_deadline_s):
            self._take(w, snapshot, fair, now)
            return
        for order in w.open_orders():
            new_price = quote_price(fair, snapshot, order.side, self.params)
            if not needs_replace(order.price, new_price, self.params):
                continue
            if w.has_fill or new_price is None:
                self._cancel(w, order, now, reason="quote moved")
                continue
            decision_id = w.decision_ids.get(order.order_id, order.order_id)
            proposal = self._proposal(snapshot, fair, order.side,
                                      round(order.shares * order.price, 2))
            self._rest(w, snapshot, fair, proposal, new_price, decision_id, now,
                       replacing=order)
        self._exits(w, snapshot, fair, now)

    def _take(self, w: WindowDesk, snapshot: MarketSnapshot, fair: FairValueEstimate,
              now: float) -> None:
        """maker_then_taker at the deadline: cancel the rest, cross if the edge holds."""
        order = w.open_orders()[0]
        final = self._cancel(w, order, now, reason="taker deadline")
        if final is not None and final.fills:
            return
        if self.taker is None or not taker_fallback(fair, snapshot, order.side,
                                                    self.limits.min_edge):
            return
        proposal = self._proposal(snapshot, fair, order.side,
                                  round(order.shares * order.price, 2))
        verdict = guard_rules.evaluate(proposal, snapshot, fair, self.limits,
                                       self._ledger(now), now,
                                       kill_switch_engaged=self.stop_file.exists())
        if not verdict.approved:
            return
        decision_id = w.decision_ids.get(order.order_id, order.order_id) + "/taker"
        w.taker = send_order(verdict=verdict, snapshot=snapshot, decision_id=decision_id,
                             broker=self.taker, journal=self.journal, account=self.account,
                             run_id=self.run_id, stop_file=self.stop_file, now=now)

    def _exits(self, w: WindowDesk, snapshot: MarketSnapshot, fair: FairValueEstimate,
               now: float) -> None:
        if not self.params.exits_enabled or self.exit_broker is None:
            return
        for side, held in w.filled_shares.items():
            bought = w.bought_shares(side)
            if held <= 0.0 or bought <= 0.0:
                continue
            entry = w.cost_usd(side) / bought
            reason = exit_signal(fair, snapshot, side, entry, self.params)
            book = snapshot.book_for(side)
            if reason is None or book is None or book.bid is None:
                continue
            fill = self.exit_broker.place_market_sell(
                order_id=f"{w.market_id}#exit{len(w.exits) + 1}", snapshot=snapshot, side=side,
                shares=round(held, 2), worst_price=book.bid, now=now)
            if fill.status == "filled":
                w.exits.append(fill.model_copy(update={"reason": reason}))

    # --- cancels -----------------------------------------------------------------------------

    def _sync(self, w: WindowDesk, now: float) -> None:
        """Read every open order back from the venue (fills happen between our calls)."""
        for i, order in enumerate(w.orders):
            if not order.is_open:
                continue
            seen = self.broker.lookup_resting(order.order_id)
            if seen is not None and seen != order:
                w.orders[i] = seen
                if self.resting_journal is not None:
                    self.resting_journal.record_state(seen, ts=now)

    def _cancel(self, w: WindowDesk, order: RestingOrder, now: float, *, reason: str
                ) -> RestingOrder | None:
        final = self.broker.cancel(order.order_id, now=now)
        if final is None:
            return None
        if final.status == "cancelled" and final.reason != reason:
            final = final.model_copy(update={"reason": reason})
        for i, o in enumerate(w.orders):
            if o.order_id == final.order_id:
                w.orders[i] = final
        if self.resting_journal is not None:
            self.resting_journal.record_state(final, ts=now)
        return final

    def _cancel_window(self, w: WindowDesk, now: float, *, reason: str) -> None:
        for order in w.open_orders():
            self._cancel(w, order, now, reason=reason)

    def cancel_everything(self, now: float, *, reason: str) -> list[RestingOrder]:
        """Cancel every open order of every window; what is still open afterwards (by lookup:
        empty unless the venue failed to cancel)."""
        for w in self.windows.values():
            self._cancel_window(w, now, reason=reason)
        return self.verify_none_open()

    def verify_none_open(self) -> list[RestingOrder]:
        return [o for o in self.broker.open_orders()
                if any(o.order_id == x.order_id for w in self.windows.values()
                       for x in w.orders)]

    def close_window(self, market_id: str, now: float) -> list[RestingOrder]:
        """The window's cut-off: cancel, verify, journal the entry; the orders still open
        (empty unless a cancel failed)."""
        w = self.windows.get(market_id)
        if w is None or w.closed:
            return []
        self._sync(w, now)
        self._cancel_window(w, now, reason="window cut-off")
        still = [o for o in (self.broker.lookup_resting(x.order_id) for x in w.orders)
                 if o is not None and o.is_open]
        if still:
            log.error("resting_orders_left", market_id=market_id,
                      order_ids=[o.order_id for o in still])
            return still
        w.closed = True
        self._journal_entry(w, now)
        return []

    def shutdown(self, now: float) -> list[RestingOrder]:
        """Cancel everything and verify by lookup (the venue has no heartbeat disarm)."""
        left = self.cancel_everything(now, reason="shutdown")
        for w in self.windows.values():
            if not w.open_orders() and not w.closed:
                w.closed = True
                self._journal_entry(w, now)
        return left

    def _journal_entry(self, w: WindowDesk, now: float) -> None:
        """What the window bought as maker becomes its one order intent + execution."""
        filled = [o for o in w.orders if o.fills]
        if self.journal is None or not filled:
            return
        first = filled[0]
        side = first.side
        bought = w.bought_shares(side)
        cost = w.cost_usd(side)
        sold = sum(e.shares for e in w.exits if e.side == side)
        proceeds = sum(e.proceeds_usd for e in w.exits if e.side == side)
        held = round(bought - sold, 2)
        net = round(cost - proceeds, 6)
        decision_id = w.decision_ids.get(first.order_id, first.order_id)
        order_id = f"{first.order_id}/entry"
        try:
            self.journal.record_order_intent(
                account=self.account, run_id=self.run_id, decision_id=decision_id + "/maker",
                order_id=order_id, market_id=w.market_id, side=side, stake_usd=round(cost, 2),
                worst_price=max(o.price for o in filled), created_ts=first.fills[0].ts)
        except DuplicateEntryError as err:
            log.error("maker_entry_not_journaled", market_id=w.market_id, reason=str(err))
            return
        rebate = sum(o.rebate_usd for o in filled)
        self.journal.record_execution(ExecutionReport(
            status="filled", broker=self.broker.name, order_id=order_id,
            market_id=w.market_id, side=side, stake_usd=round(cost, 2),
            worst_price=max(o.price for o in filled), shares=max(held, 0.0),
            avg_price=round(net / held, 6) if held > 0 else None,
            notional_usd=net, fee_usd=0.0,
            reason=f"maker ({self.style}): {sum(len(o.fills) for o in filled)} fills of "
                   f"{len(filled)} orders, {bought:.2f} shares for {cost:.2f}, rebate "
                   f"{rebate:.4f}, exits {sold:.2f} shares for {proceeds:.2f}"), ts=now)
