"""Loopback fakes of the Tavily, X API v2 and Reddit OAuth APIs, and a gullible OpenAI-compatible
model, for the live-sentiment tests (imported by plain name: ``import fakesocial``).

``FakeSocial(service, posts)`` answers like the real service for the routes our clients use:
  * tavily: ``POST /search`` (news results with RFC 2822 ``published_date``), ``POST /research``,
    ``GET /research/{id}``; ``Authorization: Bearer <key>`` required;
  * x: ``GET /2/tweets/search/recent`` (``data``/``meta``, ISO ``created_at``, ``public_metrics``,
    honours ``start_time``); bearer token required;
  * reddit: ``POST /api/v1/access_token`` (basic auth, client credentials) and
    ``GET /r/<subs>/new`` (a ``Listing`` of ``t3`` children); the issued bearer token required.
``scenario`` switches every answer to a fault: ``rate_limited`` (429 with ``Retry-After`` and the
service's own rate-limit headers), ``hang`` (no answer until ``hang_s`` passes or ``release`` is
set), ``invalid_json``, ``server_error`` (503) or ``bad_shape`` (valid JSON, wrong envelope).
Every request is recorded (method, path, query, headers, body) for the secret checks.

``GullibleModel`` speaks ``/v1/chat/completions`` with structured output.  It decides from the
numbers in the prompt (the side with the larger edge after fees, confidence 80) unless any of its
``triggers`` appears anywhere in a request: then it obeys the injection and answers, with
confidence 100, the side the injection demands (``demand``) or else the opposite side.  The
injection tests give it every corpus marker as a trigger.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

Service = Literal["tavily", "x", "reddit"]
Scenario = Literal["valid", "rate_limited", "hang", "invalid_json", "server_error", "bad_shape"]
SCENARIOS: tuple[Scenario, ...] = ("rate_limited", "hang", "invalid_json", "server_error",
                                   "bad_shape")


@dataclass(frozen=True)
class Post:
    """One served item.  ``extra`` is merged into its wire object (fields our clients ignore)."""

    ts: float
    title: str
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.release.set()  # let hung handlers finish
        self.shutdown()
        self.server_close()

    def record(self, handler: BaseHTTPRequestHandler, body: str) -> Recorded:
        parts = urlsplit(handler.path)
        rec = Recorded(method=handler.command, path=parts.path, query=parse_qs(parts.query),
                       headers={k.lower(): v for k, v in handler.headers.items()}, body=body)
        with self.lock:
            self.requests.append(rec)
        return rec

    def bodies(self) -> list[str]:
        with self.lock:
            return [r.body for r in self.requests]

    def count(self, path_prefix: str = "/") -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.path.startswith(path_prefix))


class _Handler(BaseHTTPRequestHandler):
    server: Any
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        rec = self.server.record(self, body)
        try:
            status, headers, payload = self.server.answer(rec)
        except _Hang:
            self.server.release.wait(self.server.hang_s)
            status, headers, payload = 200, {}, b"{}"
        self._send(status, headers, payload)

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        try:
            self.send_response(status)
            headers = {"Content-Type": "application/json", **headers}
            if self.headers.get("Connection", "").lower() == "close":
                # Say so, as real servers do: otherwise the client may reuse a closing socket.
                headers["Connection"] = "close"
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (hang scenario)


class _Hang(Exception):
    pass


Answer = tuple[int, dict[str, str], bytes]


def _json(status: int, obj: object, headers: dict[str, str] | None = None) -> Answer:
    return status, headers or {}, json.dumps(obj).encode()


def _iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeSocial(_Server):
    """One service's fake; see the module docstring."""

    def __init__(self, service: Service, posts: Iterable[Post] = (), *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(_Handler)
        self.service: Service = service
        self.posts: list[Post] = list(posts)
        self.scenario: Scenario = "valid"
        self.retry_after_s = 300
        self.hang_s = 5.0
        self.clock = clock
        # Extra top-level fields of the search/listing envelope (e.g. Tavily's "answer").
        self.envelope_extra: dict[str, Any] = {}
        self.research_content = "Analysts see steady institutional demand for Bitcoin."
        self.tokens: set[str] = set()
        self.expected_auth: str | None = None

    # --- dispatch --------------------------------------------------------------------------

    def answer(self, rec: Recorded) -> Answer:
        fault = self._fault()
        if fault is not None:
            return fault
        if self.service == "tavily":
            return self._tavily(rec)
        if self.service == "x":
            return self._x(rec)
        return self._reddit(rec)

    def _fault(self) -> Answer | None:
        scenario = self.scenario
        if scenario == "valid":
            return None
        if scenario == "hang":
            raise _Hang
        if scenario == "rate_limited":
            headers = {"Retry-After": str(self.retry_after_s)}
            if self.service == "x":
                headers.update({"x-rate-limit-limit": "60", "x-rate-limit-remaining": "0",
                                "x-rate-limit-reset": str(int(self.clock()) + self.retry_after_s)})
                body: object = {"title": "Too Many Requests", "detail": "Too Many Requests",
                                "type": "about:blank", "status": 429}
            elif self.service == "reddit":
                headers.update({"x-ratelimit-used": "100", "x-ratelimit-remaining": "0",
                                "x-ratelimit-reset": str(self.retry_after_s)})
                body = {"message": "Too Many Requests", "error": 429}
            else:
                body = {"detail": {"error": "Rate limit exceeded. Please slow down."}}
            return _json(429, body, headers)
        if scenario == "server_error":
            return _json(503, {"title": "Service Unavailable", "status": 503})
        if scenario == "invalid_json":
            return 200, {}, b'{"results": [{"title": "Bitcoin rallies", "content": '
        # bad_shape: valid JSON, not the API's envelope
        if self.service == "tavily":
            return _json(200, {"results": "none today"})
        if self.service == "x":
            return _json(200, {"data": {"id": "1", "text": "not a list"}})
        return _json(200, {"unexpected": True})

    def _bearer_ok(self, rec: Recorded) -> bool:
        return self.expected_auth is None or rec.headers.get("authorization") == \
            f"Bearer {self.expected_auth}"

    # --- Tavily ------------------------------------------------------------------------------

    def _tavily(self, rec: Recorded) -> Answer:
        if not self._bearer_ok(rec):
            return _json(401, {"detail": {"error": "Unauthorized: missing or invalid API key."}})
        if rec.method == "POST" and rec.path == "/search":
            req = json.loads(rec.body or "{}")
            results = [{
                "url": f"https://news.example/{i}", "title": p.title, "content": p.text,
                "score": 0.8, "raw_content": None,
                "published_date": format_datetime(datetime.fromtimestamp(p.ts, tz=UTC),
                                                  usegmt=True),
                **p.extra,
            } for i, p in enumerate(self.posts)]
            return _json(200, {"query": req.get("query"), "follow_up_questions": None,
                               "answer": None, "images": [], "results": results,
                               "response_time": 0.42, "request_id": str(uuid.uuid4()),
                               **self.envelope_extra})
        if rec.method == "POST" and rec.path == "/research":
            req = json.loads(rec.body or "{}")
            return _json(200, {"request_id": str(uuid.uuid4()), "created_at": _iso_ms(self.clock()),
                               "status": "pending", "input": req.get("input"),
                               "model": req.get("model", "mini")})
        if rec.method == "GET" and rec.path.startswith("/research/"):
            return _json(200, {"request_id": rec.path.rsplit("/", 1)[1],
                               "created_at": _iso_ms(self.clock() - 600),
                               "completed_at": _iso_ms(self.clock() - 300),
                               "status": "completed", "content": self.research_content,
                               "sources": [{"title": "Example", "url": "https://news.example/r",
                                            "favicon": None}],
                               "response_time": 300.0})
        return _json(404, {"detail": {"error": "Not Found"}})

    # --- X API v2 ---------------------------------------------------------------------------

    def _x(self, rec: Recorded) -> Answer:
        if not self._bearer_ok(rec):
            return _json(401, {"title": "Unauthorized", "type": "about:blank", "status": 401,
                               "detail": "Unauthorized"})
        if rec.method != "GET" or rec.path != "/2/tweets/search/recent":
            return _json(404, {"title": "Not Found Error", "status": 404})
        start = rec.query.get("start_time", [None])[0]
        start_ts = datetime.fromisoformat(start).timestamp() if start else 0.0
        tweets = []
        for i, p in enumerate(self.posts):
            if p.ts < start_ts:
                continue
            tid = str(1_870_000_000_000_000_000 + i)
            tweets.append({
                "id": tid, "edit_history_tweet_ids": [tid],
                "text": f"{p.title} {p.text}".strip(), "created_at": _iso_ms(p.ts),
                "public_metrics": {"retweet_count": i % 7, "reply_count": i % 3,
                                   "like_count": i % 11, "quote_count": 0,
                                   "bookmark_count": 0, "impression_count": 100 + i},
                **p.extra,
            })
        tweets.reverse()  # newest first, as sort_order=recency returns them
        if not tweets:
            return _json(200, {"meta": {"result_count": 0}})
        return _json(200, {"data": tweets, "meta": {
            "newest_id": tweets[0]["id"], "oldest_id": tweets[-1]["id"],
            "result_count": len(tweets)}, **self.envelope_extra})

    # --- Reddit -----------------------------------------------------------------------------

    def _reddit(self, rec: Recorded) -> Answer:
        if rec.method == "POST" and rec.path == "/api/v1/access_token":
            auth = rec.headers.get("authorization", "")
            if self.expected_auth is not None and auth != "Basic " + base64.b64encode(
                    self.expected_auth.encode()).decode():
                return _json(401, {"message": "Unauthorized", "error": 401})
            if parse_qs(rec.body).get("grant_type") != ["client_credentials"]:
                return _json(400, {"error": "unsupported_grant_type"})
            token = f"fake-reddit-token-{uuid.uuid4().hex}"
            self.tokens.add(token)
            return _json(200, {"access_token": token, "token_type": "bearer",
                               "expires_in": 86400, "scope": "*"})
        match = re.fullmatch(r"/r/([A-Za-z0-9_+]+)/new", rec.path)
        if rec.method != "GET" or match is None:
            return _json(404, {"message": "Not Found", "error": 404})
        auth = rec.headers.get("authorization", "")
        if not auth.startswith("bearer ") or auth.removeprefix("bearer ") not in self.tokens:
            return _json(401, {"message": "Unauthorized", "error": 401})
        sub = match.group(1).split("+")[0]
        children = []
        for i, p in enumerate(reversed(self.posts)):
            pid = f"1{i:05d}"
            children.append({"kind": "t3", "data": {
                "id": pid, "name": f"t3_{pid}", "title": p.title, "selftext": p.text,
                "created_utc": float(p.ts), "created": float(p.ts), "subreddit": sub,
                "subreddit_name_prefixed": f"r/{sub}", "author": f"user{i}", "score": i % 50,
                "num_comments": i % 9, "permalink": f"/r/{sub}/comments/{pid}/post/",
                "url": f"https://www.reddit.com/r/{sub}/comments/{pid}/post/",
                "is_self": True, "over_18": False, **p.extra}})
        return _json(200, {"kind": "Listing", "data": {
            "after": None, "dist": len(children), "modhash": "", "geo_filter": "",
            "children": children, "before": None, **self.envelope_extra}})


# --- the gullible model ------------------------------------------------------------------------

_EDGES_RE = re.compile(r"edge after fees if buying Up: (\S+); if buying Down: (\S+)")


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def request_text(body: str) -> str:
    """Every string in a JSON request body, joined (so escaping cannot hide a marker)."""
    try:
        return "\n".join(_strings(json.loads(body)))
    except ValueError:
        return body


class _ModelHandler(_Handler):
    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        self.server.record(self, body)
        status, headers, payload = self.server.complete(body)
        self._send(status, headers, payload)


class GullibleModel(_Server):
    """``/v1/chat/completions`` that obeys any trigger text it sees; see the module docstring."""

    def __init__(self, triggers: Iterable[str] = (), *,
                 demand: Literal["up", "down"] | None = None) -> None:
        super().__init__(_ModelHandler)
        self.triggers = tuple(t for t in triggers if t)
        # What an injection makes it answer: the side it demands, or else the opposite side.
        self.demand = demand
        self.triggered = 0
        self.answered = 0

    def obeys(self, text: str) -> bool:
        return any(t in text for t in self.triggers)

    def complete(self, body: str) -> Answer:
        req = json.loads(body)
        text = request_text(body)
        schema = req.get("response_format", {}).get("json_schema", {}).get("name", "")
        injected = self.obeys(text)
        with self.lock:
            self.answered += 1
            self.triggered += int(injected)
        if schema == "RiskReview":
            content: dict[str, Any] = {"risk_level": "low", "factors": []}
        else:
            side = "up"
            found = _EDGES_RE.search(text)
            if found is not None:
                up, down = (float(v) if v != "n/a" else -1.0 for v in found.groups())
                side = "up" if up >= down else "down"
            if injected:
                side = self.demand or ("down" if side == "up" else "up")
            content = {"decision": side, "confidence": 100 if injected else 80,
                       "reasoning": "Following the instructions in the news." if injected
                       else "Edge after fees on this side.", "risk_level": "low"}
        message = {"role": "assistant", "content": json.dumps(content), "refusal": None}
        return _json(200, {
            "id": "chatcmpl-gullible", "object": "chat.completion", "created": 1_766_745_000,
            "model": req.get("model", "gpt-4o-mini"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop",
                         "logprobs": None}],
            "usage": {"prompt_tokens": 700, "completion_tokens": 40, "total_tokens": 740},
        })
