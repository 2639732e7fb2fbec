"""Benchmarks of the decision path.  Timing lives here, never in tests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.guard import GuardLimits
from core.settings import load_settings
from core.snapshot import MarketSnapshot
from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed
from graphs.context import Context
from graphs.graph import RECURSION_LIMIT, compile_graph
from tools.sentiment import embedded_sentiment


def _snapshots(feed: ReplayFeed, n: int) -> list[MarketSnapshot]:
    """Up to n real decision points spread over every window of the dataset."""
    points = [(m, t) for m in feed.markets for t in feed.decision_times(m, 10.0)]
    step = max(1, len(points) // n)
    chosen = points[::step][:n]
    while len(chosen) < n:  # a small dataset is cycled
        chosen += chosen[: n - len(chosen)]
    return [feed.snapshot_at(m, t) for m, t in chosen]


def _floor_graph() -> Any:
    """The same topology with no-op async nodes: what LangGraph itself costs per decision."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class S(TypedDict, total=False):
        snapshot: Any
        technical_analyst: int
        fair_value: int
        sentiment_analyst: int
        risk_manager: int
        trader: int
        guard: int
        execute: int

    def noop(key: str) -> Any:
        async def node(state: S) -> dict[str, int]:
            return {key: 1}
        return node

    b: Any = StateGraph(S)
    for name in ("technical_analyst", "fair_value", "sentiment_analyst", "risk_manager",
                 "trader", "guard", "execute"):
        b.add_node(name, noop(name))
    for name in ("technical_analyst", "fair_value", "sentiment_analyst"):
        b.add_edge(START, name)
    b.add_edge(["technical_analyst", "fair_value", "sentiment_analyst"], "risk_manager")
    b.add_edge("risk_manager", "trader")
    b.add_edge("trader", "guard")
    b.add_conditional_edges("guard", lambda s: "execute", {"execute": "execute", END: END})
    b.add_edge("execute", END)
    return b.compile()


def _percentiles(ms: np.ndarray) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


def run_decision_bench(dataset_dir: Path, decisions: int) -> dict[str, Any]:
    settings = load_settings()
    feed = ReplayFeed(load_dataset(dataset_dir))
    t0 = time.perf_counter()
    snaps = _snapshots(feed, decisions)
    snapshot_s = time.perf_counter() - t0
    graph = compile_graph()
    ctx = Context(account="bench", limits=GuardLimits.for_replay(settings), use_llm=False,
                  risk_appetite=settings.risk_level,
                  sentiment=embedded_sentiment(settings.sentiment_lookback_s))
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

    floor = _floor_graph()
    floor_lat = np.empty(len(snaps))

    async def timed_floor() -> None:
        for snap in snaps[:50]:
            await floor.ainvoke({"snapshot": snap})
        for i, snap in enumerate(snaps):
            t = time.perf_counter()
            await floor.ainvoke({"snapshot": snap})
            floor_lat[i] = time.perf_counter() - t

    total = asyncio.run(timed())
    asyncio.run(timed_floor())
    floor_ms = _percentiles(floor_lat * 1000.0)
    return {
        "dataset": feed.dataset.name,
        "decisions": len(snaps),
        **_percentiles(lat * 1000.0),
        "decisions_per_s": len(snaps) / total,
        "snapshot_build_us": snapshot_s / len(snaps) * 1e6,
        # The framework's own cost on this machine: same topology, no-op nodes.
        "langgraph_floor_p50_ms": floor_ms["p50_ms"],
        "langgraph_floor_p99_ms": floor_ms["p99_ms"],
    }
