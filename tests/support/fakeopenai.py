"""A loopback OpenAI-compatible chat-completions server for the real ``ChatOpenAI`` client.

It speaks ``POST /v1/chat/completions`` with ``response_format: json_schema`` as the client
sends it, and answers according to ``scenario``:

* ``valid``: ``trader_answer`` / ``risk_answer`` as given (tests that need a fixed answer);
* ``rule``: a deterministic analyst that reads the numbers in the prompt, like a model
  would, and answers up/down/hold from them (see ``rule_trader`` / ``rule_risk``), so that
  end-to-end runs see realistic, varied answers that nothing on our side hard-codes;
* ``refusal``, ``invalid_json``, ``hang`` (sleeps ``hang_s`` before answering), ``rate_limit``
  (429 with ``Retry-After: retry_after`` to every request).

Token usage is counted from the text like a tokenizer would approximate it (4 characters per
token, the schema included), so cost figures scale with the real prompt size.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from httpfakes import serving

CHARS_PER_TOKEN = 4
# The rule analyst's bar: trade only a side with this edge after fees and this fair probability.
RULE_MIN_EDGE = 0.03
RULE_MIN_FAIR = 0.70


def _number(text: str, pattern: str) -> float | None:
    m = re.search(pattern, text)
    if m is None or m.group(1) == "n/a":
        return None
    return float(m.group(1))


_NUM = r"([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?|n/a)"


def rule_trader(prompt: str) -> dict[str, Any]:
    """Buy the side with the larger edge after fees when it clears the bar; else hold."""
    fair_up = _number(prompt, r"fair P\(up\): " + _NUM)
    edge_up = _number(prompt, r"edge after fees if buying Up: " + _NUM)
    edge_down = _number(prompt, r"if buying Down: " + _NUM)
    risk = re.search(r"risk level: (low|medium|high)", prompt)
    level = risk.group(1) if risk else "medium"
    if fair_up is None or edge_up is None or edge_down is None:
        return {"decision": "hold", "confidence": 50, "risk_level": level,
                "reasoning": "No fair value in the prompt."}
    side, edge, fair = (("up", edge_up, fair_up) if edge_up >= edge_down
                        else ("down", edge_down, 1.0 - fair_up))
    if edge >= RULE_MIN_EDGE and fair >= RULE_MIN_FAIR:
        return {"decision": side, "confidence": round(fair * 100), "risk_level": level,
                "reasoning": f"Fair {fair:.3f} beats the ask by {edge:+.4f} after fees."}
    likelier = max(fair_up, 1.0 - fair_up)
    return {"decision": "hold", "confidence": round(likelier * 100), "risk_level": level,
            "reasoning": f"Edge {edge:+.4f} or fair {fair:.3f} below the bar."}


def rule_risk(prompt: str) -> dict[str, Any]:
    """Medium when little time is left or code found factors; high with both."""
    left = _number(prompt, r": " + _NUM + r" s to close")
    found = re.search(r"factors found by rule: (.*)", prompt)
    factors = [] if found is None or found.group(1).strip() == "none" else [
        f.strip() for f in found.group(1).split(";")][:4]
    late = left is not None and left < 240
    level = "high" if late and factors else "medium" if late or factors else "low"
    return {"risk_level": level, "factors": [*factors, *(["late in window"] if late else [])]}


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True
    scenario = "valid"
    retry_after = "1"
    hang_s = 3.0

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.trader_answer: dict[str, Any] = {
            "decision": "up", "confidence": 82, "reasoning": "Edge after fees.",
            "risk_level": "low"}
        self.risk_answer: dict[str, Any] = {"risk_level": "medium",
                                            "factors": ["book thin near close"]}
        # Answers for other schemas by name (e.g. "Lesson"), in every answering scenario.
        self.by_schema: dict[str, dict[str, Any]] = {}
        # Fixed usage for tests that check the arithmetic; None counts it from the text.
        self.usage: tuple[int, int] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (hang, deadline)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv = self.server
        with srv.lock:
            srv.requests.append(body)
        scenario = srv.scenario
        if scenario == "rate_limit":
            self._send(429, {"error": {"message": "Rate limit reached for requests",
                                       "type": "requests", "param": None,
                                       "code": "rate_limit_exceeded"}},
                       {"Retry-After": srv.retry_after})
            return
        if scenario == "hang":
            time.sleep(srv.hang_s)
        response_format = body.get("response_format", {})
        schema = response_format.get("json_schema", {}).get("name", "")
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        answer: dict[str, Any] | None = None
        if scenario == "refusal":
            message["refusal"] = "I can't help with trading decisions."
        elif scenario == "invalid_json":
            message["content"] = '{"decision": "up", "confidence": '
        elif schema in srv.by_schema:
            answer = srv.by_schema[schema]
        elif scenario == "rule":
            answer = rule_risk(prompt) if schema == "RiskReview" else rule_trader(prompt)
        else:
            answer = srv.risk_answer if schema == "RiskReview" else srv.trader_answer
        if answer is not None:
            message["content"] = json.dumps(answer)
            with srv.lock:
                srv.answers.append({"schema": schema, **answer})
        if srv.usage is not None:
            pt, ct = srv.usage
        else:
            pt = _tokens(prompt + json.dumps(response_format))
            ct = _tokens(message["content"] or message["refusal"] or "")
        self._send(200, {
            "id": "chatcmpl-loopback", "object": "chat.completion", "created": 1_766_745_000,
            "model": body.get("model", "gpt-4o-mini"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop",
                         "logprobs": None}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
        })


@contextmanager
def serve() -> Iterator[FakeOpenAI]:
    with serving(FakeOpenAI()) as srv:
        yield srv
