"""Polymarket taker fees on crypto up/down markets (makers pay none).

The venue publishes ``feeSchedule {rate, exponent}``: ``fee = shares * rate * (p(1-p))**exponent``.
Since about 2026-05 crypto markets charge rate 0.07, exponent 1 (3.5% of notional at p=0.5);
0.072 from 2026-03-30; ``0.25 * (p(1-p))**2`` from 2026-01-05; nothing before.  Replays of old
windows use the dated table; live markets use the schedule Gamma returns.
"""

from __future__ import annotations

from dataclasses import dataclass

# Effective dates (UTC epoch seconds).  Kept in one place: never hard-code a constant twice.
FEES_QUADRATIC_FROM = 1767571200.0  # 2026-01-05
FEES_LINEAR_072_FROM = 1774828800.0  # 2026-03-30
FEES_LINEAR_07_FROM = 1777593600.0  # 2026-05-01
DEFAULT_FEE_RATE = 0.07


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    rate: float = DEFAULT_FEE_RATE
    exponent: float = 1.0

    def per_share(self, price: float) -> float:
        """Taker fee in USDC for one share bought at ``price``."""
        if not 0.0 <= price <= 1.0:
            raise ValueError(f"price {price} outside 0..1")
        variance = price * (1.0 - price)
        # Exponent 1 is the current schedule: skip pow() on the hot path.
        return self.rate * (variance if self.exponent == 1.0 else float(variance**self.exponent))

    def all_in_cost(self, price: float) -> float:
        """What one share really costs a taker: price plus fee (the break-even probability)."""
        return price + self.per_share(price)


def fee_per_share(price: float, rate: float) -> float:
    """Linear schedule (exponent 1), the form the recorded-markets ``fee_rate`` column uses."""
    return FeeSchedule(rate, 1.0).per_share(price)


def dated_fee_schedule(ts: float) -> FeeSchedule:
    """The schedule in force at ``ts``, for replaying history that does not state its fee."""
    if ts < FEES_QUADRATIC_FROM:
        return FeeSchedule(0.0, 1.0)
    if ts < FEES_LINEAR_072_FROM:
        return FeeSchedule(0.25, 2.0)
    if ts < FEES_LINEAR_07_FROM:
        return FeeSchedule(0.072, 1.0)
    return FeeSchedule(DEFAULT_FEE_RATE, 1.0)
