"""Which markets the live runner trades: ``MARKETS=btc-15m,eth-5m`` parsed into series.

A market spec is ``<asset>-<length>[:<variant>]``: the asset one of BTC/ETH/SOL/XRP, the
length ``<n>m`` or ``<n>s``, and optionally the crypto-price endpoint's ``variant`` for the
series (known for 15 minutes, ``fifteen``; without one the price to beat comes from the RTDS
TWAP stamped at the window start).  The venue lists 5- and 15-minute series
(``btc-updown-15m-<start>``, ``eth-updown-5m-<start>``, ...); other lengths exist only on
loopback test venues, whose Gamma serves the same slug scheme.  Each market gets its own
feed endpoints: the Binance trade stream is per symbol (``ethusdt@trade``); the rest is
shared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from core.errors import UserError
from tools.polymarket.gamma import ASSETS, WindowSeries, series_for
from tools.polymarket.live_feed import FeedEndpoints

_SPEC_RE = re.compile(r"([a-z]+)-(\d+)([sm])(?::([a-z0-9_]+))?")


class MarketSpecError(UserError, ValueError):
    """A market spec that cannot be traded; the message is one line naming it."""


@dataclass(frozen=True, slots=True)
class MarketSpec:
    name: str  # as configured, lower case ("btc-15m")
    series: WindowSeries

    @property
    def asset(self) -> str:
        return self.series.asset


def parse_market(spec: str) -> MarketSpec:
    """One ``<asset>-<length>[:<variant>]`` spec (MarketSpecError naming it if not one)."""
    text = spec.strip().lower()
    found = _SPEC_RE.fullmatch(text)
    if found is None:
        raise MarketSpecError(f"market {spec!r} is not <asset>-<length> (e.g. btc-15m, eth-5m)")
    asset, count, unit = found.group(1).upper(), int(found.group(2)), found.group(3)
    variant = found.group(4)
    if asset not in ASSETS:
        raise MarketSpecError(f"market {spec!r}: asset must be one of "
                              f"{', '.join(a.lower() for a in ASSETS)}")
    length_s = count * (60 if unit == "m" else 1)
    if length_s <= 0:
        raise MarketSpecError(f"market {spec!r}: window length must be > 0")
    series = series_for(asset, length_s, label=f"{count}{unit}",
                        crypto_price_variant=variant)
    return MarketSpec(name=text.split(":")[0], series=series)


def parse_markets(text: str) -> tuple[MarketSpec, ...]:
    """``btc-15m,eth-5m`` as specs, in order, each once (MarketSpecError on a bad one)."""
    specs: list[MarketSpec] = []
    for part in text.split(","):
        if not part.strip():
            continue
        spec = parse_market(part)
        if any(s.series.slug_prefix == spec.series.slug_prefix for s in specs):
            raise MarketSpecError(f"market {spec.name!r} is listed twice")
        specs.append(spec)
    if not specs:
        raise MarketSpecError("no market given (e.g. MARKETS=btc-15m)")
    return tuple(specs)


def endpoints_for(spec: MarketSpec, base: FeedEndpoints) -> FeedEndpoints:
    """The feed endpoints of one market: the Binance stream of its symbol, the rest shared."""
    symbol = f"{spec.asset.lower()}usdt"
    ws = re.sub(r"(?i)btcusdt(?=@)", symbol, base.binance_ws)
    return replace(base, binance_ws=ws)
