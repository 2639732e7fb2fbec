"""A manual order (``updown order``): the operator's market buy, through the same guard and
the same execute path as the agent's orders (the original ``place_order`` script).

What differs from an agent decision, and why:

* The forecast is the operator's, so the three rules that judge the agent's forecast
  (``guard.MANUAL_WAIVABLE``: confidence, economics, reference) are waived and reported as
  waived.  Every money-safety rule applies unchanged: mode and confirmation, kill switch, book
  freshness, timing, one entry per window, orders per day, daily loss, cooldown, size cap and
  depth, venue minimum, worst price.
* The snapshot is built from the venue at the moment of the command: Gamma for the window,
  tick, minimum size and fee schedule, ``/book`` for both tokens' best levels and the book's
  own timestamp.  No BTC price is read for a manual order; ``MarketSnapshot`` requires one, so
  the snapshot carries the labelled placeholder ``NO_BTC_PRICE`` (source ``MANUAL_SOURCE``),
  stamped at the decision time: only the waived rules could look at its value, and the
  price-age check has nothing to judge.  The book's age is judged as for any order.

The decision is journaled (decided_by "manual") before the order intent, and the order goes
through ``tools.execution.send_order``: STOP re-check, intent first, one attempt, never retried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core import guard
from core.clock import Clock
from core.errors import UserError
from core.fees import dated_fee_schedule
from core.records import ExecutionReport, RuleHit, Side, TradeProposal, Verdict
from core.settings import Settings
from core.snapshot import BookTop, Candles, MarketSnapshot
from tools.broker import Broker
from tools.execution import send_order
from tools.journal import Journal
from tools.ledger import guard_ledger
from tools.polymarket.http import BOOK, ClobHttp, VenueUnavailable
from tools.polymarket.wire import MarketInfo, VenueFormatError, dec, parse_gamma_market

WINDOW_S = 900
MANUAL_SOURCE = "none: manual order (no BTC price read)"
# Placeholder for MarketSnapshot.price on manual orders; read by no rule that applies to them.
NO_BTC_PRICE = 1.0


class ManualOrderError(UserError):
    """The manual order cannot be evaluated (no market, no book ...): one line for the user."""


def current_window_slug(now: float, asset: str = "btc") -> str:
    """The 15-minute market open at ``now``: ``btc-updown-15m-<start>``."""
    start = math.floor(now / WINDOW_S) * WINDOW_S
    return f"{asset}-updown-15m-{start}"


@dataclass(frozen=True, slots=True)
class ManualOrderOutcome:
    run_id: str
    decision_id: str
    snapshot: MarketSnapshot
    verdict: Verdict
    waived: tuple[RuleHit, ...]
    execution: ExecutionReport | None


def _best(levels: Any, *, lowest: bool) -> tuple[float | None, float | None]:
    if not isinstance(levels, list) or not levels:
        return None, None
    parsed = [(dec(str(lv["price"])), dec(str(lv["size"]))) for lv in levels]
    price, size = (min if lowest else max)(parsed, key=lambda lv: lv[0])
    return float(price), float(size)


def venue_snapshot(http: ClobHttp, market_id: str, *, now: float) -> tuple[MarketInfo,
                                                                           MarketSnapshot]:
    """The market and its book as the venue shows them at ``now``."""
    try:
        doc = http.gamma_market(market_id)
        if doc is None:
            raise ManualOrderError(f"no market {market_id!r} at Gamma")
        market = parse_gamma_market(doc, fallback_fees=dated_fee_schedule(now))
        tops: dict[str, BookTop] = {}
        stamps: list[float] = []
        for side in ("up", "down"):
            book = http.clob(BOOK, params={"token_id": market.token_for(side)})  # type: ignore[arg-type]
            ask, ask_size = _best(book.get("asks"), lowest=True)
            bid, bid_size = _best(book.get("bids"), lowest=False)
            tops[side] = BookTop(bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size)
            if book.get("timestamp"):
                stamps.append(min(now, float(book["timestamp"]) / 1000.0))
    except (VenueUnavailable, VenueFormatError, KeyError, TypeError, AttributeError) as err:
        raise ManualOrderError(f"market {market_id}: {err}") from None
    if market.window_start is None or market.window_end is None:
        raise ManualOrderError(f"market {market_id} has no window times at Gamma")
    snapshot = MarketSnapshot(
        market_id=market_id, as_of=now, window_start=market.window_start,
        window_end=market.window_end, price=NO_BTC_PRICE, price_ts=now,
        price_source=MANUAL_SOURCE, candles=Candles(interval_s=60.0),
        up=tops["up"], down=tops["down"],
        # The oldest of the two books' own stamps: freshness is judged on the staler one.
        book_ts=min(stamps) if len(stamps) == 2 else None,
        fee_rate=market.fee_schedule.rate, fee_exponent=market.fee_schedule.exponent,
        tick_size=float(market.tick_size), min_order_shares=float(market.min_order_shares))
    return market, snapshot


def place_manual_order(
    *,
    settings: Settings,
    journal: Journal,
    limits: guard.GuardLimits,
    account: str,
    broker: Broker,
    http: ClobHttp,
    clock: Clock,
    market_id: str,
    side: Side,
    stake_usd: float,
    worst_price: float | None = None,
) -> ManualOrderOutcome:
    """Evaluate the operator's order with the guard; send it once if approved."""
    now = clock.now()
    _, snap = venue_snapshot(http, market_id, now=now)
    book = snap.book_for(side)
    if book is None or book.ask is None:
        raise ManualOrderError(f"no ask for {side} in {market_id}")
    limit = worst_price if worst_price is not None else min(book.ask + limits.max_slippage,
                                                           guard.MAX_WORST_PRICE)
    # A manual order states no forecast: fair_p is recorded as the ask (zero edge).
    proposal = TradeProposal(side=side, stake_usd=stake_usd, confidence=100, fair_p=book.ask,
                             ask=book.ask, worst_price=min(max(limit, 0.0), 1.0))
    ledger = guard_ledger(journal, account=account, now=now)
    kill = settings.stop_file.exists()
    full = guard.evaluate(proposal, snap, None, limits, ledger, now, kill_switch_engaged=kill)
    verdict = guard.evaluate(proposal, snap, None, limits, ledger, now,
                             kill_switch_engaged=kill, waived=guard.MANUAL_WAIVABLE)
    waived = tuple(h for h in full.rules_fired
                   if h.action == "reject" and h.rule in guard.MANUAL_WAIVABLE)

    run_id = journal.start_run(
        account=account, mode=limits.mode, dataset=None, started_ts=now,
        config={"command": "order", "market_id": market_id, "side": side,
                "stake_usd": stake_usd, "worst_price": worst_price})
    decision_id = f"manual:{market_id}@{now:.0f}/{run_id[:12]}"
    journal.record_decision(
        run_id=run_id, decision_id=decision_id, market_id=market_id, as_of=now,
        decided_by="manual", decision=side, approved=verdict.approved,
        rules_fired=[h.rule for h in verdict.rules_fired if h.action == "reject"],
        record={"snapshot": snap.model_dump(mode="json", exclude={"candles"}),
                "proposal": proposal.model_dump(mode="json"),
                "verdict": verdict.model_dump(mode="json"),
                "waived": [h.model_dump(mode="json") for h in waived]})
    execution = None
    if verdict.approved:
        # The agent's own order path (tools.execution), not a copy of it.
        execution = send_order(verdict=verdict, snapshot=snap, decision_id=decision_id,
                               broker=broker, journal=journal, account=account, run_id=run_id,
                               stop_file=settings.stop_file, now=now)
    journal.finish_run(run_id, ended_ts=clock.now())
    return ManualOrderOutcome(run_id=run_id, decision_id=decision_id, snapshot=snap,
                              verdict=verdict, waived=waived, execution=execution)
