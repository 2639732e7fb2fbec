"""Market discovery: which window is live now, which comes next, and what it trades.

This module owns the window arithmetic (slug ``btc-updown-15m-<start>`` with ``start`` a
multiple of 900) and the parsing of Gamma's market JSON into a frozen :class:`MarketWindow`:
token ids mapped by outcome **label** (``outcomes`` and ``clobTokenIds`` are JSON-encoded
strings, index-aligned), window start from ``eventStartTime`` (``startDate`` is the listing
time), tick size, minimum size and the fee schedule (Gamma's ``feeSchedule`` when present,
else the dated table).  The price to beat is not in Gamma: see ``tools.polymarket.price_to_beat``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from core.fees import dated_fee_schedule

# Since 2026-08-07 the price to beat and the close are Chainlink's 60-second TWAP (venue.md);
# used only when a market does not say so itself in ``cryptoMarketConfig``.
TWAP_SETTLEMENT_FROM = 1786060800.0  # 2026-08-07T00:00:00Z


class GammaError(ValueError):
    """Gamma answered something unusable; the message is one line saying what."""


@dataclass(frozen=True, slots=True)
class WindowSeries:
    """A family of recurring up/down windows (asset, slug prefix, length)."""

    asset: str = "BTC"
    slug_prefix: str = "btc-updown-15m"
    length_s: int = 900
    # The crypto-price endpoint's ``variant`` for this length; None = not known for it.
    crypto_price_variant: str | None = "fifteen"

    def start_at(self, t: float) -> int:
        """Start of the window containing ``t``."""
        return math.floor(t / self.length_s) * self.length_s

    def slug(self, start_ts: int) -> str:
        return f"{self.slug_prefix}-{start_ts}"


BTC_15M = WindowSeries()
BTC_5M = WindowSeries(slug_prefix="btc-updown-5m", length_s=300, crypto_price_variant=None)
SERIES = {"15m": BTC_15M, "5m": BTC_5M}
# The assets the venue lists up/down series for (``eth-updown-15m-<start>`` and siblings).
ASSETS = ("BTC", "ETH", "SOL", "XRP")


def series_for(asset: str, length_s: int, *, label: str | None = None,
               crypto_price_variant: str | None = None) -> WindowSeries:
    """The series of ``asset`` windows ``length_s`` long (slug ``<asset>-updown-<label>``).

    ``label`` defaults to the venue's naming (``15m``, ``5m``); the 15-minute series keeps its
    known crypto-price variant unless another is given."""
    if length_s <= 0:
        raise ValueError(f"window length must be > 0, got {length_s}")
    name = label or (f"{length_s // 60}m" if length_s % 60 == 0 else f"{length_s}s")
    variant = crypto_price_variant
    if variant is None and length_s == BTC_15M.length_s:
        variant = BTC_15M.crypto_price_variant
    return WindowSeries(asset=asset.upper(), slug_prefix=f"{asset.lower()}-updown-{name}",
                        length_s=length_s, crypto_price_variant=variant)


@dataclass(frozen=True, slots=True)
class MarketWindow:
    """One up/down market as Gamma describes it (times in UTC epoch seconds)."""

    slug: str
    asset: str
    condition_id: str
    start_ts: float
    end_ts: float
    up_token_id: str
    down_token_id: str
    tick_size: float
    min_order_shares: float
    fee_rate: float
    fee_exponent: float
    twap_enabled: bool
    twap_lookback_s: int
    accepting_orders: bool
    closed: bool
    # Gamma's indicative prices of Up/Down (None when absent).
    up_price: float | None = None
    down_price: float | None = None
    question: str = ""

    @property
    def market_id(self) -> str:
        return self.slug

    @property
    def token_ids(self) -> tuple[str, str]:
        return (self.up_token_id, self.down_token_id)

    def outcome_of(self, asset_id: str) -> str | None:
        if asset_id == self.up_token_id:
            return "up"
        if asset_id == self.down_token_id:
            return "down"
        return None


def iso_z(ts: float) -> str:
    """UTC epoch seconds as ``2026-01-01T00:15:00Z``."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: Any, *, naive_is_utc: bool = True) -> float | None:
    """An ISO time as UTC epoch seconds; None when absent or unparseable.

    Gamma's times are UTC, so a zone-less time is read as UTC unless the caller (the live
    broker, where a wrong window is money) asks for such a time to be refused.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if not naive_is_utc:
            return None
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _json_list(value: Any, name: str) -> list[Any]:
    # Gamma encodes these arrays as JSON strings; accept a real array too.
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise GammaError(f"{name} is not valid JSON: {value[:60]!r}") from None
    if not isinstance(value, list):
        raise GammaError(f"{name} is missing or not a list")
    return value


def _json_object(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, Mapping) else None


def _float(value: Any, default: float) -> float:
    if value is None or isinstance(value, bool):
        return default
    try:
        x = float(value)
    except (TypeError, ValueError):
        return default
    return x if math.isfinite(x) else default


def parse_market(data: Mapping[str, Any], series: WindowSeries = BTC_15M) -> MarketWindow:
    """A Gamma market object as a :class:`MarketWindow` (GammaError if it cannot be one)."""
    slug = data.get("slug")
    if not isinstance(slug, str) or not slug:
        raise GammaError("market has no slug")
    try:
        by_label, raw_prices = up_down_tokens(data)
    except GammaError as exc:
        raise GammaError(f"{slug}: {exc}") from None
    prices = {o: _float(p, math.nan) for o, p in raw_prices.items()}

    # eventStartTime is the window start; startDate is when the market was listed.
    start = parse_iso(data.get("eventStartTime"))
    if start is None and slug.startswith(series.slug_prefix + "-"):
        suffix = slug.rsplit("-", 1)[-1]
        start = float(suffix) if suffix.isdigit() else None
    end = parse_iso(data.get("endDate"))
    if start is None or end is None or not start < end:
        raise GammaError(f"{slug}: no usable eventStartTime/endDate")

    stated = stated_fees(data)
    dated = dated_fee_schedule(start)
    fee_rate, fee_exponent = stated if stated is not None else (dated.rate, dated.exponent)
    crypto = _json_object(data.get("cryptoMarketConfig")) or {}
    twap = crypto.get("twapEnabled")
    twap_enabled = bool(twap) if isinstance(twap, bool) else start >= TWAP_SETTLEMENT_FROM
    condition_id = data.get("conditionId")
    up_price, down_price = prices.get("up"), prices.get("down")
    return MarketWindow(
        slug=slug,
        asset=series.asset,
        condition_id=condition_id if isinstance(condition_id, str) else "",
        start_ts=start,
        end_ts=end,
        up_token_id=by_label["up"],
        down_token_id=by_label["down"],
        tick_size=_float(data.get("orderPriceMinTickSize"), 0.01),
        min_order_shares=_float(data.get("orderMinSize"), 5.0),
        fee_rate=fee_rate,
        fee_exponent=fee_exponent,
        twap_enabled=twap_enabled,
        twap_lookback_s=int(_float(crypto.get("twapLookbackSeconds"), 60.0)),
        accepting_orders=data.get("acceptingOrders") is not False,
        closed=data.get("closed") is True,
        up_price=None if up_price is None or math.isnan(up_price) else up_price,
        down_price=None if down_price is None or math.isnan(down_price) else down_price,
        question=str(data.get("question") or ""),
    )


def up_down_tokens(data: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Token ids and raw outcome prices of a Gamma market by lower-case outcome label.

    Tokens are mapped by their label ("Up"/"Down"), never by position; the prices (as the
    venue wrote them) only when there is one per outcome.  GammaError when the outcomes and
    token ids are not an Up/Down pair.  The feeds and the live broker both read markets here.
    """
    outcomes = [str(o).strip().lower() for o in _json_list(data.get("outcomes"), "outcomes")]
    tokens = [str(t) for t in _json_list(data.get("clobTokenIds"), "clobTokenIds")]
    if len(outcomes) != len(tokens):
        raise GammaError(f"{len(outcomes)} outcomes but {len(tokens)} token ids")
    by_label = dict(zip(outcomes, tokens, strict=True))
    if "up" not in by_label or "down" not in by_label:
        raise GammaError(f"outcomes {outcomes} are not Up/Down")
    prices: dict[str, str] = {}
    if data.get("outcomePrices") not in (None, ""):
        raw_prices = _json_list(data.get("outcomePrices"), "outcomePrices")
        if len(raw_prices) == len(outcomes):
            prices = {o: str(p) for o, p in zip(outcomes, raw_prices, strict=True)}
    return by_label, prices


