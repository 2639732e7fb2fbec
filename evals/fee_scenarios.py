"""The same trades under other taker fee rates: 0, the dataset's own, and today's 0.07.

A fill of ``shares`` at price ``p`` pays ``rate * p * (1 - p)`` per share (``core.fees``, the
linear schedule the interchange format's ``fee_rate`` uses), so a trade's P&L under another
rate is its recorded P&L plus the fee it paid minus the fee it would have paid.  The trades
themselves are held fixed: with higher fees some edges after fees would have been too small
to trade at all, so these are what-ifs on the agent's actual entries, not new replays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.fees import DEFAULT_FEE_RATE, FEES_QUADRATIC_FROM, FeeSchedule, fee_per_share


@dataclass(frozen=True, slots=True)
class FeeTrade:
    """What a fee what-if needs of one filled entry (P&L None while unsettled)."""

    avg_price: float
    shares: float
    fee_usd: float
    pnl_usd: float | None


def fee_at(trade: FeeTrade, rate: float) -> float:
    return trade.shares * fee_per_share(trade.avg_price, rate)


def scenario(label: str, rate: float | None, trades: Sequence[FeeTrade]) -> dict[str, Any]:
    """Fees and settled P&L of ``trades`` at ``rate`` (None: the fees actually charged)."""
    fees = [t.fee_usd if rate is None else fee_at(t, rate) for t in trades]
    pnl = sum((t.pnl_usd + t.fee_usd - f) for t, f in zip(trades, fees, strict=True)
              if t.pnl_usd is not None)
    return {"label": label, "fee_rate": rate, "fees_usd": round(sum(fees), 6),
            "pnl_usd": round(pnl, 6)}


def dataset_fee_label(schedules: Sequence[FeeSchedule]) -> str:
    """How the replay charged fees, e.g. ``0`` or ``0.25 (p(1-p))^2``, mixed rates listed."""
    forms = sorted({(s.rate, s.exponent) for s in schedules})
    return ", ".join(f"{r:g}" if e == 1.0 or r == 0.0 else f"{r:g} (p(1-p))^{e:g}"
                     for r, e in forms) or "none"


def fee_scenarios(trades: Sequence[FeeTrade], schedules: Sequence[FeeSchedule]
                  ) -> list[dict[str, Any]]:
    """No fee, the dataset's fees (as charged in the replay), and today's default rate."""
    return [scenario("no fee", 0.0, trades),
            scenario(f"dataset ({dataset_fee_label(schedules)})", None, trades),
            scenario(f"today ({DEFAULT_FEE_RATE:g})", DEFAULT_FEE_RATE, trades)]


def fee_explanation(schedules: Sequence[FeeSchedule], start_ts: Sequence[float],
                    stated: Sequence[float | None]) -> str:
    """One sentence on where the dataset's fee comes from, and why it is 0 when it is."""
    if not schedules:
        return "No window was replayed, so no fee was charged."
    zero = all(s.rate == 0.0 for s in schedules)
    source = ("the markets.csv fee_rate column" if all(x is not None for x in stated)
              else "the dated fee table where markets.csv leaves fee_rate empty")
    if not zero:
        return (f"Fees charged in the replay: {dataset_fee_label(schedules)} per share x "
                f"p(1-p), from {source}.")
    if max(start_ts) < FEES_QUADRATIC_FROM:
        return ("The dataset's fee is 0 (from " + source + "): these windows predate "
                "Polymarket's taker fees on crypto up/down markets (charged from 2026-01-05), "
                "so the paper fills paid no fee.  The 0.07 row shows the same trades at "
                "today's rate.")
    return (f"The dataset's fee is 0 (from {source}) although fees were charged at the time: "
            "the P&L at today's 0.07 is the fairer estimate.")
