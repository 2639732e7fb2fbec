"""What the live runner reports about itself: counters, a status file and a health endpoint.

* :class:`RunCounters` — decisions, orders, fills, settled P&L, LLM cost, per market;
* :func:`write_atomic` — the status file is written to a temporary file in the same directory
  and renamed over the old one, so a reader never sees half a document;
* :class:`HealthServer` — ``GET /health`` on 127.0.0.1 answers the same document (HTTP/1.0,
  one request per connection; loopback only, it carries no secret but is nobody else's
  business either).

The document is built by the runner (``agent.autorun``); this module does not read clocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.logs import get_logger

log = get_logger("updown.status")


@dataclass
class MarketCounters:
    """One market's counters since the process started."""

    windows: int = 0
    decisions: int = 0
    large_move_decisions: int = 0
    orders: int = 0
    fills: int = 0
    order_errors: int = 0
    settled: int = 0
    pnl_usd: float = 0.0
    llm_calls: int = 0
    llm_usd: float = 0.0
    skipped_no_snapshot: int = 0


@dataclass
class RunCounters:
    markets: dict[str, MarketCounters] = field(default_factory=dict)
    reconciliations: int = 0
    unresolved_orders: int = 0

    def market(self, name: str) -> MarketCounters:
        return self.markets.setdefault(name, MarketCounters())

    def totals(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {}
        for counters in self.markets.values():
            for key, value in asdict(counters).items():
                out[key] = round(out.get(key, 0) + value, 6)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"totals": self.totals(),
                "markets": {k: asdict(v) for k, v in self.markets.items()},
                "reconciliations": self.reconciliations,
                "unresolved_orders": self.unresolved_orders}


def rss_kb(pid: int | str = "self") -> int | None:
    """Resident set size of a process in KiB (Linux /proc); None where unavailable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def write_atomic(path: Path, document: dict[str, Any]) -> None:
    """Replace ``path`` with ``document`` as JSON in one rename (readers see old or new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=1, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class HealthServer:
    """``GET /health`` on loopback: the current status document as JSON."""

    def __init__(self, port: int, document: Callable[[], dict[str, Any]]) -> None:
        self.port = port
        self._document = document
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("health_endpoint", url=f"http://127.0.0.1:{self.port}/health")
        return self.port

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            parts = request.decode("latin-1").split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1] in ("/health", "/"):
                body = json.dumps(self._document(), default=str).encode()
                status = "200 OK"
            else:
                body, status = b'{"error": "not found"}', "404 Not Found"
            writer.write(f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