def stated_fees(data: Mapping[str, Any]) -> tuple[float, float] | None:
    """The taker fee (rate, exponent) a Gamma market states, or None when it states none.

    A valid ``feeSchedule`` wins, even beside ``feesEnabled: false``: when the two disagree,
    assuming the fee overstates the cost of a trade, never understates it.  Without a
    schedule, ``feesEnabled: false`` means no fee.  None: the caller falls back to the dated
    fee table (``core.fees.dated_fee_schedule``).
    """
    schedule = _json_object(data.get("feeSchedule"))
    if schedule is not None:
        rate = _float(schedule.get("rate"), math.nan)
        exponent = _float(schedule.get("exponent"), 1.0)
        if 0.0 <= rate <= 1.0 and exponent > 0:
            return rate, exponent
    if data.get("feesEnabled") is False:
        return 0.0, 1.0
    return None


class GammaClient:
    """``GET /markets/slug/{slug}`` on the Gamma API."""

    def __init__(self, base_url: str, http: httpx.AsyncClient,
                 series: WindowSeries = BTC_15M) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.series = series

    async def market(self, slug: str) -> MarketWindow | None:
        """The market with this slug; None when Gamma does not list it (404)."""
        response = await self.http.get(f"{self.base_url}/markets/slug/{slug}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        try:
            data = response.json()
        except ValueError:
            raise GammaError(f"{slug}: Gamma answered non-JSON") from None
        if isinstance(data, list):  # some deployments wrap the market in a list
            data = data[0] if data else None
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise GammaError(f"{slug}: Gamma answered a {type(data).__name__}, not a market")
        return parse_market(data, self.series)

    async def window_at(self, t: float) -> MarketWindow | None:
        """The window containing ``t``."""
        return await self.market(self.series.slug(self.series.start_at(t)))

    async def next_after(self, window: MarketWindow) -> MarketWindow | None:
        """The window starting when ``window`` ends (listed about a day ahead)."""
        return await self.market(self.series.slug(int(window.end_ts)))
