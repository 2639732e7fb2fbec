"""A loopback LangSmith-compatible ingest endpoint that captures the runs the client posts.

It answers ``GET /info`` (plain multipart ingest, no compression) and accepts runs as
``POST /runs/multipart`` (``post.<id>``, ``post.<id>.inputs`` ... parts), ``POST /runs/batch``
(JSON ``post``/``patch`` lists), ``POST /runs`` and ``PATCH /runs/<id>``.  ``runs`` merges
every operation per run id; ``raw`` keeps every request body exactly as received.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from httpfakes import send_json, serving


class FakeLangSmith(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.raw: list[bytes] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def merge(self, run_id: str, part: str | None, value: Any) -> None:
        with self.lock:
            run = self.runs.setdefault(run_id, {})
            if part is None:
                run.update({k: v for k, v in value.items() if v is not None})
            else:
                run[part] = value

    def by_name(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.runs.values() if r.get("name") == name]


class _Handler(BaseHTTPRequestHandler):
    server: FakeLangSmith
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, payload: Any) -> None:
        send_json(self, status, payload)

    def do_GET(self) -> None:
        self.server.paths.append(f"GET {self.path}")
        if self.path.rstrip("/").endswith("/info"):
            self._reply(200, {"version": "0.0.0-loopback", "instance_flags": {},
                              "batch_ingest_config": {
                                  "use_multipart_endpoint": True, "size_limit": 100,
                                  "size_limit_bytes": None, "scale_up_nthreads_limit": 16,
                                  "scale_up_qsize_trigger": 1000,
                                  "scale_down_nempty_trigger": 4}})
        else:
            self._reply(404, {"detail": "not found"})

    def _body(self) -> bytes:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.raw.append(body)
        return body

    def do_POST(self) -> None:
        self.server.paths.append(f"POST {self.path}")
        body = self._body()
        path = self.path.split("?")[0].rstrip("/")
        if path.endswith("/runs/multipart"):
            self._multipart(body)
        elif path.endswith("/runs/batch"):
            batch = json.loads(body)
            for op in ("post", "patch"):
                for run in batch.get(op) or []:
                    self.server.merge(str(run["id"]), None, run)
        elif path.endswith("/runs"):
            run = json.loads(body)
            self.server.merge(str(run["id"]), None, run)
        self._reply(200, {})

    def do_PATCH(self) -> None:
        self.server.paths.append(f"PATCH {self.path}")
        run = json.loads(self._body())
        self.server.merge(self.path.rstrip("/").rsplit("/", 1)[-1], None, run)
        self._reply(200, {})

    def _multipart(self, body: bytes) -> None:
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser().parsebytes(head + body)
        for part in message.walk():
            if part.is_multipart():
                continue
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if not isinstance(name, str) or not isinstance(payload, bytes):
                continue
            op, _, rest = name.partition(".")
            if op not in ("post", "patch"):
                continue  # feedback, attachments
            run_id, _, field = rest.partition(".")
            value = json.loads(payload)
            self.server.merge(run_id, field or None, value)


@contextmanager
def serve() -> Iterator[FakeLangSmith]:
    with serving(FakeLangSmith()) as srv:
        yield srv
