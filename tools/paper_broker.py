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
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from core.records import ExecutionReport, Side
from core.resting import ExitFill, FillRule, MakerFill, RestingOrder
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


# --- resting (maker) orders -------------------------------------------------------------------
#
# Paper fill rules for a resting buy at price p (the recorded book never contains our order):
#
# * post-only: an order with p > best ask - tick would cross, so it is rejected, never filled.
# * trade-through: when a later book shows the best ask strictly below p, a seller crossed our
#   level; we fill at p (our own limit) up to the displayed ask size there (all that is left
#   when the size is unknown).
# * at our price: each time the best ask arrives at p (it was above p on the previous book),
#   a fraction ``queue_fill_fraction`` of the displayed ask size is assumed to trade at p.  The
#   bid queue ahead of us at p (the displayed bid size at p when we joined it, infinite when we
#   sat below the best bid) is served first; only the rest reaches us.  A fill never repeats on
#   an unchanged touch, which errs towards fewer fills.
# * maker fills pay no fee and accrue a rebate of ``rebate_share`` of the taker fee the
#   counterparty paid on the same shares (venue.md: a share of taker fees returned to makers).
# * a GTD order whose ``expires_at`` has passed is cancelled with reason "expired".


@dataclass
class _Resting:
    order: RestingOrder
    queue_ahead: float
    ask_above: bool


