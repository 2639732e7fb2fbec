"""Shared fixtures.  Snapshots built here are synthetic and exist only for unit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core.snapshot import BookTop, Candles, MarketSnapshot


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


@pytest.fixture(scope="session")
def tradable_snapshot() -> MarketSnapshot:
    """The first real recorded decision point the guard approves under replay limits."""
    import asyncio

    from core.guard import GuardLimits
    from feeds.recorded import EMBEDDED_DATASET_DIR, load_dataset
    from feeds.replay import ReplayFeed
    from graphs.context import Context
    from graphs.graph import compile_graph

    feed = ReplayFeed(load_dataset(EMBEDDED_DATASET_DIR))
    compiled = compile_graph()
    ctx = Context(use_llm=False, limits=GuardLimits(require_verified_price_to_beat=False))

    async def first() -> MarketSnapshot:
        for market in feed.markets:
            for t in feed.decision_times(market, 30.0):
                snap = feed.snapshot_at(market, t)
                out = await compiled.ainvoke({"snapshot": snap}, context=ctx)
                if out["verdict"].approved:
                    return snap
        raise AssertionError("no approvable decision point in the embedded dataset")

    return asyncio.run(first())


@pytest.fixture
def make_snapshot() -> Callable[..., MarketSnapshot]:
    return synthetic_snapshot
