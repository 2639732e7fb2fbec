"""Helpers for the live-runner tests: a Gamma fake serving several synthetic series, a Binance
fake that streams whichever symbol the client asks for, the environment of an ``updown run``
child aimed at loopback fakes, and journal/checkpoint readers.

Every price, id and token here is synthetic; windows are seconds long so that roll-overs,
entries and settlements happen within a test.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from feedfakes import (
    ConnectionLog,
    FakeBinance,
    FakeHttp,
    _HttpHandler,
    gamma_market,
    trade_frame,
)
from websockets.asyncio.server import ServerConnection

ROOT = Path(__file__).resolve().parents[2]
UPDOWN = str(ROOT / ".venv" / "bin" / "updown")


class _MultiHandler(_HttpHandler):
    server: MultiSeriesHttp

    def do_GET(self) -> None:
        found = re.fullmatch(r"/markets/slug/([a-z]+-updown-[0-9a-z]+)-(\d+)", self.path)
        series = self.server.series.get(found.group(1)) if found else None
        if found is None or series is None or self.server.gamma_status != 200:
            super().do_GET()
            return
        self.server.requests.append(self.path)
        start = int(found.group(2))
        if start % series:
            self._json(404, {"type": "not found", "error": "synthetic"})
            return
        self._json(200, gamma_market(start, series, found.group(1)))


class MultiSeriesHttp(FakeHttp):
    """``FakeHttp`` whose Gamma lists several series: ``{slug prefix: window length}``."""

    def __init__(self, series: dict[str, int]) -> None:
        first, length = next(iter(series.items()))
        super().__init__(length_s=length, prefix=first)
        self.RequestHandlerClass = _MultiHandler
        self.series = dict(series)


class SymbolBinance(FakeBinance):
    """Trades of the symbol in the stream path (``/ws/ethusdt@trade`` streams ETHUSDT)."""

    def __init__(self, rate: float = 20.0, **kw: Any) -> None:
        super().__init__(rate, **kw)
        # Garbage frames to send before the next trades (fault injection).
        self.garbage = 0

    async def session(self, ws: ServerConnection, log: ConnectionLog) -> None:
        path = ws.request.path if ws.request is not None else ""
        found = re.search(r"/ws/([a-z]+)@trade", path)
        symbol = found.group(1).upper() if found else "BTCUSDT"
        loop = asyncio.get_running_loop()
        period = 1.0 / self.rate
        while True:
            if self.stalled:
                await asyncio.sleep(0.01)
                continue
            if self.garbage > 0:
                self.garbage -= 1
                await ws.send('{"e":"trade","p":"not a price"')
            else:
                self.price = round(self.price + self.rng.choice((-1, 1)) * self.rng.random() * 5,
                                   2)
                await ws.send(trade_frame(self.next_id, self.price, symbol=symbol))
                self.next_id += 1
            self.last_send = loop.time()
            await asyncio.sleep(period)


def runner_env(endpoints: dict[str, str], tmp: Path, **overrides: str) -> dict[str, str]:
    """The environment of an ``updown run`` child: loopback endpoints, files under ``tmp``,
    short-window guard timings, deterministic policy, JSON logs."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp),
        **endpoints,
        "JOURNAL_PATH": str(tmp / "journal.db"),
        "CHECKPOINT_PATH": str(tmp / "checkpoints.db"),
        "STATUS_PATH": str(tmp / "status.json"),
        "AI_DECISION_LOG_PATH": str(tmp / "decisions.jsonl"),
        "STOP_FILE": str(tmp / "STOP"),
        "SENTIMENT_ENABLED": "false",
        "DECISION_CADENCE_S": "0.5",
        "NO_ENTRY_FIRST_S": "0",
        "NO_ENTRY_LAST_S": "1",
        "MAX_ORDERS_PER_DAY": "1000",
        "LOSS_COOLDOWN_S": "0",
        "DAILY_LOSS_LIMIT": "100000",
        "LOG_JSON": "true",
        "LOG_LEVEL": "INFO",
    }
    env.update(overrides)
    return env


def journal_rows(path: Path, sql: str, *args: Any) -> list[sqlite3.Row]:
    """Read the journal from outside the process that writes it (read-only)."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, args))
    except sqlite3.OperationalError:
        return []  # schema not created yet
    finally:
        conn.close()


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def wait_until(predicate: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        time.sleep(0.05)


async def checkpoint_state(path: Path, market_id: str) -> dict[str, Any]:
    """The last checkpointed state of a window's thread."""
    from agent.autorun import open_checkpointer, thread_config
    from graphs.graph import compile_graph

    async with open_checkpointer(path) as saver:
        graph = compile_graph(checkpointer=saver)
        state = await graph.aget_state(thread_config(market_id))
        return dict(state.values)
