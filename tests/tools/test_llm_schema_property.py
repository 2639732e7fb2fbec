"""Property test: thousands of generated model outputs through the real client and the trader.

Each example is one chat-completions response body handed to the real ``ChatOpenAI`` (its
HTTP layer served in-process by httpx's MockTransport, so thousands of examples stay fast),
parsed by the real structured-output path and turned into a decision by the real ``trader``
node.  Outputs are generated in classes whose validity is known by construction: valid ones
must be taken as stated; anything invalid or out of range must become a hold with no order;
and whatever the output says, the stake is the risk manager's, never the model's.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_openai import ChatOpenAI

from core import policy
from core.guard import GuardLimits
from core.records import AggregatedSentiment
from core.snapshot import MarketSnapshot
from graphs import nodes
from graphs.context import Context
from tools.fair_value import estimate_fair_value
from tools.indicators import analyse_candles

LIMITS = GuardLimits(require_verified_price_to_beat=False)
DECISIONS = ("up", "down", "hold")
LEVELS = ("low", "medium", "high")


class _Box:
    """The next response content the mock transport returns."""

    content: str = "{}"


BOX = _Box()


def _respond(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={
        "id": "chatcmpl-prop", "object": "chat.completion", "created": 1_766_745_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": BOX.content,
                                 "refusal": None}}],
        "usage": {"prompt_tokens": 700, "completion_tokens": 40, "total_tokens": 740},
    })


def _model() -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", api_key="sk-property-test",  # type: ignore[arg-type]
                      base_url="http://openai.invalid/v1", timeout=5.0, max_retries=0,
                      http_async_client=httpx.AsyncClient(
                          transport=httpx.MockTransport(_respond)))


# --- generated outputs -------------------------------------------------------------------

reasoning = st.text(max_size=600)
valid = st.fixed_dictionaries({
    "decision": st.sampled_from(DECISIONS),
    "confidence": st.integers(0, 100),
    "reasoning": reasoning,
    "risk_level": st.sampled_from(LEVELS),
})
# One field broken in a way no lax coercion can repair.
_bad_field: dict[str, st.SearchStrategy[Any]] = {
    "decision": st.one_of(st.text().filter(lambda t: t not in DECISIONS), st.integers(),
                          st.none(), st.lists(st.sampled_from(DECISIONS), min_size=1)),
    "confidence": st.one_of(st.integers(max_value=-1), st.integers(min_value=101),
                            st.floats(allow_nan=False, allow_infinity=False).filter(
                                lambda x: x != int(x)),
                            st.sampled_from(["high", "", "NaN", "1e9"]), st.none(),
                            st.lists(st.integers(0, 100), min_size=1)),
    "reasoning": st.one_of(st.text(min_size=601, max_size=900), st.integers(), st.none()),
    "risk_level": st.one_of(st.text().filter(lambda t: t not in LEVELS), st.none(),
                            st.integers()),
}


@st.composite
def broken_field(draw: st.DrawFn) -> str:
    out = dict(draw(valid))
    field = draw(st.sampled_from(sorted(_bad_field)))
    out[field] = draw(_bad_field[field])
    return json.dumps(out)


@st.composite
def missing_field(draw: st.DrawFn) -> str:
    out = dict(draw(valid))
    del out[draw(st.sampled_from(sorted(out)))]
    return json.dumps(out)


not_an_object = st.one_of(
    st.text(max_size=200).filter(lambda t: not t.strip().startswith("{")),
    st.builds(json.dumps, st.one_of(st.lists(st.integers(), max_size=3), st.integers(),
                                    st.none(), st.text(max_size=20))),
    valid.map(lambda d: json.dumps(d)[:-1]),  # truncated JSON
)
# Valid fields plus a smuggled size/limit field: accepted, and the extra field has no effect.
smuggled = st.builds(
    lambda d, k, v: json.dumps({**d, k: v}), valid,
    st.sampled_from(["stake_usd", "size", "max_position_size", "mode", "min_confidence"]),
    st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=10)))

outputs = st.one_of(
    valid.map(lambda d: ("valid", json.dumps(d))),
    smuggled.map(lambda s: ("valid", s)),
    broken_field().map(lambda s: ("invalid", s)),
    missing_field().map(lambda s: ("invalid", s)),
    not_an_object.map(lambda s: ("invalid", s)),
)


@pytest.fixture(scope="module")
def decision_state(tradable_snapshot: MarketSnapshot) -> dict[str, Any]:
    snap = tradable_snapshot
    technical = analyse_candles(snap.candles)
    fair = estimate_fair_value(snap)
    assert fair is not None
    assert fair.best_side() is not None
    sentiment = AggregatedSentiment()
    risk = policy.assess_risk(snap, technical, fair, sentiment, appetite="medium",
                              max_position_usd=LIMITS.max_position_usd)
    return {"snapshot": snap, "technical": technical, "fair_value": fair,
            "sentiment": sentiment, "risk": risk}


@pytest.fixture(scope="module")
def runtime() -> Any:
    return SimpleNamespace(context=Context(use_llm=True, trader_model=_model(), limits=LIMITS))


@settings(max_examples=2000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(generated=outputs)
def test_generated_outputs_are_taken_as_stated_or_become_hold(
        generated: tuple[str, str], decision_state: dict[str, Any], runtime: Any) -> None:
    kind, content = generated
    BOX.content = content
    out = asyncio.run(nodes.trader(decision_state, runtime))["trader"]  # type: ignore[arg-type]
    risk = decision_state["risk"]
    if kind == "valid":
        stated = json.loads(content)
        assert out.analysis.decision == stated["decision"]
        assert out.analysis.confidence == stated["confidence"]
        assert out.note is None
    else:
        assert out.analysis.decision == "hold"
        assert out.proposal is None
        assert (out.note or "").startswith("llm output invalid")
    assert 0 <= out.analysis.confidence <= 100
    assert len(out.analysis.reasoning) <= 600
    if out.proposal is not None:
        # Sized by code from the risk level, whatever the output claimed.
        assert out.proposal.stake_usd == risk.stake_usd
        assert out.proposal.side == out.analysis.decision
