"""429 storm on the OpenAI path: every request is answered 429 with Retry-After.

The real ChatOpenAI built by ``tools.llm.make_chat_model`` from settings talks to a loopback
OpenAI-compatible server.  Per ``../shared/docs/reliability.md`` the decision nodes abstain
(hold), their retries are bounded by OPENAI_MAX_RETRIES (counted on the server), the whole
call is bounded by OPENAI_TIMEOUT_S even when Retry-After asks for longer, and no exception
leaves the graph.  Once the risk manager's call has failed, the trader holds without
asking the failing provider again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeopenai import FakeOpenAI, serve

from core.guard import GuardLimits
from core.settings import Settings
from core.snapshot import MarketSnapshot
from graphs.context import Context
from graphs.graph import graph
from tools import llm

pytestmark = pytest.mark.server
LIMITS = GuardLimits(require_verified_price_to_beat=False)


@pytest.fixture
def storm() -> Iterator[FakeOpenAI]:
    with serve() as srv:
        srv.scenario = "rate_limit"
        yield srv


def _settings(srv: FakeOpenAI, *, retries: int, timeout_s: float) -> Settings:
    return Settings(_env_file=None,  # type: ignore[call-arg]
                    openai_api_key="sk-loopback-storm-0000000000000000",
                    openai_base_url=srv.base_url, openai_max_retries=retries,
                    openai_timeout_s=timeout_s)


def _decide(settings: Settings, snap: MarketSnapshot, tmp_path: Path) -> Any:
    model = llm.make_chat_model(settings)
    ctx = Context(use_llm=True, trader_model=model, risk_model=model, limits=LIMITS,
                  stop_file=str(tmp_path / "STOP"))
    return asyncio.run(graph.ainvoke({"snapshot": snap}, context=ctx))


def _assert_hold(out: Any, note: str) -> None:
    trader = out["trader"]
    assert trader.analysis.decision == "hold"
    assert trader.proposal is None
    assert note in (trader.note or "")
    # The risk manager asked and abstained: the rule-based assessment stands, with the reason;
    # the trader then held without a call of its own.
    risk = out["risk"]
    assert risk.decided_by == "policy"
    assert risk.llm_usage is not None
    assert risk.llm_usage.prompt_tokens == 0
    assert any(note in f for f in risk.factors)
    assert trader.llm_usage is None
    assert "trader model not consulted" in (trader.note or "")
    assert not out["verdict"].approved
    assert out.get("execution") is None


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_storm_retries_are_bounded_by_setting_then_hold(
        storm: FakeOpenAI, tradable_snapshot: MarketSnapshot, tmp_path: Path,
        retries: int) -> None:
    storm.retry_after = "0.1"  # short: the client honours it and retries within its budget
    out = _decide(_settings(storm, retries=retries, timeout_s=10.0), tradable_snapshot,
                  tmp_path)
    _assert_hold(out, "llm rate limited (429)")
    # One first attempt plus OPENAI_MAX_RETRIES retries, never more; then no trader call.
    assert storm.count() == retries + 1


def test_storm_with_long_retry_after_abstains_within_timeout(
        storm: FakeOpenAI, tradable_snapshot: MarketSnapshot, tmp_path: Path) -> None:
    # Retry-After 30 s with 3 retries would hold the call ~90 s; its budget is
    # OPENAI_TIMEOUT_S (1 s here), so the node abstains after its first request.
    storm.retry_after = "30"
    out = _decide(_settings(storm, retries=3, timeout_s=1.0), tradable_snapshot, tmp_path)
    _assert_hold(out, "llm call timed out")
    assert storm.count() == 1


def test_call_budget_comes_from_the_model_timeout(storm: FakeOpenAI) -> None:
    model = llm.make_chat_model(_settings(storm, retries=1, timeout_s=7.5))
    assert llm.call_budget_s(model) == 7.5
    assert llm.call_budget_s(object()) is None  # a model without a timeout: none imposed
