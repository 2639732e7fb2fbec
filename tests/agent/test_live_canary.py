"""A private key generated for this test run is found nowhere the program writes: logs at
DEBUG (structlog and stdlib), journal, decision log, LangGraph checkpoint, graph trace events,
and tracebacks formatted with their local variables.

The live session runs in a child process (``tests/canary_run.py``) against a loopback fake
venue: decisions through the graph (fill, timeout then lookup, 5xx, thin book), settlement,
portfolio, a refused manual order, a restart with reconciliation, and two failures.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import canary_run
import pytest
from eth_account import Account
from fakeclob import FakeClob, serve
from livekit import fork_server

pytestmark = pytest.mark.server


def _needles(key_hex: str, key_bytes: bytes) -> list[bytes]:
    bare = key_hex.removeprefix("0x")
    return [bare.lower().encode(), bare.upper().encode(), key_bytes,
            # utf-16 and base64 forms, in case something re-encodes what it stores
            bare.lower().encode("utf-16-le"),
            __import__("base64").b64encode(key_bytes)]


def test_canary_private_key_appears_nowhere(tmp_path: Path) -> None:
    canary = Account.create()
    key_hex, key_bytes = canary.key.hex(), bytes(canary.key)
    fake = FakeClob(address=canary.address)
    stranger = FakeClob(address=Account.create().address)  # refuses our L1 signature
    now = time.time()
    markets = [fake.add_market(f"btc-updown-15m-c{i}", window_start=now - 300.0,
                               up_ask="0.60", down_ask="0.42",
                               depth="1000" if i != 3 else "5") for i in range(4)]
    fake.inject("timeout_after_fill")  # first order: answer lost, looked up
    out = tmp_path / "out"
    out.mkdir()

    def resolver() -> None:  # the venue resolves the windows when the child asks
        for _ in range(3000):
            if (out / "resolve.request").exists():
                for m in markets:
                    fake.resolve(m.slug, "up")
                (out / "resolve.done").write_text("ok")
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=resolver, daemon=True)
    watcher.start()
    with serve(fake, hang_s=1.0) as url, serve(stranger) as stranger_url:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("POLYMARKET_", "OPENAI_", "LIVE_", "LANGSMITH_"))}
        env = {**base, "POLYMARKET_MODE": "live", "POLYMARKET_PRIVATE_KEY": key_hex,
               "POLYMARKET_CLOB_URL": url, "POLYMARKET_GAMMA_URL": url + "/gamma",
               "POLYMARKET_ORDER_TIMEOUT_S": "0.5", "LIVE_CONFIRM": "trade real money",
               "JOURNAL_PATH": str(out / "journal.db"), "STOP_FILE": str(out / "STOP"),
               "AI_DECISION_LOG_PATH": str(out / "decisions.jsonl"), "LOG_LEVEL": "DEBUG",
               "LOG_JSON": "true", "SENTIMENT_ENABLED": "false"}
        ctx = fork_server()
        # Insert one fault mid-run: the second decision's POST gets a 500 after the fill.
        fake.inject("http_500_after_fill")
        proc = ctx.Process(target=canary_run.run,
                           args=(env, str(out), [m.slug for m in markets], stranger_url))
        proc.start()
        proc.join(180)
        assert proc.exitcode == 0, (out / "exceptions.txt").read_text() \
            if (out / "exceptions.txt").exists() else (out / "all.log").read_text()[-3000:]

    files = sorted(p for p in out.rglob("*") if p.is_file())
    names = {p.name for p in files}
    # Everything the scenario should have produced is there and not empty.
    for expected in ("all.log", "journal.db", "decisions.jsonl", "checkpoints.db",
                     "trace.jsonl", "exceptions.txt"):
        assert expected in names
    log = (out / "all.log").read_text()
    assert '"level": "debug"' in log  # structlog at DEBUG
    assert "HTTP Request" in log  # stdlib (httpx) at DEBUG
    assert "order_signed" in log
    assert "filled" in (out / "decisions.jsonl").read_text()
    exceptions = (out / "exceptions.txt").read_text()
    assert "UNEXPECTED" not in exceptions
    assert "could not create or derive" in exceptions
    assert "<private key>" in exceptions  # the key object was a local and stayed quiet
    # The journal recorded real orders: fills, a reconciliation, settlements.
    import sqlite3

    con = sqlite3.connect(out / "journal.db")
    try:
        assert con.execute("SELECT COUNT(*) FROM venue_orders").fetchone()[0] >= 3
        assert con.execute("SELECT COUNT(*) FROM settlements").fetchone()[0] >= 2
    finally:
        con.close()

    leaks = []
    for path in files:
        data = path.read_bytes()
        leaks += [f"{path.name}: {needle[:6]!r}..." for needle in _needles(key_hex, key_bytes)
                  if needle in data]
    assert leaks == [], leaks
    assert fake.bad_signatures == 0
