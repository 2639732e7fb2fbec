"""The price to beat: where it comes from and whether it can be trusted.

Gamma does not carry it.  Best source first (venue.md):

1. the crypto-price endpoint (``openPrice``; undocumented, so fallible) — verified;
2. the RTDS ``crypto_prices_twap_sixty`` update stamped exactly at the window start, for
   TWAP-settled windows — verified;
3. the first ``crypto_prices_chainlink`` tick at or shortly after the start — approximate,
   so **unverified** (the guard refuses entries on it).

If none is available the snapshot carries no price to beat and the guard refuses to trade.
This module owns the record and the endpoint client; the snapshot store applies the stream
sources as ticks arrive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from tools.polymarket.gamma import MarketWindow, WindowSeries, iso_z

PriceToBeatSource = Literal["crypto_price_api", "twap_stream", "first_chainlink_tick"]
# Higher wins when two sources disagree about the same window.
_RANK: dict[PriceToBeatSource, int] = {
    "first_chainlink_tick": 0, "twap_stream": 1, "crypto_price_api": 2,
}


@dataclass(frozen=True, slots=True)
class PriceToBeat:
    market_id: str
    value: float
    source: PriceToBeatSource
    verified: bool
    observed_ts: float | None = None

    def outranks(self, other: PriceToBeat | None) -> bool:
        return other is None or _RANK[self.source] > _RANK[other.source]


@dataclass(frozen=True, slots=True)
class CryptoPriceQuote:
    """The endpoint's answer for one window: open (the price to beat) and close when done."""

    open_price: float | None
    close_price: float | None
    completed: bool


def _positive(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def parse_quote(data: Any) -> CryptoPriceQuote | None:
    if not isinstance(data, dict):
        return None
    return CryptoPriceQuote(
        open_price=_positive(data.get("openPrice")),
        close_price=_positive(data.get("closePrice")),
        completed=data.get("completed") is True,
    )


class CryptoPriceClient:
    """``GET {url}?symbol=BTC&eventStartTime=..&variant=..&endDate=..`` (polymarket.com)."""

    def __init__(self, url: str, http: httpx.AsyncClient, series: WindowSeries) -> None:
        self.url = url
        self.http = http
        self.series = series

    @property
    def supported(self) -> bool:
        return self.series.crypto_price_variant is not None

    async def quote(self, window: MarketWindow) -> CryptoPriceQuote | None:
        """The endpoint's quote, or None when it has nothing usable (or no variant is known)."""
        variant = self.series.crypto_price_variant
        if variant is None:
            return None
        params = {
            "symbol": window.asset,
            "eventStartTime": iso_z(window.start_ts),
            "variant": variant,
            "endDate": iso_z(window.end_ts),
        }
        if window.twap_enabled:
            params["twapEnabled"] = "true"
            params["twapLookbackSeconds"] = str(window.twap_lookback_s)
        response = await self.http.get(self.url, params=params)
        response.raise_for_status()
        try:
            return parse_quote(response.json())
        except ValueError:
            return None

    async def price_to_beat(self, window: MarketWindow) -> PriceToBeat | None:
        quote = await self.quote(window)
        if quote is None or quote.open_price is None:
            return None
        return PriceToBeat(window.market_id, quote.open_price, "crypto_price_api", True)
