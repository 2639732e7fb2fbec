"""The market snapshot: everything the graph may know at decision time ``as_of``.

Feeds (live websockets or the recorded-market replay) build snapshots; the graph only reads
them. A snapshot is immutable and holds nothing observed after ``as_of``.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.fees import FeeSchedule

# How a window's close is fixed: a single reference price at the end ("point", every window
# before 2026-08-07 and every 2025 recording) or the mean of the reference over the last
# ``settlement_window_s`` seconds ("twap", Polymarket's crypto up/down since 2026-08-07).
Settlement = Literal["point", "twap"]


class BookTop(BaseModel):
    """Best bid/ask of one outcome token (prices are probabilities, sizes are shares)."""

    model_config = ConfigDict(frozen=True)

    bid: float | None = Field(default=None, ge=0.0, le=1.0)
    ask: float | None = Field(default=None, ge=0.0, le=1.0)
    bid_size: float | None = Field(default=None, ge=0.0)
    ask_size: float | None = Field(default=None, ge=0.0)

    @property
    def mid(self) -> float | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2.0


class Candles(BaseModel):
    """Columnar OHLCV candles, oldest first; ``close_ts`` is each candle's close time."""

    model_config = ConfigDict(frozen=True)

    interval_s: float = Field(gt=0)
    close_ts: tuple[float, ...] = ()
    open: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    low: tuple[float, ...] = ()
    close: tuple[float, ...] = ()
    # None when the price source carries no volume (e.g. Coinbase 1-minute closes).
    volume: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _aligned(self) -> Candles:
        n = len(self.close_ts)
        cols = [self.open, self.high, self.low, self.close]
        if self.volume is not None:
            cols.append(self.volume)
        if any(len(c) != n for c in cols):
            raise ValueError("candle columns have different lengths")
        return self

    def __len__(self) -> int:
        return len(self.close_ts)


class MarketSnapshot(BaseModel):
    """One market window as seen at ``as_of`` (UTC epoch seconds)."""

    model_config = ConfigDict(frozen=True)

    market_id: str = Field(min_length=1)
    asset: str = "BTC"
    as_of: float
    window_start: float
    window_end: float
    # Reference price at window start; Up wins when the closing reference is >= it.
    price_to_beat: float | None = Field(default=None, gt=0)
    # True only when taken from the venue's own reference (crypto-price endpoint / TWAP stream).
    price_to_beat_verified: bool = False
    price: float = Field(gt=0)
    price_ts: float
    price_source: str = "unknown"
    # Native cadence of the price source: 0 for trade ticks, 60 for 1-minute closes.  Staleness
    # is judged as age beyond this cadence, so coarse recordings are not all "stale".
    price_interval_s: float = Field(default=0.0, ge=0)
    # Settlement reference (Chainlink) when the feed has it.
    reference_price: float | None = Field(default=None, gt=0)
    reference_ts: float | None = None
    candles: Candles
    up: BookTop | None = None
    down: BookTop | None = None
    book_ts: float | None = None
    # Taker fee schedule in force for this window: fee = shares * rate * (p(1-p))**exponent.
    fee_rate: float = Field(default=0.07, ge=0, le=1)
    fee_exponent: float = Field(default=1.0, gt=0)
    tick_size: float = Field(default=0.01, gt=0)
    min_order_shares: float = Field(default=5.0, ge=0)
    # How the close is fixed (see ``Settlement``); point unless the market says TWAP.
    settlement: Settlement = "point"
    # Length of the closing average (TWAP lookback), seconds; read only when settlement is twap.
    settlement_window_s: float = Field(default=60.0, gt=0)
    # Time-weighted mean of the settlement reference from the averaging window's start
    # (window_end - settlement_window_s) up to as_of: the part of the close already fixed.
    # Only inside the final settlement_window_s of a twap window; None when not known.
    settlement_partial_mean: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> MarketSnapshot:
        if not self.window_start < self.window_end:
            raise ValueError("window_start must be before window_end")
        if self.price_ts > self.as_of or (self.book_ts is not None and self.book_ts > self.as_of):
            raise ValueError("snapshot holds an observation from after as_of")
        if self.candles.close_ts and self.candles.close_ts[-1] > self.as_of:
            raise ValueError("snapshot holds a candle that closes after as_of")
        if not math.isfinite(self.price):
            raise ValueError("price is not finite")
        if self.settlement_partial_mean is not None and (
                self.settlement != "twap"
                or not math.isfinite(self.settlement_partial_mean)
                or self.as_of < self.window_end - self.settlement_window_s):
            raise ValueError("settlement_partial_mean needs a twap window inside its final "
                             "settlement_window_s")
        return self

    @property
    def time_to_close_s(self) -> float:
        return max(0.0, self.window_end - self.as_of)

    @property
    def time_since_open_s(self) -> float:
        return self.as_of - self.window_start

    @property
    def price_age_s(self) -> float:
        return self.as_of - self.price_ts

    @property
    def settlement_elapsed_s(self) -> float:
        """Seconds of the closing average already observed (0 for point settlement)."""
        if self.settlement != "twap":
            return 0.0
        start = self.window_end - self.settlement_window_s
        return min(self.settlement_window_s, max(0.0, self.as_of - start))

    @property
    def fee_schedule(self) -> FeeSchedule:
        return FeeSchedule(self.fee_rate, self.fee_exponent)

    def book_for(self, side: str) -> BookTop | None:
        return self.up if side == "up" else self.down

    @property
    def book_age_s(self) -> float | None:
        return None if self.book_ts is None else self.as_of - self.book_ts
