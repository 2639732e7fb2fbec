"""``updown run`` on live feeds (agent/autorun.py) against loopback fakes.

* with nothing to connect to it fails with one line naming the setting and endpoint;
* against the fakes it trades in paper mode: an entry journaled and settled, each window a
  checkpointed thread, a status file;
* SIGKILL after an entry and a restart in the same window: no second entry;
* several markets at once, each with its own feed and series.

Windows are seconds long (synthetic series ``btc-updown-<n>s``); prices are synthetic.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import time
from pathlib import Path

import pytest
from autorunkit import (
    UPDOWN,
    MultiSeriesHttp,
    SymbolBinance,
    checkpoint_state,
    journal_rows,
    read_status,
    runner_env,
    wait_until,
)
from feedfakes import FakeClobMarket, FakeRtds, ThreadedVenue, closed_port, venue_env

from agent.autorun import AutoRunner, RunOptions
from agent.live import TradingMode
from core.settings import Settings
from tools.journal import Journal, SettledPosition
from tools.polymarket.live_feed import FeedEndpoints
from tools.polymarket.markets import MarketSpecError, endpoints_for, parse_market, parse_markets

pytestmark = pytest.mark.server


def _run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float
             ) -> subprocess.CompletedProcess[str]:
    # The timeout only stops a hung child; it is not a speed assertion.
    return subprocess.run([UPDOWN, "run", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


# --- configuration ---------------------------------------------------------------------------


def test_market_specs_parse_into_series() -> None:
    specs = parse_markets("btc-15m, eth-5m,sol-15m,xrp-5m")
    assert [s.series.slug_prefix for s in specs] == [
        "btc-updown-15m", "eth-updown-5m", "sol-updown-15m", "xrp-updown-5m"]
    assert [s.series.length_s for s in specs] == [900, 300, 900, 300]
    assert specs[0].series.crypto_price_variant == "fifteen"
    assert specs[1].series.crypto_price_variant is None
    assert specs[1].series.slug(specs[1].series.start_at(1_800_000_123)) == \
        "eth-updown-5m-1800000000"
    short = parse_market("btc-4s:synthetic")
    assert (short.name, short.series.length_s, short.series.crypto_price_variant) == \
        ("btc-4s", 4, "synthetic")


@pytest.mark.parametrize(("text", "message"), [
    ("doge-5m", "asset must be one of"),
    ("btc-15", "not <asset>-<length>"),
    ("btc-15m,btc-15m", "listed twice"),
    ("", "no market given"),
])
def test_bad_market_specs_are_named(text: str, message: str) -> None:
    with pytest.raises(MarketSpecError, match=message):
        parse_markets(text)


def test_each_market_streams_its_own_symbol() -> None:
    base = FeedEndpoints(binance_ws="wss://stream.binance.com:9443/ws/btcusdt@trade",
                         binance_rest="r", rtds="t", clob_ws="c", clob_rest="cr", gamma="g",
                         crypto_price="p")
    assert endpoints_for(parse_market("eth-5m"), base).binance_ws == \
        "wss://stream.binance.com:9443/ws/ethusdt@trade"
    assert endpoints_for(parse_market("btc-15m"), base) == base


def test_bad_markets_option_is_one_line(tmp_path: Path) -> None:
    with closed_port() as port:
        url = f"http://127.0.0.1:{port}"
        env = runner_env({"POLYMARKET_GAMMA_URL": url}, tmp_path)
        done = _run_cli(["--markets", "doge-5m", "--no-view"], env, tmp_path, 30)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --markets: market 'doge-5m': asset must be one of btc, eth, sol, xrp"]
    assert not (tmp_path / "journal.db").exists()  # nothing written


# --- must show: no network -------------------------------------------------------------------


def test_no_network_fails_fast_with_one_line(tmp_path: Path) -> None:
    with closed_port() as port:
        http, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        env = runner_env({
            "BINANCE_WS_URL": ws + "/ws/btcusdt@trade", "BINANCE_REST_URL": http,
            "POLYMARKET_RTDS_URL": ws, "POLYMARKET_CLOB_WS_URL": ws + "/ws/market",
            "POLYMARKET_GAMMA_URL": http, "POLYMARKET_CLOB_URL": http,
            "POLYMARKET_CRYPTO_PRICE_URL": http + "/api/crypto/crypto-price",
        }, tmp_path)
        done = _run_cli(["--no-view"], env, tmp_path, 10)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: cannot reach ")
    assert f"127.0.0.1:{port}" in lines[0]
    assert any(name in lines[0] for name in FeedEndpoints.SETTING.values())
    assert "Traceback" not in done.stderr + done.stdout


# --- must show: paper trading against loopback feeds -----------------------------------------


def test_paper_run_enters_settles_and_checkpoints(tmp_path: Path) -> None:
    length = 4
    with ThreadedVenue(length_s=length, prefix=f"btc-updown-{length}s") as venue:
        # Synthetic: every window opens at 99,000 and closes at 99,500 (Up wins); the fake
        # trades around 100,000, so Up is worth far more than its 0.56 ask.
        venue.http.default_open_price = 99_000.0
        now = math.floor(time.time() / length) * length
        for start in range(now - length, now + 40 * length, length):
            venue.http.close_prices[start] = 99_500.0
        env = runner_env(venue.env(), tmp_path, MARKETS=f"btc-{length}s:synthetic",
                         STATUS_PORT="0")
        done = _run_cli(["--windows", "2", "--no-view"], env, tmp_path, 90)
    assert done.returncode == 0, done.stderr[-3000:]
    journal = tmp_path / "journal.db"
    filled = journal_rows(journal, "SELECT i.market_id, e.status FROM order_intents i JOIN "
                                   "executions e ON e.order_id = i.order_id WHERE "
                                   "i.account = 'paper'")
    assert filled
    assert all(r["status"] == "filled" for r in filled)
    markets = [r["market_id"] for r in filled]
    assert len(markets) == len(set(markets))  # one entry per window
    settled = journal_rows(journal, "SELECT market_id, outcome, pnl_usd, outcome_verified "
                                    "FROM settlements WHERE account = 'paper'")
    assert {r["market_id"] for r in settled} == set(markets)
    assert all(r["outcome"] == "up" for r in settled)
    assert all(r["pnl_usd"] > 0 for r in settled)
    assert all(r["outcome_verified"] for r in settled)
    # Every win is redeemed after its settlement, exactly once (paper: a ledger entry).
    redeemed = journal_rows(journal, "SELECT market_id, state, attempts, redeemer"
                                     " FROM redemptions WHERE account = 'paper'")
    assert sorted(r["market_id"] for r in redeemed) == sorted(markets)
    assert {(r["state"], r["attempts"], r["redeemer"]) for r in redeemed} == {
        ("confirmed", 1, "paper")}
    # Each window is a LangGraph thread whose last state holds the entry.
    state = asyncio.run(checkpoint_state(tmp_path / "checkpoints.db", markets[0]))
    assert state["execution"].status == "filled"
    assert state["execution"].market_id == markets[0]
    assert state["snapshot"].market_id == markets[0]
    # The window can be read back later (python -m agent.threads).
    from agent.threads import list_windows, window_decisions

    assert set(markets) <= set(asyncio.run(list_windows(tmp_path / "checkpoints.db")))
    decisions = asyncio.run(window_decisions(tmp_path / "checkpoints.db", markets[0]))
    assert decisions[-1]["execution"] == "filled"
    assert all(d["decision_id"].startswith(markets[0] + "@") for d in decisions)
    # Status file: the counters of the run, written atomically (valid JSON at the end).
    status = read_status(tmp_path / "status.json")
    assert status is not None
    assert status["stopped"] is True
    totals = status["counters"]["totals"]
    assert totals["fills"] == len(markets)
    assert totals["settled"] == len(markets)
    assert totals["decisions"] >= len(markets)
    assert totals["pnl_usd"] > 0
    # Structured JSON logs: every stderr line is one JSON event.
    events = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    names = {e["event"] for e in events}
    assert {"autorun_start", "window_open", "window_price_to_beat", "decision", "settlement",
            "autorun_done"} <= names


# --- must show: restart mid-window -----------------------------------------------------------


def test_sigkill_after_entry_then_restart_makes_no_second_entry(tmp_path: Path) -> None:
    import autorun_driver
    from livekit import fork_server

    length = 30
    prefix = f"btc-updown-{length}s"
    with ThreadedVenue(length_s=length, prefix=prefix) as venue:
        # Only the chosen window has a price to beat, so the entry happens there, early
        # enough to leave room for the kill and the restart inside the same window.
        now = time.time()
        start = math.floor(now / length) * length
        if now - start > 8:
            start += length
        market_id = f"{prefix}-{start}"
        venue.http.open_prices[start] = 99_000.0
        ctx = fork_server()
        argv = ["run", "--no-view"]
        env1 = runner_env(venue.env(), tmp_path, MARKETS=f"btc-{length}s:synthetic",
                          STATUS_PATH=str(tmp_path / "status1.json"))
        first = ctx.Process(target=autorun_driver.run,
                            args=(argv, env1, str(tmp_path / "run1.log"), str(tmp_path)))
        first.start()
        journal = tmp_path / "journal.db"

        def intents() -> list[str]:
            return [r["order_id"] for r in journal_rows(
                journal, "SELECT order_id FROM order_intents WHERE market_id = ?", market_id)]

        try:
            wait_until(intents, 2 * length + 20, "first entry")
        finally:
            first.kill()  # SIGKILL: no clean-up, no finally blocks in the child
            first.join(10)
        assert first.exitcode == -9
        assert len(intents()) == 1

        env2 = dict(env1, STATUS_PATH=str(tmp_path / "status2.json"))
        second = ctx.Process(target=autorun_driver.run,
                             args=(argv, env2, str(tmp_path / "run2.log"), str(tmp_path)))
        second.start()
        try:
            status = wait_until(
                lambda: (s := read_status(tmp_path / "status2.json")) is not None
                and s["markets"][f"btc-{length}s"]["market_id"] == market_id and s,
                length, "restart in the same window")
            view = status["markets"][f"btc-{length}s"]
            run2 = status["run_id"]
            # Give the restarted runner several decision ticks in the window.
            time.sleep(2.0)
        finally:
            second.terminate()  # SIGTERM: graceful stop
            second.join(30)
        log2 = (tmp_path / "run2.log").read_text()
    assert second.exitcode == 0, log2[-3000:]
    assert view["entered"] is True
    assert "journal" in view["resumed_from"]
    assert len(intents()) == 1  # still the one entry
    assert journal_rows(journal, "SELECT 1 FROM decisions WHERE run_id = ? AND market_id = ?",
                        run2, market_id) == []
    assert '"window_resumed"' in log2
    assert "Traceback" not in log2


# --- several markets at once -----------------------------------------------------------------


async def test_two_markets_run_concurrently(tmp_path: Path) -> None:
    series = {"btc-updown-3s": 3, "eth-updown-4s": 4}
    with MultiSeriesHttp(series) as http:
        http.default_open_price = 1_000.0  # synthetic: far below both fakes' prices
        now = math.floor(time.time())
        for start in range(now - 12, now + 120):
            http.close_prices[start] = 2_000.0  # synthetic: Up wins every window
        reflector = RecordingReflector()
        async with (SymbolBinance(rate=20) as binance, FakeRtds(0.1) as rtds,
                    FakeClobMarket(0.1) as clob):
            env = venue_env(binance.url, rtds.url, clob.url, http)
            settings = Settings(_env_file=None, **{  # type: ignore[call-arg,arg-type]
                k.lower(): v for k, v in runner_env(env, tmp_path).items()
                if k not in ("PATH", "HOME")})
            specs = parse_markets("btc-3s:synthetic,eth-4s:synthetic")
            with Journal(tmp_path / "journal.db") as journal:
                runner = AutoRunner(
                    settings, specs, TradingMode("paper", False), journal=journal,
                    decision_log=None, checkpoint_path=tmp_path / "checkpoints.db",
                    # No cadence tick falls inside a window: every decision is a reaction
                    # to a move (any move, at this threshold).
                    options=RunOptions(cadence_s=60.0, large_move_pct=1e-9, windows=2,
                                       status_path=tmp_path / "status.json",
                                       settle_wait_s=10.0),
                    reflector=reflector)
                report = await runner.run()
                decided = {r["market_id"].rsplit("-", 1)[0] for r in journal_rows(
                    tmp_path / "journal.db", "SELECT market_id FROM decisions")}
    assert report.windows == 4
    totals = report.counters["totals"]
    assert totals["decisions"] > 0
    assert totals["large_move_decisions"] == totals["decisions"]
    assert decided == {"btc-updown-3s", "eth-updown-4s"}
    assert report.counters["markets"]["btc-3s"]["windows"] == 2
    assert report.counters["markets"]["eth-4s"]["windows"] == 2
    # Each feed streamed its own symbol.
    assert {runner.feeds["btc-3s"].symbol, runner.feeds["eth-4s"].symbol} == {"BTCUSDT",
                                                                                "ETHUSDT"}
    assert runner.feeds["eth-4s"].store.price is not None
    # Every settled entry reached the reflection hook, once.
    settled = [p.market_id for p in report_positions(tmp_path / "journal.db")]
    assert settled
    assert sorted(reflector.settled) == sorted(settled)
    assert report.unsettled == []


class RecordingReflector:
    """Stands in for tools.reflection.Reflector: records the settlement hook's positions."""

    def __init__(self) -> None:
        self.settled: list[str] = []

    async def on_settled(self, event: object, *, journal: object) -> list[object]:
        self.settled.extend(p.market_id for p in getattr(event, "positions", ()))
        return []

    def lessons_for(self, account: str, as_of: float) -> list[tuple[str, str]]:
        return []