class PaperRestingBook:
    """The paper venue's resting orders: placed, matched against recorded books, cancelled."""

    name = "paper"

    def __init__(self, *, queue_fill_fraction: float = 0.2, rebate_share: float = 0.2) -> None:
        if not 0.0 <= queue_fill_fraction <= 1.0:
            raise ValueError(f"queue_fill_fraction {queue_fill_fraction} outside 0..1")
        self.queue_fill_fraction = queue_fill_fraction
        self.rebate_share = rebate_share
        self._orders: dict[str, _Resting] = {}
        # Exit sales, oldest first: the paper venue's ledger of sells.
        self.exits: list[ExitFill] = []

    def place_limit_buy(self, *, order_id: str, snapshot: MarketSnapshot, side: Side,
                        price: float, shares: float, post_only: bool,
                        expires_at: float | None, now: float) -> RestingOrder:
        def rejected(reason: str) -> RestingOrder:
            return RestingOrder(order_id=order_id, market_id=snapshot.market_id, side=side,
                                price=min(max(price, 0.001), 0.999) if math.isfinite(price)
                                else 0.5, shares=max(shares, 0.01) if math.isfinite(shares)
                                else 0.01, post_only=post_only, expires_at=expires_at,
                                status="rejected", created_ts=now, reason=reason)

        if order_id in self._orders:
            return self._orders[order_id].order  # the first order stands: never a second one
        if not (math.isfinite(price) and 0.0 < price < 1.0):
            return rejected("invalid price")
        if not (math.isfinite(shares) and shares >= snapshot.min_order_shares and shares > 0):
            return rejected(f"size {shares} below minimum {snapshot.min_order_shares}")
        book = snapshot.book_for(side)
        ask = None if book is None else book.ask
        if post_only and (ask is None or price > ask - snapshot.tick_size + _PRICE_EPS):
            return rejected(f"post-only order at {price} would cross ask {ask}")
        bid = None if book is None else book.bid
        if bid is None or price > bid + _PRICE_EPS:
            queue = 0.0  # a new best level: nobody ahead of us
        elif abs(price - bid) <= _PRICE_EPS:
            queue = book.bid_size if book is not None and book.bid_size is not None else math.inf
        else:
            queue = math.inf  # behind the whole best level and levels we cannot see
        order = RestingOrder(order_id=order_id, market_id=snapshot.market_id, side=side,
                             price=price, shares=round(shares, 2), post_only=post_only,
                             expires_at=expires_at, status="resting", created_ts=now)
        self._orders[order_id] = _Resting(order, queue, ask_above=True)
        return order

    def match(self, snapshot: MarketSnapshot, now: float) -> list[RestingOrder]:
        """Apply one recorded book to the open orders of its window; the orders that filled
        (partly or fully) on it."""
        touched: list[RestingOrder] = []
        for state in self._orders.values():
            order = state.order
            if not order.is_open or order.market_id != snapshot.market_id:
                continue
            if order.expires_at is not None and now >= order.expires_at:
                state.order = order.model_copy(update={"status": "cancelled",
                                                       "reason": "expired"})
                continue
            book = snapshot.book_for(order.side)
            if book is None or book.ask is None:
                continue
            fill = 0.0
            rule: FillRule = "trade_through"
            if book.ask < order.price - _PRICE_EPS:
                fill = order.open_shares if book.ask_size is None else min(
                    order.open_shares, book.ask_size)
            elif abs(book.ask - order.price) <= _PRICE_EPS and state.ask_above:
                rule = "at_price"
                traded = self.queue_fill_fraction * (book.ask_size or 0.0)
                reach = traded - state.queue_ahead
                state.queue_ahead = max(0.0, state.queue_ahead - traded)
                fill = min(order.open_shares, max(0.0, reach))
            if (book.bid is not None and abs(book.bid - order.price) <= _PRICE_EPS
                    and math.isinf(state.queue_ahead) and book.bid_size is not None):
                # The best bid came down to our level: we are behind what it shows.
                state.queue_ahead = book.bid_size
            state.ask_above = book.ask > order.price + _PRICE_EPS
            shares = math.floor(fill * 100.0 + 1e-9) / 100.0
            if shares <= 0.0:
                continue
            rebate = round(shares * snapshot.fee_schedule.per_share(order.price)
                           * self.rebate_share, _MONEY_DP)
            fills = (*order.fills, MakerFill(ts=now, shares=shares, price=order.price,
                                             rebate_usd=rebate, rule=rule))
            done = sum(f.shares for f in fills) >= order.shares - 1e-9
            state.order = order.model_copy(update={
                "fills": fills, "status": "filled" if done else "resting"})
            touched.append(state.order)
        return touched

    def cancel(self, order_id: str, *, now: float) -> RestingOrder | None:
        state = self._orders.get(order_id)
        if state is None:
            return None
        if state.order.is_open:
            state.order = state.order.model_copy(update={"status": "cancelled",
                                                         "reason": "cancelled"})
        return state.order

    def cancel_all(self, market_id: str, *, now: float) -> list[RestingOrder]:
        return [o for oid, s in list(self._orders.items())
                if s.order.market_id == market_id and s.order.is_open
                and (o := self.cancel(oid, now=now)) is not None]

    def lookup_resting(self, order_id: str) -> RestingOrder | None:
        state = self._orders.get(order_id)
        return None if state is None else state.order

    def open_orders(self) -> list[RestingOrder]:
        return [s.order for s in self._orders.values() if s.order.is_open]

    def orders(self) -> list[RestingOrder]:
        """Every resting order this venue has seen, in placement order (its ledger)."""
        return [s.order for s in self._orders.values()]

    def place_market_sell(self, *, order_id: str, snapshot: MarketSnapshot, side: Side,
                          shares: float, worst_price: float, now: float) -> ExitFill:
        """Sell at the recorded best bid, at most its displayed size, paying the taker fee."""
        book = snapshot.book_for(side)
        bid = None if book is None else book.bid

        def killed(reason: str) -> ExitFill:
            return ExitFill(order_id=order_id, market_id=snapshot.market_id, side=side,
                            status="killed", ts=now, reason=reason)

        if book is None or bid is None or bid <= 0.0:
            return killed("no bid")
        if bid < worst_price - _PRICE_EPS:
            return killed(f"bid {bid} below worst price {worst_price}")
        size = shares if book.bid_size is None else min(shares, book.bid_size)
        size = math.floor(size * 100.0 + 1e-9) / 100.0
        if size <= 0.0 or size < min(shares, snapshot.min_order_shares) - 1e-9:
            return killed(f"bid size {book.bid_size} too small")
        fill = ExitFill(order_id=order_id, market_id=snapshot.market_id, side=side,
                        status="filled", shares=size, price=bid, ts=now,
                        fee_usd=round(size * snapshot.fee_schedule.per_share(bid), _MONEY_DP))
        self.exits.append(fill)
        return fill
