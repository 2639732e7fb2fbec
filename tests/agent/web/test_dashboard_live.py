"""The dashboard inside ``updown run`` (agent/autorun.py) paper trading against loopback feeds:
a fill shows on the dashboard (the server-sent events announce it, the API lists it), the
kill switch pressed on the dashboard stops the next order, and with the notification receiver
down trading goes on.  No secret in any answer.

Windows are 3 seconds long (synthetic series ``btc-updown-3s``); prices are synthetic.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from autorunkit import MultiSeriesHttp, SymbolBinance, journal_rows, runner_env
from dashkit import CANARY_KEY, CANARY_OPENAI, CHROMIUM, chromium, keep_screenshot
from feedfakes import FakeClobMarket, FakeRtds, closed_port, venue_env

from agent.autorun import AutoRunner, RunOptions
from agent.live import TradingMode
from core.settings import Settings
from tools.journal import Journal
from tools.polymarket.markets import parse_markets

pytestmark = pytest.mark.server

TOKEN = "test-kill-switch-token"


async def _wait(predicate: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within  # stops a hung test; not a speed assertion
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {within}s"
        await asyncio.sleep(0.05)


async def test_fill_shows_and_kill_switch_stops_the_next_order(tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    with closed_port() as dead, MultiSeriesHttp({"btc-updown-3s": 3}) as http:
        http.default_open_price = 1_000.0  # synthetic: far below the fake's price
        now = math.floor(time.time())
        for start in range(now - 12, now + 120):
            http.close_prices[start] = 2_000.0  # synthetic: Up wins every window
        async with (SymbolBinance(rate=20) as binance, FakeRtds(0.1) as rtds,
                    FakeClobMarket(0.1) as clob):
            env = runner_env(venue_env(binance.url, rtds.url, clob.url, http), tmp_path,
                             POLYMARKET_PRIVATE_KEY=CANARY_KEY, OPENAI_API_KEY="",
                             NOTIFY_URLS=f"json://127.0.0.1:{dead}/{CANARY_OPENAI}")
            settings = Settings(_env_file=None, **{  # type: ignore[call-arg,arg-type]
                k.lower(): v for k, v in env.items() if k not in ("PATH", "HOME")})
            with Journal(journal) as jr:
                runner = AutoRunner(
                    settings, parse_markets("btc-3s:synthetic"), TradingMode("paper", False),
                    journal=jr, decision_log=None, checkpoint_path=tmp_path / "cp.db",
                    options=RunOptions(cadence_s=0.5, large_move_pct=0.1, windows=7,
                                       status_path=tmp_path / "status.json",
                                       settle_wait_s=10.0, dashboard_port=0,
                                       dashboard_token=TOKEN))
                run = asyncio.create_task(runner.run())

                async def started() -> Any:
                    assert not run.done(), run.exception()
                    services = runner.services
                    return services is not None and services.dashboard is not None and \
                        services.dashboard.url

                url = await _wait(started, 60, "dashboard started")
                async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                    events: list[float] = []

                    async def listen() -> None:
                        async with client.stream("GET", "/api/events") as stream:
                            async for line in stream.aiter_lines():
                                if line.startswith("event: change"):
                                    events.append(time.monotonic())

                    listener = asyncio.create_task(listen())

                    async def journal_fill() -> Any:
                        return journal_rows(journal, "SELECT order_id FROM executions "
                                            "WHERE status = 'filled'")

                    async def dashboard_fill() -> Any:
                        page = (await client.get("/api/trades")).json()["trades"]
                        return [t for t in page if t["status"] == "filled"]

                    await _wait(journal_fill, 60, "first fill in the journal")
                    seen_in_journal = time.monotonic()
                    shown = await _wait(dashboard_fill, 10, "fill on the dashboard")
                    shown_after = time.monotonic() - seen_in_journal
                    overview = (await client.get("/api/overview")).json()
                    # The kill switch, pressed on the dashboard (the token is required).
                    refused = await client.post("/api/kill", json={"engaged": True})
                    pressed = await client.post("/api/kill", json={"engaged": True},
                                                headers={"X-Updown-Token": TOKEN})
                    killed_at = time.time()
                    killed_orders = len(journal_rows(journal, "SELECT 1 FROM order_intents"))
                    after = (await client.get("/api/overview")).json()
                    page = (await client.get("/")).text
                    if CHROMIUM.exists():  # the live overview as a person sees it
                        shot = tmp_path / "dashboard_live_overview.png"
                        dom = await asyncio.to_thread(chromium, url, shot, dump_dom=True)
                        keep_screenshot(shot)
                        assert 'id="kill-state"' in dom
                        assert "ON: no new order" in dom
                    listener.cancel()
                report = await run
    print(f"fill shown on the dashboard {shown_after:.3f} s after it was journaled")
    assert shown[0]["market_id"].startswith("btc-updown-3s-")
    assert events  # the event stream announced changes
    assert overview["source"] == "live run"
    assert overview["markets"][0]["name"] == "btc-3s"
    assert {f["feed"] for f in overview["markets"][0]["feeds"]} == {"binance", "rtds", "clob"}
    assert any(f["last_message_age_s"] is not None for f in overview["markets"][0]["feeds"])
    assert refused.status_code == 403
    assert pressed.status_code == 200
    assert pressed.json()["engaged"] is True
    assert after["kill_switch"]["engaged"] is True
    assert "ON: no new order" in page
    assert (tmp_path / "STOP").exists()
    # Trading went on after the kill (decisions in later windows) but no order was filled:
    # every decision after it was refused by the kill switch rule.
    later = journal_rows(journal, "SELECT rules_fired_json FROM decisions WHERE as_of > ?",
                         killed_at + 0.5)
    assert later
    assert all("kill_switch" in r["rules_fired_json"] for r in later)
    filled_after = journal_rows(journal, "SELECT 1 FROM order_intents i JOIN executions e ON "
                                "e.order_id = i.order_id WHERE e.status = 'filled' AND "
                                "i.created_ts > ?", killed_at + 0.5)
    assert filled_after == []
    assert len(journal_rows(journal, "SELECT 1 FROM order_intents")) <= killed_orders + 1
    # The notification receiver was down the whole time: fills happened all the same.
    assert report.counters["totals"]["fills"] >= 1
    assert report.windows == 7
    for body in (str(overview), str(after), page):
        assert CANARY_KEY not in body
        assert CANARY_OPENAI not in body
        assert TOKEN not in body
