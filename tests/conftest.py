"""Shared fixtures.  Snapshots built here are synthetic and exist only for unit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from feeds.snapshot import BookTop, Candles, MarketSnapshot


def synthetic_snapshot(**overrides: Any) -> MarketSnapshot:
    """A synthetic snapshot that passes every guard rule unless a field is overridden."""
    base: dict[str, Any] = {
        "market_id": "btc-updown-15m-synthetic",
        "as_of": 1_000_300.0,
        "window_start": 1_000_000.0,
        "window_end": 1_000_900.0,
        "price_to_beat": 100_000.0,
        "price_to_beat_verified": True,
        "price": 100_010.0,
        "price_ts": 1_000_299.9,
        "price_source": "synthetic",
        "candles": Candles(interval_s=60.0),
        "up": BookTop(bid=0.58, ask=0.60, bid_size=1000.0, ask_size=1000.0),
        "down": BookTop(bid=0.40, ask=0.42, bid_size=1000.0, ask_size=1000.0),
        "book_ts": 1_000_299.5,
        "fee_rate": 0.07,
    }
    base.update(overrides)
    return MarketSnapshot(**base)


@pytest.fixture
def make_snapshot() -> Callable[..., MarketSnapshot]:
    return synthetic_snapshot