def report_positions(journal: Path) -> list[SettledPosition]:
    with Journal(journal) as jr:
        return list(jr.settlements(account="paper"))


# --- observability ---------------------------------------------------------------------------


async def test_health_endpoint_serves_the_status_document() -> None:
    from agent.status import HealthServer

    document = {"run_id": "synthetic", "counters": {"totals": {"decisions": 3}}}
    server = HealthServer(0, lambda: document)
    port = await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.0\r\n\r\n")
        await writer.drain()
        raw = await reader.read()
        writer.close()
        missing_reader, missing_writer = await asyncio.open_connection("127.0.0.1", port)
        missing_writer.write(b"GET /secrets HTTP/1.0\r\n\r\n")
        missing = await missing_reader.read()
        missing_writer.close()
    finally:
        await server.aclose()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert json.loads(body) == document
    assert missing.startswith(b"HTTP/1.0 404")


def test_status_file_is_replaced_whole(tmp_path: Path) -> None:
    from agent.status import write_atomic

    path = tmp_path / "logs" / "status.json"
    write_atomic(path, {"n": 1})
    write_atomic(path, {"n": 2, "markets": {"btc-15m": {"entered": True}}})
    assert json.loads(path.read_text()) == {"n": 2, "markets": {"btc-15m": {"entered": True}}}
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]  # no temporary left


