"""risk_manager and trader on the real ChatOpenAI client against a loopback
OpenAI-compatible server: valid output, refusal, invalid JSON, out-of-range values, hang."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fakeopenai import FakeOpenAI, serve
from langchain_openai import ChatOpenAI

from core.guard import GuardLimits
from core.snapshot import MarketSnapshot
from graphs.context import Context
from graphs.graph import graph

pytestmark = pytest.mark.server
LIMITS = GuardLimits(require_verified_price_to_beat=False)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with serve() as srv:
        srv.usage = (812, 41)
        yield srv


def run(server: FakeOpenAI, snap: MarketSnapshot, tmp_path: Any) -> Any:
    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-loopback-test",  # type: ignore[arg-type]
                       base_url=server.base_url,
                       timeout=1.0, max_retries=0)
    ctx = Context(use_llm=True, trader_model=model, risk_model=model, limits=LIMITS,
                  stop_file=str(tmp_path / "STOP"))
    return asyncio.run(graph.ainvoke({"snapshot": snap}, context=ctx))


def test_valid_structured_output_decides(server: FakeOpenAI, tradable_snapshot: MarketSnapshot,
                                         tmp_path: Any) -> None:
    side = "up" if tradable_snapshot.up and tradable_snapshot.up.ask and \
        tradable_snapshot.up.ask < 0.5 else "down"
    server.trader_answer = {**server.trader_answer, "decision": side}
    out = run(server, tradable_snapshot, tmp_path)
    trader = out["trader"]
    assert trader.decided_by == "llm:gpt-4o-mini"
    assert trader.analysis.decision == side
    assert trader.llm_usage.prompt_tokens == 812
    assert trader.llm_usage.completion_tokens == 41
    assert trader.llm_usage.usd == pytest.approx((812 * 0.15 + 41 * 0.60) / 1e6)
    # The risk model raised the level to medium at most; the stake comes from policy code.
    assert out["risk"].decided_by == "llm:gpt-4o-mini"
    assert out["risk"].risk_level in ("medium", "high")
    if trader.proposal is not None:
        assert trader.proposal.stake_usd == out["risk"].stake_usd
    assert len(server.requests) == 2  # one risk call and one trader call, no more
    # The prompt carries numbers from state and no secret.
    sent = json.dumps(server.requests)
    assert "sk-loopback-test" not in sent
    assert f"{tradable_snapshot.price:.2f}" in sent


@pytest.mark.parametrize(("scenario", "note"), [
    ("refusal", "llm refused"),
    ("invalid_json", "llm output invalid"),
    ("hang", "llm call timed out"),
])
def test_failures_abstain_to_hold(server: FakeOpenAI, tradable_snapshot: MarketSnapshot,
                                  tmp_path: Any, scenario: str, note: str) -> None:
    server.scenario = scenario
    out = run(server, tradable_snapshot, tmp_path)
    trader = out["trader"]
    assert trader.analysis.decision == "hold"
    assert trader.proposal is None
    assert note in (trader.note or "")
    assert not out["verdict"].approved
    assert out.get("execution") is None
    # The risk manager's call failed first: the trader held without a second call, no retry.
    assert len(server.requests) == 1
    assert "trader model not consulted" in (trader.note or "")


def test_out_of_range_confidence_is_rejected_by_schema(
        server: FakeOpenAI, tradable_snapshot: MarketSnapshot, tmp_path: Any) -> None:
    server.trader_answer = {**server.trader_answer, "confidence": 150}
    out = run(server, tradable_snapshot, tmp_path)
    assert out["trader"].analysis.decision == "hold"
    assert "llm output invalid" in (out["trader"].note or "")
    assert out.get("execution") is None
