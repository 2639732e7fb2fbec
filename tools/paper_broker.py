"""The paper broker: simulated CLOB market buys against the snapshot's top of book.

It owns the fill rules of paper trading and its own ledger of orders and fills, which the
reconciliation tests compare with the journal.  It never touches the network.

Fill rules (the venue's market-order semantics, see docs/venue.md):

* BUY amount is dollars with 2 decimals: the stake is rounded DOWN to cents.
* Shares = stake / ask rounded DOWN to 2 decimals, all bought at the ask.
* The order's ``worst_price`` is a limit: an ask above it kills the order.
* FOK fills everything or nothing; FAK fills what the book offers and kills the rest.
* Fills smaller than the snapshot's ``min_order_shares`` are killed.
* Fee = shares * ``snapshot.fee_schedule.per_share(ask)`` (taker), notional = shares * ask.

Recorded data only knows the top-of-book level (best ask and its size), so a fill never walks
deeper levels: an order larger than ``ask_size`` is killed (FOK) or partly filled (FAK) even
though the real book may hold more behind it.  That errs towards fewer and smaller fills.

When ``ask_size`` is None the depth is unknown; rather than assume liquidity that may not
exist, both modes kill the order with reason "depth unknown".

Venue outcomes (no ask, price above limit, not enough depth, too small) are reports with
status "killed".  Malformed requests (non-finite or negative amounts, a limit outside 0..1, an
order id already used) are reports with status "error": the broker never raises for them.
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from core.records import ExecutionReport, Side
from core.snapshot import MarketSnapshot

FillMode = Literal["FOK", "FAK"]

_CENT = Decimal("0.01")
# Money is reported to USDC's 6 decimals so sums in the journal do not accumulate float noise.
_MONEY_DP = 6
# Prices come from float arithmetic (ask + slippage); a limit that is 0.52 - 1e-17 must still
# accept an ask of 0.52.  1e-9 is far below the finest venue tick (0.001).
_PRICE_EPS = 1e-9


def _dec(x: float) -> Decimal:
    # repr() is the shortest decimal that round-trips, so 0.29 becomes Decimal("0.29") and not
    # 0.2899999...; rounding DOWN then cannot lose a cent to binary noise.
    return Decimal(repr(x))


def _floor_2dp(x: Decimal) -> Decimal:
    return x.quantize(_CENT, rounding=ROUND_DOWN)


class PaperBroker:
    """Deterministic simulated broker; same inputs, same reports."""

    name = "paper"

    def __init__(self, fill_mode: FillMode = "FOK") -> None:
        if fill_mode not in ("FOK", "FAK"):
            raise ValueError(f"fill_mode must be 'FOK' or 'FAK', got {fill_mode!r}")
        self.fill_mode: FillMode = fill_mode
        # Every report this broker produced, by order id (the venue's order lookup).
        self._orders: dict[str, ExecutionReport] = {}
        # Filled orders in the order they filled: the paper venue's ledger.
        self._fills: list[ExecutionReport] = []

    @property
    def fills(self) -> list[ExecutionReport]:
        """A copy of the ledger: every filled order, oldest first."""
        return list(self._fills)

    def lookup(self, order_id: str) -> ExecutionReport | None:
        """The report of an order this broker has seen, as a venue order lookup would give."""
        return self._orders.get(order_id)

    def place_market_buy(
        self,
        *,
        order_id: str,
        snapshot: MarketSnapshot,
        side: Side,
        stake_usd: float,
        worst_price: float,
    ) -> ExecutionReport:
        if order_id in self._orders:
            # A second order with the same id would be a duplicate entry; the first report stands
            # and the ledger is untouched.
            return self._report(order_id, snapshot, side, stake_usd, worst_price,
                                status="error", reason="duplicate order id")
        report = self._execute(order_id, snapshot, side, stake_usd, worst_price)
        self._orders[order_id] = report
        if report.status == "filled":
            self._fills.append(report)
        return report

    def _execute(
        self,
        order_id: str,
        snapshot: MarketSnapshot,
        side: Side,
        stake_usd: float,
        worst_price: float,
    ) -> ExecutionReport:
        def killed(reason: str, stake: float = stake_usd) -> ExecutionReport:
            return self._report(order_id, snapshot, side, stake, worst_price,
                                status="killed", reason=reason)

        if not (math.isfinite(stake_usd) and stake_usd >= 0):
            return self._report(order_id, snapshot, side, stake_usd, worst_price,
                                status="error", reason="invalid stake")
        if not (math.isfinite(worst_price) and 0.0 < worst_price <= 1.0):
            return self._report(order_id, snapshot, side, stake_usd, worst_price,
                                status="error", reason="invalid worst price")

        stake = _floor_2dp(_dec(stake_usd))
        stake_f = float(stake)
        book = snapshot.book_for(side)
        ask = None if book is None else book.ask
        if book is None or ask is None or ask <= 0.0:
            return killed("no ask", stake_f)
        if ask > worst_price + _PRICE_EPS:
            return killed(f"ask {ask} above worst price {worst_price}", stake_f)
        if stake <= 0:
            return killed("stake below one cent", stake_f)

        ask_d = _dec(ask)
        wanted = _floor_2dp(stake / ask_d)
        min_shares = _dec(snapshot.min_order_shares)
        # The venue rejects an order whose size is below its minimum before looking at depth.
        if wanted < min_shares or wanted <= 0:
            return killed(f"order of {wanted} shares below minimum {min_shares}", stake_f)
        if book.ask_size is None:
            return killed("depth unknown", stake_f)
        depth = _floor_2dp(_dec(book.ask_size))

        if self.fill_mode == "FOK":
            if depth < wanted:
                return killed("FOK not fully filled", stake_f)
            shares = wanted
        else:
            shares = min(wanted, depth)
            if shares < min_shares or shares <= 0:
                return killed(f"fill of {shares} shares below minimum {min_shares}", stake_f)

        shares_f = float(shares)
        notional = round(float(shares * ask_d), _MONEY_DP)
        fee = round(shares_f * snapshot.fee_schedule.per_share(ask), _MONEY_DP)
        reason = None if shares == wanted else f"FAK partial fill {shares} of {wanted} shares"
        return ExecutionReport(
            status="filled",
            broker=self.name,
            order_id=order_id,
            market_id=snapshot.market_id,
            side=side,
            stake_usd=stake_f,
            worst_price=worst_price,
            shares=shares_f,
            avg_price=ask,
            notional_usd=notional,
            fee_usd=fee,
            reason=reason,
        )

    def _report(
        self,
        order_id: str,
        snapshot: MarketSnapshot,
        side: Side,
        stake_usd: float,
        worst_price: float,
        *,
        status: Literal["killed", "error"],
        reason: str,
    ) -> ExecutionReport:
        return ExecutionReport(
            status=status,
            broker=self.name,
            order_id=order_id,
            market_id=snapshot.market_id,
            side=side,
            stake_usd=stake_usd,
            worst_price=worst_price,
            reason=reason,
        )
