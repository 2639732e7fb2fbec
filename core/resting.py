"""Records of resting (maker) orders: the order, its fills, and what the guard counts.

Kept beside ``core.records`` (the taker records) with the same trading-domain names; every
field lands unchanged in the journal (``tools.journal.resting``) and the eval.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.records import RuleHit, Side

RestingStatus = Literal["resting", "filled", "cancelled", "rejected"]
FillRule = Literal["trade_through", "at_price", "venue"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class MakerFill(_Record):
    """One fill of a resting buy, at its own limit price (makers pay no fee)."""

    ts: float
    shares: float = Field(gt=0.0)
    price: float = Field(gt=0.0, le=1.0)
    # Rebate accrued on this fill (share of the taker fee the counterparty paid).
    rebate_usd: float = Field(default=0.0, ge=0.0)
    rule: FillRule


class RestingOrder(_Record):
    """A post-only limit buy as the venue (or the paper venue) reports it, fills so far."""

    order_id: str
    market_id: str
    side: Side
    price: float = Field(gt=0.0, lt=1.0)
    shares: float = Field(gt=0.0)
    post_only: bool = True
    # The venue's expiry (GTD); the runner cancels earlier, at the window's cut-off.
    expires_at: float | None = None
    status: RestingStatus
    created_ts: float
    fills: tuple[MakerFill, ...] = ()
    reason: str | None = None

    @property
    def filled_shares(self) -> float:
        return round(sum(f.shares for f in self.fills), 6)

    @property
    def open_shares(self) -> float:
        """Shares still resting (0 once filled, cancelled or rejected)."""
        return max(0.0, round(self.shares - self.filled_shares, 6)) if self.is_open else 0.0

    @property
    def is_open(self) -> bool:
        return self.status == "resting"

    @property
    def resting_usd(self) -> float:
        """Dollars the order could still spend: what exposure limits count."""
        return round(self.open_shares * self.price, 6)

    @property
    def filled_usd(self) -> float:
        return round(sum(f.shares * f.price for f in self.fills), 6)

    @property
    def rebate_usd(self) -> float:
        return round(sum(f.rebate_usd for f in self.fills), 6)


class RestingExposure(_Record):
    """What the resting-order guard counts beside the journal's ledger view."""

    # Dollars still resting in this window, per side.
    resting_usd_up: float = Field(default=0.0, ge=0.0)
    resting_usd_down: float = Field(default=0.0, ge=0.0)
    # Dollars already filled (bought) in this window, both sides.
    filled_usd: float = Field(default=0.0, ge=0.0)
    # Open resting orders in this window, per side.
    open_up: int = Field(default=0, ge=0)
    open_down: int = Field(default=0, ge=0)
    # Windows with maker orders not yet in the journal's orders count (they count as orders).
    pending_windows: int = Field(default=0, ge=0)
    # Resting dollars over every window (daily loss counts them as at risk).
    resting_usd_total: float = Field(default=0.0, ge=0.0)
    # Replaces in this window and the time of the last one.
    replaces: int = Field(default=0, ge=0)
    last_replace_ts: float | None = None

    def open_for(self, side: Side) -> int:
        return self.open_up if side == "up" else self.open_down

    @property
    def window_usd(self) -> float:
        return self.resting_usd_up + self.resting_usd_down + self.filled_usd


class RestingVerdict(_Record):
    """The resting-order guard's answer: approved or not, price and (possibly shrunk) size."""

    approved: bool
    side: Side | None = None
    price: float | None = None
    shares: float = Field(default=0.0, ge=0.0)
    stake_usd: float = Field(default=0.0, ge=0.0)
    rules_fired: tuple[RuleHit, ...] = ()
    replacing: bool = False


class ExitFill(_Record):
    """A sale of held shares before expiry (exits): at the bid, paying the taker fee."""

    order_id: str
    market_id: str
    side: Side
    status: Literal["filled", "killed"]
    shares: float = Field(default=0.0, ge=0.0)
    price: float | None = None
    fee_usd: float = Field(default=0.0, ge=0.0)
    ts: float
    reason: str | None = None

    @property
    def proceeds_usd(self) -> float:
        """What the sale brought in, net of the fee."""
        return round(self.shares * (self.price or 0.0) - self.fee_usd, 6)
