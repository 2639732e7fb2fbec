"""The Broker protocol: one call, one order, never retried by the caller."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from core.records import ExecutionReport, Side
from core.snapshot import MarketSnapshot


@runtime_checkable
class Broker(Protocol):
    name: str

    def place_market_buy(
        self,
        *,
        order_id: str,
        snapshot: MarketSnapshot,
        side: Side,
        stake_usd: float,
        worst_price: float,
    ) -> ExecutionReport:
        """Buy ``side`` for ``stake_usd`` dollars at prices no worse than ``worst_price``.

        Must not raise for venue outcomes (not filled, rejected): those are reports.  An
        exception means the outcome is unknown and must be reconciled, never re-sent.
        """
        ...
