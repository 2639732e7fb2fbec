"""The LangGraph dev/API server serves the graph; a run over HTTP ends in a guarded decision."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devserver import langgraph_dev
from langgraph_sdk import get_sync_client

from core.snapshot import MarketSnapshot
from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed
from graphs.context import Context
from graphs.graph import compile_graph

ROOT = Path(__file__).resolve().parents[2]

def invoke(compiled: Any, payload: Any, **kw: Any) -> Any:
    """Run the async graph to completion from synchronous test code."""
    return asyncio.run(compiled.ainvoke(payload, **kw))


EMBEDDED = ROOT / "data" / "recorded" / "pm15m_20251226_coinbase1m"

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with langgraph_dev(tmp_path_factory.mktemp("devserver")) as url:
        yield url


def test_graph_is_served_with_its_nodes(server_url: str) -> None:
    client = get_sync_client(url=server_url)
    assistants = client.assistants.search(graph_id="updown")
    assert assistants, "graph 'updown' not registered"
    drawn = client.assistants.get_graph(assistants[0]["assistant_id"])
    names = {n["id"] for n in drawn["nodes"]}
    assert {"technical_analyst", "fair_value", "sentiment_analyst", "risk_manager", "trader",
            "guard", "execute"} <= names


def _snapshot_with_a_proposal(feed: ReplayFeed) -> MarketSnapshot:
    """The first real decision point where the deterministic trader proposes an entry."""
    graph = compile_graph()
    ctx = Context(use_llm=False)
    for market in feed.markets:
        for t in feed.decision_times(market, 30.0):
            snap = feed.snapshot_at(market, t)
            if invoke(graph, {"snapshot": snap}, context=ctx)["trader"].proposal is not None:
                return snap
    raise AssertionError("no decision point in the embedded dataset proposes a trade")


def test_run_over_http_reaches_a_guarded_decision(server_url: str) -> None:
    snapshot = _snapshot_with_a_proposal(ReplayFeed(load_dataset(EMBEDDED)))
    client = get_sync_client(url=server_url)
    out = client.runs.wait(None, "updown",
                           input={"snapshot": snapshot.model_dump(mode="json")})
    assert isinstance(out, dict), out
    # Every analyst's record is in the output, with real values from the recorded market.
    assert out["technical"]["candles_used"] > 0
    assert out["fair_value"]["price_to_beat"] == pytest.approx(snapshot.price_to_beat)
    assert 0.0 <= out["fair_value"]["fair_up"] <= 1.0
    assert "score" in out["sentiment"]
    assert out["risk"]["decided_by"] == "policy"
    assert out["trader"]["decided_by"] == "policy"
    assert out["trader"]["proposal"] is not None
    # Studio runs with the configured limits: a recorded price to beat is unverified, so the
    # guard refuses the entry by name and execute never runs.
    verdict = out["verdict"]
    assert verdict["approved"] is False
    assert "reference" in {h["rule"] for h in verdict["rules_fired"]}
    assert out.get("execution") is None
