"""Settlement of live positions from the venue's own resolution, recorded with P&L.

A window is settled when the venue says so, never from our own price feed:

* Gamma: the market is ``closed`` and its ``outcomePrices`` are exactly 1 and 0
  (``MarketInfo.resolved_outcome``); a closed market with any other prices is not settled;
* or a CLOB market-channel ``market_resolved`` event naming the winning token
  (``outcome_from_market_resolved``), which the live feed can hand over as soon as it arrives.

Both are the venue's verdict, so settlements are recorded with ``outcome_verified=True``;
the journal computes P&L per position (payout - notional - fee) and is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from core.logs import get_logger
from core.records import Side
from tools.journal import Journal, SettledPosition
from tools.polymarket.http import VenueUnavailable
from tools.polymarket.wire import MarketInfo, VenueFormatError

log = get_logger("updown.settlement")


def outcome_from_market_resolved(event: Mapping[str, Any], market: MarketInfo) -> Side | None:
    """The winning side of a ``market_resolved`` event for ``market`` (None if not ours)."""
    if event.get("event_type") != "market_resolved":
        return None
    if str(event.get("market", "")).lower() != market.condition_id.lower():
        return None
    winner = event.get("winning_asset_id")
    if winner is not None:
        return market.side_of_token(str(winner))
    label = str(event.get("winning_outcome", "")).strip().lower()
    return label if label in ("up", "down") else None  # type: ignore[return-value]


def settle_resolved(
    journal: Journal,
    market_of: Callable[[str], MarketInfo],
    *,
    account: str,
    now: float,
) -> list[SettledPosition]:
    """Settle every unsettled market of ``account`` that the venue has resolved."""
    settled: list[SettledPosition] = []
    for market_id in journal.unsettled_markets(account=account):
        try:
            market = market_of(market_id)
        except (VenueUnavailable, VenueFormatError) as err:
            log.warning("settlement_lookup_failed", market_id=market_id, error=str(err))
            continue
        outcome = market.resolved_outcome
        if outcome is None:
            continue  # not resolved yet (or not cleanly): try again later
        settled.extend(settle(journal, account=account, market_id=market_id, market=market,
                              outcome=outcome, now=now))
    return settled


def settle(journal: Journal, *, account: str, market_id: str, market: MarketInfo,
           outcome: Side, now: float) -> list[SettledPosition]:
    """Record the venue's outcome for one market (idempotent)."""
    # Stamp at the window's end when known: the day a loss belongs to is the day it happened.
    ts = min(now, market.window_end) if market.window_end is not None else now
    positions = journal.record_settlement(account=account, market_id=market_id,
                                          outcome=outcome, outcome_verified=True,
                                          settled_ts=ts)
    log.info("settlement", market_id=market_id, outcome=outcome, positions=len(positions),
             pnl_usd=round(sum(p.pnl_usd for p in positions), 6))
    return positions
