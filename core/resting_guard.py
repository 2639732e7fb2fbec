"""The guard for resting (maker) orders: every taker rule that still applies, plus its own.

Pure code like ``core.guard``.  A resting order passes the taker guard with one change (its
economics are judged at its own limit price, with no fee, instead of at the ask plus the fee)
and these rules on top:

* ``post_only``: the price never crosses the book (at most best ask - one tick);
* ``economics``: fair value of the side minus the limit price >= ``min_edge``;
* ``resting_per_side``: at most one resting order per side per window (a replace swaps it);
* ``replace_rate``: replaces at least ``min_replace_interval_s`` apart, at most
  ``max_replaces_per_window`` per window;
* ``cutoff``: nothing new in the window's last ``cancel_last_s`` seconds;
* ``exposure``: stake + dollars resting + dollars filled in the window <= ``MAX_POSITION_SIZE``
  (shrinks, then rejects below the venue minimum);
* ``daily_orders``: windows with maker orders not yet journaled count as orders;
* ``daily_loss``: resting dollars count as at risk (as if filled and lost).

Price comes from ``core.maker.quote_price`` and size from the risk manager's stake: the guard
can only shrink or reject, never move the price.
"""

from __future__ import annotations

import math

from core.guard import GuardLimits, evaluate
from core.maker import MakerParams
from core.records import FairValueEstimate, LedgerView, RuleHit, TradeProposal
from core.resting import RestingExposure, RestingVerdict
from core.snapshot import MarketSnapshot

RESTING_RULES = ("post_only", "economics", "resting_per_side", "replace_rate", "cutoff",
                 "exposure", "daily_orders", "daily_loss", "size")


def evaluate_resting(
    proposal: TradeProposal | None,
    snapshot: MarketSnapshot,
    fair: FairValueEstimate | None,
    limits: GuardLimits,
    ledger: LedgerView,
    now: float,
    *,
    price: float | None,
    exposure: RestingExposure,
    params: MakerParams,
    kill_switch_engaged: bool,
    replacing_usd: float | None = None,
) -> RestingVerdict:
    """Judge a resting buy of ``proposal.side`` at ``price``; ``replacing_usd`` is the resting
    dollars of the order a replace would cancel (None: a new order)."""
    if proposal is None:
        return RestingVerdict(approved=False)
    replacing = replacing_usd is not None
    # Taker economics do not apply to a maker; everything else does (mode, kill switch,
    # confidence, reference, freshness, timing, window, daily orders and loss, cooldown, size).
    base = evaluate(proposal, snapshot, fair, limits, ledger, now,
                    kill_switch_engaged=kill_switch_engaged, waived=frozenset({"economics"}))
    hits = list(base.rules_fired)

    def reject(rule: str, detail: str) -> None:
        hits.append(RuleHit(rule=rule, action="reject", detail=detail))

    side = proposal.side
    book = snapshot.book_for(side)
    tick = snapshot.tick_size
    if price is None or not (0.0 < price < 1.0):
        reject("post_only", "no valid limit price")
    elif book is None or book.ask is None:
        reject("post_only", f"no ask for {side}: cannot prove the order does not cross")
    elif price > book.ask - tick + 1e-9:
        reject("post_only", f"price {price:.3f} would cross ask {book.ask:.3f}")
    if price is not None and fair is not None:
        edge = fair.fair_for(side) - price
        if edge < limits.min_edge - 1e-12:
            reject("economics", f"maker edge {edge:.4f} < min_edge {limits.min_edge:.4f}")
    if not replacing and exposure.open_for(side) >= 1:
        reject("resting_per_side", f"a {side} order already rests in {snapshot.market_id}")
    if replacing:
        if exposure.replaces >= params.max_replaces_per_window:
            reject("replace_rate", f"{exposure.replaces} replaces >= "
                   f"{params.max_replaces_per_window} in this window")
        if (exposure.last_replace_ts is not None
                and now - exposure.last_replace_ts < params.min_replace_interval_s):
            reject("replace_rate", f"last replace {now - exposure.last_replace_ts:.1f}s ago < "
                   f"{params.min_replace_interval_s:.1f}s")
    if snapshot.window_end - now < params.cancel_last_s:
        reject("cutoff", f"{snapshot.window_end - now:.0f}s to close < "
               f"{params.cancel_last_s:.0f}s")
    if not replacing and ledger.orders_today + exposure.pending_windows >= (
            limits.max_orders_per_day):
        reject("daily_orders", f"{ledger.orders_today} orders + {exposure.pending_windows} "
               f"maker windows >= {limits.max_orders_per_day}")

    stake = base.stake_usd if base.approved else proposal.stake_usd
    stake = min(stake, limits.max_position_usd)
    committed = exposure.window_usd - (replacing_usd or 0.0)
    room = limits.max_position_usd - committed
    if stake > room + 1e-9:
        hits.append(RuleHit(rule="exposure", action="shrink",
                            detail=f"stake {stake:.2f} + {committed:.2f} committed in window > "
                            f"cap {limits.max_position_usd:.2f}"))
        stake = max(0.0, room)
    at_risk = exposure.resting_usd_total - (replacing_usd or 0.0) + stake
    if ledger.realized_pnl_today - at_risk <= -limits.daily_loss_limit_usd:
        reject("daily_loss", f"realised {ledger.realized_pnl_today:.2f} minus {at_risk:.2f} "
               f"resting would pass -{limits.daily_loss_limit_usd:.2f}")
    shares = 0.0
    if price is not None and price > 0.0:
        shares = math.floor(stake / price * 100.0 + 1e-9) / 100.0
        if shares < snapshot.min_order_shares or shares * price < 1.0 - 1e-9:
            reject("size", f"{shares:.2f} shares at {price:.2f} below the venue minimum")
    approved = not any(h.action == "reject" for h in hits)
    return RestingVerdict(
        approved=approved, side=side, price=price,
        shares=shares if approved else 0.0,
        stake_usd=round(shares * price, 6) if approved and price is not None else 0.0,
        rules_fired=tuple(hits), replacing=replacing)
