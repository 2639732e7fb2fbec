"""The LangGraph dev/API server serves the graph; a run over HTTP ends in a guarded decision."""

from __future__ import annotations

import asyncio
import json
import sqlite3
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


EXAMPLE_INPUT = ROOT / "data" / "studio" / "example_input.json"


def test_studio_gets_an_input_schema_and_the_shipped_example_runs(server_url: str) -> None:
    client = get_sync_client(url=server_url)
    assistant = client.assistants.search(graph_id="updown")[0]
    schemas = client.assistants.get_schemas(assistant["assistant_id"])
    # Studio renders its input form from this schema: it must exist and ask for the snapshot.
    assert schemas["input_schema"] is not None
    assert "snapshot" in schemas["input_schema"]["properties"]
    assert "snapshot" in schemas["input_schema"].get("required", [])
    assert schemas["output_schema"] is not None
    example = json.loads(EXAMPLE_INPUT.read_text(encoding="utf-8"))
    out = client.runs.wait(None, "updown", input=example)
    assert isinstance(out, dict), out
    assert out["decision_id"] == (f"{example['snapshot']['market_id']}"
                                  f"@{example['snapshot']['as_of']:.3f}")
    assert out["trader"]["proposal"] is not None
    assert out["verdict"]["rules_fired"], "a guarded decision names the rules it applied"
    assert out.get("execution") is None  # unverified price to beat: refused, never executed


@pytest.fixture(scope="module")
def relaxed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A dev server whose settings accept a derived price to beat (paper), so the shipped
    example can be approved, with its Studio journal in a temporary directory."""
    workdir = tmp_path_factory.mktemp("relaxed")
    with langgraph_dev(workdir, REQUIRE_VERIFIED_PRICE_TO_BEAT="false") as url:
        yield url, workdir / "studio.db"


def test_runs_on_one_thread_start_clean_and_one_entry_per_window_holds(
        relaxed_server: tuple[str, Path]) -> None:
    url, journal = relaxed_server
    client = get_sync_client(url=url)
    example = json.loads(EXAMPLE_INPUT.read_text(encoding="utf-8"))
    thread = client.threads.create()
    first = client.runs.wait(thread["thread_id"], "updown", input=example)
    assert isinstance(first, dict), first
    assert first["verdict"]["approved"] is True
    assert first["execution"]["status"] == "filled"
    # The same window again on the same thread: the journal behind Studio holds the entry, so
    # the guard refuses by the window rule, and the first run's fill is not in this result.
    second = client.runs.wait(thread["thread_id"], "updown", input=example)
    assert isinstance(second, dict), second
    assert second["verdict"]["approved"] is False
    assert "window" in {h["rule"] for h in second["verdict"]["rules_fired"]}
    assert second.get("execution") is None
    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT account, market_id FROM order_intents").fetchall()
    assert rows == [("studio-paper", example["snapshot"]["market_id"])]
