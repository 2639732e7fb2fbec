"""The broker protocols: one call, one order, never retried by the caller.

``Broker`` buys at market (taker); ``RestingBroker`` rests, cancels and looks up maker orders;
``ExitBroker`` sells held shares before expiry."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from core.records import ExecutionReport, Side
from core.resting import ExitFill, RestingOrder
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


@runtime_checkable
class RestingBroker(Protocol):
    """Resting (maker) orders: post-only limit buys that stay on the book until filled,
    cancelled or expired.  A live broker implements it on the CLOB (post-only GTD orders,
    cancels, order heartbeats); the paper broker matches them against the recorded book.

    Like ``place_market_buy``, venue outcomes are records, never exceptions; an exception means
    the outcome is unknown: look the order up before sending anything again.
    """

    name: str

    def place_limit_buy(
        self,
        *,
        order_id: str,
        snapshot: MarketSnapshot,
        side: Side,
        price: float,
        shares: float,
        post_only: bool,
        expires_at: float | None,
        now: float,
    ) -> RestingOrder:
        """Rest a buy of ``shares`` at ``price``; a post-only order that would cross is
        rejected by the venue (status "rejected"), never filled as a taker."""
        ...

    def cancel(self, order_id: str, *, now: float) -> RestingOrder | None:
        """Cancel what is left; the answer holds every fill that happened before the cancel
        (a fill may race the cancel).  None for an order the venue does not know."""
        ...

    def cancel_all(self, market_id: str, *, now: float) -> list[RestingOrder]:
        """Cancel every open order of a market window; the final states, fills included."""
        ...

    def lookup_resting(self, order_id: str) -> RestingOrder | None:
        """The order as the venue has it now, with its fills so far."""
        ...

    def open_orders(self) -> list[RestingOrder]:
        """Every order still resting (to verify cancels at shutdown and after restarts)."""
        ...


@runtime_checkable
class ExitBroker(Protocol):
    """Selling held shares before expiry at the best bid (exits)."""

    name: str

    def place_market_sell(
        self, *, order_id: str, snapshot: MarketSnapshot, side: Side, shares: float,
        worst_price: float, now: float,
    ) -> ExitFill:
        ...
