"""Benchmarks of the decision path.  Timing lives here, never in tests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.guard import GuardLimits
from agent.settings import load_settings
from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed
from feeds.snapshot import MarketSnapshot
from graphs.context import Context
from graphs.graph import RECURSION_LIMIT, build_graph


def _snapshots(feed: ReplayFeed, n: int) -> list[MarketSnapshot]:
    """Up to n real decision points spread over every window of the dataset."""
    points = [(m, t) for m in feed.markets for t in feed.decision_times(m, 10.0)]
    step = max(1, len(points) // n)
    chosen = points[::step][:n]
    while len(chosen) < n:  # a small dataset is cycled
        chosen += chosen[: n - len(chosen)]
    return [feed.snapshot_at(m, t) for m, t in chosen]


def run_decision_bench(dataset_dir: Path, decisions: int) -> dict[str, Any]:
    settings = load_settings()
    feed = ReplayFeed(load_dataset(dataset_dir))
    t0 = time.perf_counter()
    snaps = _snapshots(feed, decisions)
    snapshot_s = time.perf_counter() - t0
    graph = build_graph().compile(name="updown")
    limits = GuardLimits.from_settings(settings, mode="paper",
                                       require_verified_price_to_beat=False)
    ctx = Context(account="bench", limits=limits, use_llm=False,
                  risk_appetite=settings.risk_level)
    config: Any = {"recursion_limit": RECURSION_LIMIT}
    lat = np.empty(len(snaps))

    async def timed() -> float:
        for snap in snaps[:50]:  # warm caches (sentiment corpus, TA-Lib, imports)
            await graph.ainvoke({"snapshot": snap}, context=ctx, config=config)
        start = time.perf_counter()
        for i, snap in enumerate(snaps):
            t = time.perf_counter()
            await graph.ainvoke({"snapshot": snap}, context=ctx, config=config)
            lat[i] = time.perf_counter() - t
        return time.perf_counter() - start

    total = asyncio.run(timed())
    ms = lat * 1000.0
    return {
        "dataset": feed.dataset.name,
        "decisions": len(snaps),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "decisions_per_s": len(snaps) / total,
        "snapshot_build_us": snapshot_s / len(snaps) * 1e6,
    }
