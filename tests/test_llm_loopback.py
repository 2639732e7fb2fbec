"""risk_manager and trader on the real ChatOpenAI client against a loopback
OpenAI-compatible server: valid output, refusal, invalid JSON, out-of-range values, hang."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langchain_openai import ChatOpenAI

from agent.guard import GuardLimits
from feeds.snapshot import MarketSnapshot
from graphs.context import Context
from graphs.graph import graph

pytestmark = pytest.mark.server
LIMITS = GuardLimits(require_verified_price_to_beat=False)


class FakeOpenAI(ThreadingHTTPServer):
    """Speaks /v1/chat/completions; ``scenario`` picks what the next answers look like."""

    scenario = "valid"
    trader_answer: dict[str, Any]
    requests: list[dict[str, Any]]


class Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        schema = body.get("response_format", {}).get("json_schema", {}).get("name", "")
        scenario = self.server.scenario
        if scenario == "hang":
            time.sleep(3.0)
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if scenario == "refusal":
            message["refusal"] = "I can't help with trading decisions."
        elif scenario == "invalid_json":
            message["content"] = '{"decision": "up", "confidence": '
        elif schema == "RiskReview":
            message["content"] = json.dumps({"risk_level": "medium",
                                             "factors": ["book thin near close"]})
        else:
            message["content"] = json.dumps(self.server.trader_answer)
        payload = {
            "id": "chatcmpl-loopback", "object": "chat.completion", "created": 1_766_745_000,
            "model": body.get("model", "gpt-4o-mini"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop",
                         "logprobs": None}],
            "usage": {"prompt_tokens": 812, "completion_tokens": 41, "total_tokens": 853},
        }
        data = json.dumps(payload).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (hang scenario)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    srv = FakeOpenAI(("127.0.0.1", 0), Handler)
    srv.requests = []
    srv.trader_answer = {"decision": "up", "confidence": 82, "reasoning": "Edge after fees.",
                         "risk_level": "low"}
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def run(server: FakeOpenAI, snap: MarketSnapshot, tmp_path: Any) -> Any:
    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-loopback-test",  # type: ignore[arg-type]
                       base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
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


def test_out_of_range_confidence_is_rejected_by_schema(
        server: FakeOpenAI, tradable_snapshot: MarketSnapshot, tmp_path: Any) -> None:
    server.trader_answer = {**server.trader_answer, "confidence": 150}
    out = run(server, tradable_snapshot, tmp_path)
    assert out["trader"].analysis.decision == "hold"
    assert "llm output invalid" in (out["trader"].note or "")
    assert out.get("execution") is None
