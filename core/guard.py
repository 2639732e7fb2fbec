"""The guard: deterministic money-safety rules between the trader and execution.

Pure Python on purpose (no LangChain/LangGraph imports): ``evaluate`` takes the proposal, the
snapshot, the fair value from deterministic code, configured limits, a ledger view and the time,
and returns a ``Verdict`` listing every rule that fired.  It can only shrink or reject an order,
never enlarge it, and its limits come from configuration, never from a model or graph state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from core.records import FairValueEstimate, LedgerView, RuleHit, TradeProposal, Verdict
from core.snapshot import MarketSnapshot

if TYPE_CHECKING:
    from core.settings import Settings

# The venue's price grid ends here: a worst price can never be 1.00.
MAX_WORST_PRICE = 0.99
# Dollar minimum for a marketable order on the CLOB (besides the share minimum).
MIN_ORDER_USD = 1.0

RULES = (
    "mode", "kill_switch", "confidence", "economics", "reference", "freshness", "timing",
    "window", "daily_orders", "daily_loss", "cooldown", "size", "worst_price",
)
# A manual order (``updown order``) is the operator's own forecast: the rules that judge the
# agent's forecast may be waived for it, and only these.  Every money-safety rule (mode, kill
# switch, freshness of the book, timing, window, daily orders and loss, cooldown, size, worst
# price) always applies.
MANUAL_WAIVABLE = frozenset({"confidence", "economics", "reference"})


@dataclass(frozen=True, slots=True)
class GuardLimits:
    """Every limit the guard enforces.  Built from settings; a model can never touch it."""

    mode: Literal["paper", "live"] = "paper"
    live_confirmed: bool = False
    min_confidence: int = 70
    max_position_usd: float = 100.0
    min_edge: float = 0.02
    max_slippage: float = 0.02
    max_price_age_s: float = 2.0
    max_book_age_s: float = 5.0
    max_clock_skew_s: float = 1.0
    max_reference_gap_pct: float = 0.5
    no_entry_first_s: float = 30.0
    no_entry_last_s: float = 60.0
    max_orders_per_day: int = 24
    daily_loss_limit_usd: float = 250.0
    max_consecutive_losses: int = 4
    loss_cooldown_s: float = 3600.0
    require_verified_price_to_beat: bool = True

    @classmethod
    def from_settings(
        cls, settings: Settings, *, mode: Literal["paper", "live"] | None = None,
        live_confirmed: bool = False,
    ) -> GuardLimits:
        """The limits of a run from its settings; ``mode`` is the run's resolved trading mode
        (``agent.live.resolve_mode``), which may be stricter than ``POLYMARKET_MODE``."""
        return cls(
            mode=mode or settings.polymarket_mode,
            live_confirmed=live_confirmed,
            min_confidence=settings.min_confidence_threshold,
            max_position_usd=settings.max_position_size,
            min_edge=settings.min_edge,
            max_slippage=settings.max_slippage,
            max_price_age_s=settings.max_price_age_s,
            max_book_age_s=settings.max_book_age_s,
            max_reference_gap_pct=settings.max_reference_gap_pct,
            no_entry_first_s=settings.no_entry_first_s,
            no_entry_last_s=settings.no_entry_last_s,
            max_orders_per_day=settings.max_orders_per_day,
            daily_loss_limit_usd=settings.daily_loss_limit,
            max_consecutive_losses=settings.max_consecutive_losses,
            loss_cooldown_s=settings.loss_cooldown_s,
            require_verified_price_to_beat=settings.require_verified_price_to_beat,
        )

    @classmethod
    def for_replay(cls, settings: Settings) -> GuardLimits:
        """Paper limits for a recorded replay (``updown run --replay``, evals, benches).

        Recordings carry no venue-verified price to beat (it is derived from the recorded
        price path), so exactly one rule is relaxed, and only in paper mode: a live run always
        requires a verified price to beat (see ``evaluate``)."""
        return replace(cls.from_settings(settings, mode="paper"),
                       require_verified_price_to_beat=False)


# Said wherever a replay relaxes the verified-price rule (CLI banner, logs, eval JSON).
REPLAY_RELAXATION = ("price to beat derived from the recorded price path (unverified): the "
                     "verified-reference rule is relaxed for this paper replay only")


def _floor_to_tick(price: float, tick: float) -> float:
    # Round down so the limit never exceeds what the rule allowed; the epsilon absorbs
    # binary-float noise such as 0.52 / 0.01 = 51.99999.
    return round(math.floor(price / tick + 1e-9) * tick, 6)


def evaluate(
    proposal: TradeProposal | None,
    snapshot: MarketSnapshot,
    fair: FairValueEstimate | None,
    limits: GuardLimits,
    ledger: LedgerView,
    now: float,
    *,
    kill_switch_engaged: bool,
    waived: frozenset[str] = frozenset(),
) -> Verdict:
    """Check a proposal against every rule; approve it (possibly smaller) or reject it.

    ``waived`` (manual orders only) drops rejections by rules in ``MANUAL_WAIVABLE``; asking
    to waive any other rule is a programming error.
    """
    if not waived <= MANUAL_WAIVABLE:
        raise ValueError(f"rules {sorted(waived - MANUAL_WAIVABLE)} can never be waived")
    if proposal is None:
        # The trader chose to hold: nothing to guard, nothing fires.
        return Verdict(approved=False)

    hits: list[RuleHit] = []

    def reject(rule: str, detail: str) -> None:
        hits.append(RuleHit(rule=rule, action="reject", detail=detail))

    side = proposal.side
    book = snapshot.book_for(side)
    ask = book.ask if book is not None else None

    # mode: live trading needs the explicit confirmation as well as the live setting.
    if limits.mode == "live" and not limits.live_confirmed:
        reject("mode", "live mode requested without confirmation")

    if kill_switch_engaged:
        reject("kill_switch", "STOP file present")

    if proposal.confidence < limits.min_confidence:
        reject("confidence", f"confidence {proposal.confidence} < {limits.min_confidence}")

    # economics: recomputed here from the snapshot's ask and the deterministic fair value,
    # not taken from the proposal.
    if fair is None:
        reject("economics", "no fair value")
    elif ask is None or ask <= 0.0:
        reject("economics", f"no ask for {side}")
    else:
        fee = snapshot.fee_schedule.per_share(ask)
        edge = fair.fair_for(side) - (ask + fee)
        if edge < limits.min_edge - 1e-12:
            reject("economics", f"edge after fees {edge:.4f} < min_edge {limits.min_edge:.4f}")

    # reference: the price to beat must be known (and verified when required or live).
    if snapshot.price_to_beat is None:
        reject("reference", "price to beat unknown")
    elif not snapshot.price_to_beat_verified and (
        limits.require_verified_price_to_beat or limits.mode == "live"
    ):
        reject("reference", "price to beat not verified")
    if snapshot.reference_price is not None:
        gap_pct = abs(snapshot.price / snapshot.reference_price - 1.0) * 100.0
        if gap_pct > limits.max_reference_gap_pct:
            reject("reference", f"price vs reference gap {gap_pct:.3f}% > "
                   f"{limits.max_reference_gap_pct}%")

    # freshness: ages are judged against the guard's clock, allowing the source's own cadence.
    price_age = now - snapshot.price_ts
    if price_age > limits.max_price_age_s + snapshot.price_interval_s:
        reject("freshness", f"price age {price_age:.1f}s > "
               f"{limits.max_price_age_s + snapshot.price_interval_s:.1f}s")
    if snapshot.book_ts is None:
        reject("freshness", "no book")
    elif now - snapshot.book_ts > limits.max_book_age_s:
        reject("freshness", f"book age {now - snapshot.book_ts:.1f}s > {limits.max_book_age_s}s")
    # A snapshot stamped ahead of the guard's clock means the clocks disagree: trust neither.
    if snapshot.as_of - now > limits.max_clock_skew_s:
        reject("freshness", f"snapshot is {snapshot.as_of - now:.1f}s ahead of the clock")

    # timing: no entry during book warm-up or in the last seconds of the window.
    since_open = now - snapshot.window_start
    to_close = snapshot.window_end - now
    if since_open < limits.no_entry_first_s:
        reject("timing", f"{since_open:.0f}s since open < {limits.no_entry_first_s:.0f}s")
    if to_close < limits.no_entry_last_s:
        reject("timing", f"{to_close:.0f}s to close < {limits.no_entry_last_s:.0f}s")

    if snapshot.market_id in ledger.entered_market_ids:
        reject("window", f"already entered {snapshot.market_id}")
    if ledger.orders_today >= limits.max_orders_per_day:
        reject("daily_orders", f"{ledger.orders_today} orders today >= "
               f"{limits.max_orders_per_day}")
    if ledger.realized_pnl_today <= -limits.daily_loss_limit_usd:
        reject("daily_loss", f"realised P&L today {ledger.realized_pnl_today:.2f} <= "
               f"-{limits.daily_loss_limit_usd:.2f} (manual reset only)")
    if (
        ledger.consecutive_losses >= limits.max_consecutive_losses
        and ledger.last_loss_ts is not None
        and now - ledger.last_loss_ts < limits.loss_cooldown_s
    ):
        reject("cooldown", f"{ledger.consecutive_losses} losses in a row; cooling down until "
               f"{ledger.last_loss_ts + limits.loss_cooldown_s:.0f}")

    # worst price: an explicit limit no further than max_slippage above the ask.
    worst_price: float | None = None
    if ask is not None:
        cap = min(ask + limits.max_slippage, MAX_WORST_PRICE)
        worst_price = _floor_to_tick(min(proposal.worst_price, cap), snapshot.tick_size)
        if worst_price < ask:
            reject("worst_price", f"worst price {worst_price:.3f} below ask {ask:.3f}")

    # size: shrink to the cap and to visible depth, then require the venue minimum.
    stake = proposal.stake_usd
    if stake > limits.max_position_usd:
        hits.append(RuleHit(rule="size", action="shrink",
                            detail=f"stake {stake:.2f} > cap {limits.max_position_usd:.2f}"))
        stake = limits.max_position_usd
    if ask is not None and ask > 0:
        if book is not None and book.ask_size is not None:
            depth_usd = book.ask_size * ask
            if stake > depth_usd:
                hits.append(RuleHit(rule="size", action="shrink",
                                    detail=f"stake {stake:.2f} > visible depth {depth_usd:.2f}"))
                stake = depth_usd
        stake = math.floor(stake * 100.0 + 1e-9) / 100.0
        min_usd = max(MIN_ORDER_USD, snapshot.min_order_shares * ask)
        if stake < min_usd:
            reject("size", f"stake {stake:.2f} below venue minimum {min_usd:.2f}")

    if waived:
        hits = [h for h in hits if not (h.action == "reject" and h.rule in waived)]
    approved = not any(h.action == "reject" for h in hits)
    # The ledger as judged, bounded: of the entered windows only this one matters to a rule,
    # and a live account's list grows every window.
    judged = ledger.model_copy(update={
        "entered_market_ids": ledger.entered_market_ids & {snapshot.market_id}})
    return Verdict(
        approved=approved,
        side=side,
        stake_usd=stake if approved else 0.0,
        worst_price=worst_price,
        rules_fired=tuple(hits),
        ledger=judged,
        kill_switch_engaged=kill_switch_engaged,
        judged_at=now,
    )
