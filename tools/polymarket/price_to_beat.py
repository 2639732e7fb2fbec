"""The price to beat: where it comes from and whether it can be trusted.

Best source first (venue.md):

1. the crypto-price endpoint (``openPrice``; undocumented, so fallible) — verified;
2. Gamma's event (``GET /events/slug/{slug}``): ``eventMetadata.priceToBeat`` — verified (seen
   on resolved windows; whether it is there while a window is live is not known, so it is
   asked for and used when present);
3. the RTDS ``crypto_prices_twap_sixty`` update stamped exactly at the window start, for
   TWAP-settled windows — verified;
4. the first ``crypto_prices_chainlink`` tick at or shortly after the start — approximate,
   so **unverified** (the guard refuses entries on it).

If none is available the snapshot carries no price to beat and the guard refuses to trade.
Verified sources that disagree by more than ``price_to_beat_tolerance_rel`` (a setting) leave
the window's price to beat unverified: one of them is wrong and we cannot tell which.
This module owns the record and the endpoint client; the snapshot store applies the stream
sources as ticks arrive.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from core.settings import Settings
from tools.polymarket.gamma import MarketWindow, WindowSeries, iso_z

PriceToBeatSource = Literal["crypto_price_api", "gamma_event", "twap_stream",
                            "first_chainlink_tick"]
# Higher wins when two sources give a value for the same window.
_RANK: dict[PriceToBeatSource, int] = {
    "first_chainlink_tick": 0, "twap_stream": 1, "gamma_event": 2, "crypto_price_api": 3,
}
# The setting's default, for code built without settings (tests, the recorder).
PRICE_TO_BEAT_TOLERANCE_REL: float = Settings.model_fields["price_to_beat_tolerance_rel"].default


@dataclass(frozen=True, slots=True)
class PriceToBeat:
    market_id: str
    value: float
    source: PriceToBeatSource
    verified: bool
    observed_ts: float | None = None

    def outranks(self, other: PriceToBeat | None) -> bool:
        return other is None or _RANK[self.source] > _RANK[other.source]

    def disagrees(self, other: PriceToBeat, tolerance_rel: float) -> bool:
        """True when the two values differ by more than ``tolerance_rel`` of the other."""
        return abs(self.value / other.value - 1.0) > tolerance_rel


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


@dataclass(frozen=True, slots=True)
class EventPrices:
    """Gamma's ``eventMetadata`` of an up/down event: the open and, once resolved, the close."""

    price_to_beat: float | None
    final_price: float | None


def parse_event_prices(doc: Any) -> EventPrices | None:
    """``GET /events/slug/{slug}`` (an event, or a one-element list of one): its prices."""
    if isinstance(doc, list):
        doc = doc[0] if len(doc) == 1 else None
    if not isinstance(doc, dict):
        return None
    meta = doc.get("eventMetadata")
    if isinstance(meta, str):  # some Gamma objects arrive JSON-encoded
        try:
            meta = json.loads(meta)
        except ValueError:
            return None
    if not isinstance(meta, dict):
        return EventPrices(None, None)
    return EventPrices(_positive(meta.get("priceToBeat")), _positive(meta.get("finalPrice")))


class GammaEventClient:
    """The price to beat as Gamma's event states it (``eventMetadata.priceToBeat``)."""

    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    async def prices(self, window: MarketWindow) -> EventPrices | None:
        # The up/down series name each event like its one market (btc-updown-15m-<start>).
        response = await self.http.get(f"{self.base_url}/events/slug/{window.slug}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        try:
            return parse_event_prices(response.json())
        except ValueError:
            return None

    async def price_to_beat(self, window: MarketWindow) -> PriceToBeat | None:
        prices = await self.prices(window)
        if prices is None or prices.price_to_beat is None:
            return None
        return PriceToBeat(window.market_id, prices.price_to_beat, "gamma_event", True)