def test_dashboard_renders_a_status_document() -> None:
    from rich.console import Console

    from agent.dashboard import render

    doc = {"mode": "paper", "run_id": "0123456789abcdef", "account": "paper", "rss_kb": 200_000,
           "counters": {"totals": {"windows": 2, "decisions": 5, "orders": 1, "fills": 1,
                                   "settled": 1, "pnl_usd": 4.5, "llm_calls": 0,
                                   "llm_usd": 0.0}},
           "markets": {"btc-15m": {"market_id": "btc-updown-15m-1800000000",
                                   "window_start": 1_800_000_000.0,
                                   "time_to_close_s": 120.0, "price": 100_010.0,
                                   "price_to_beat": 100_000.0, "price_to_beat_verified": True,
                                   "entered": True, "resumed_from": "journal",
                                   "window_decisions": 3,
                                   "last_decision": {"decision": "up", "confidence": 80,
                                                     "approved": True, "rules": [],
                                                     "execution": "filled"},
                                   "price_age_s": 0.2, "reference_age_s": 0.5,
                                   "book_age_s": 1.0}}}
    console = Console(width=200, record=True)
    console.print(render(doc))
    text = console.export_text()
    assert "08:00" in text  # the window as a UTC time of day, not the slug's epoch
    assert "up 80% -> filled" in text
    assert "entered (journal)" in text
    assert "P&L +4.50 USDC" in text
