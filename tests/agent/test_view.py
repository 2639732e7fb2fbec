"""The terminal views of ``updown run``: the replay view (agent/view.py) and the live dashboard
(agent/dashboard.py) show the running P&L, the open position, won/lost per settled window and
windows as UTC times of day; with the view on a terminal, log lines go to LOG_FILE, not over
the view; a daily limit that ends trading is said in one line."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from agent.dashboard import render as render_dashboard
from agent.limit_notice import LimitWatch
from agent.view import ReplayView
from core.guard import GuardLimits
from core.records import LedgerView, RuleHit, Verdict
from core.settings import Settings
from evals.replay_runner import DecisionEvent, ReplayRunner, SettlementEvent
from feeds.recorded import RecordedMarket, load_dataset
from feeds.replay import ReplayFeed
from tools.journal import Journal

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ROOT / "data" / "recorded" / "pm15m_20251226_coinbase1m"
UPDOWN = str(Path(sys.executable).with_name("updown"))
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def _text(renderable: Any, width: int = 130) -> str:
    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def _settings(**overrides: object) -> Settings:
    return Settings(_env_file=None).model_copy(update=overrides)  # type: ignore[call-arg]


def test_replay_view_shows_pnl_positions_results_and_times(tmp_path: Path) -> None:
    """Six real windows of the embedded recording under a cap of 3 orders a day."""
    feed = ReplayFeed(load_dataset(EMBEDDED), cadence_s=30.0)
    markets = feed.markets[:6]
    settings = _settings(max_orders_per_day=3)
    view = ReplayView(markets, dataset="embedded", log_file=tmp_path / "updown.log", rows=10)
    watch = LimitWatch([m.start_ts for m in markets], GuardLimits.for_replay(settings))
    fills: list[Any] = []
    settlements: list[SettlementEvent] = []

    def on_decision(event: DecisionEvent) -> None:
        view.update(event)
        execution = event.state.get("execution")
        if execution is not None and execution.status == "filled":
            fills.append(execution)
        stop = watch.observe(event.state["verdict"], window_index=event.window_index,
                             as_of=event.state["snapshot"].as_of)
        if stop is not None:
            view.notice(stop.sentence)

    def on_settlement(event: SettlementEvent) -> None:
        settlements.append(event)
        view.settle(event)

    with Journal(tmp_path / "j.db") as journal:
        report = ReplayRunner(feed, settings, journal=journal, decision_log=None,
                              cadence_s=30.0, use_llm=False, markets=markets,
                              observer=on_decision, on_settlement=on_settlement).run()
    text = _text(view.render())
    summary = report.summary
    assert summary.filled == len(fills) == 3
    # Running P&L and won/lost as the journal has them after the last settlement.
    assert f"P&L {summary.pnl_usd:+,.2f} USDC" in text
    assert f"won {summary.wins}  lost {summary.losses}" in text
    assert summary.wins + summary.losses == 3
    # Windows as UTC times of day (the recording is 2025-12-26 from 10:30), never epochs.
    assert "2025-12-26 (times UTC)" in text
    assert all(label in text for label in ("10:30", "10:45", "11:00", "11:15", "11:45"))
    assert str(int(markets[0].start_ts)) not in text
    # Each bought position (side, shares @ price = cost) and its result.
    for ex in fills:
        assert f"{ex.side} {ex.shares:.2f} @ {ex.avg_price:.2f} = " \
               f"${ex.notional_usd + ex.fee_usd:,.2f}" in text
    first = next(line for line in text.splitlines() if line.startswith("10:30"))
    assert "down 32.60 @ 0.92 = $29.99" in first  # the recording's first window
    assert "won +2.61" in first
    for event in settlements:
        if event.positions:
            pnl = sum(p.pnl_usd for p in event.positions)
            assert f"{'won' if pnl > 0 else 'lost'} {pnl:+,.2f}" in text
    assert text.count("no trade") == 3  # windows 4-6: the cap refused their proposals
    # The limit, once, at the window it began refusing, and where the log lines go.
    assert text.count("trading stopped") == 1
    assert ("trading stopped at window 4 of 6 (11:15 UTC): daily order cap reached "
            "(MAX_ORDERS_PER_DAY=3); the 6 recorded windows fall on one UTC day — run with "
            "MAX_ORDERS_PER_DAY=6 to trade them all") in " ".join(text.split())
    assert f"log: {tmp_path / 'updown.log'}" in text


def test_labels_carry_the_date_when_the_windows_span_days() -> None:
    day = 1766707200.0  # 2025-12-26 00:00 UTC
    markets = [RecordedMarket(f"btc-updown-15m-{int(s)}", "BTC", s, s + 900.0)
               for s in (day - 900.0, day)]
    view = ReplayView(markets)
    for m in markets:
        view.settle(SettlementEvent(m, "up", True, m.end_ts, ()))
    text = _text(view.render())
    assert "12-25 23:45" in text
    assert "12-26 00:00" in text
    assert "went up" in text


def _refusal(*rules: str, ledger: LedgerView | None = None) -> Verdict:
    return Verdict(approved=False, rules_fired=tuple(RuleHit(rule=r, detail="") for r in rules),
                   ledger=ledger)


def test_limit_watch_tells_each_stop_once_and_rearms_after_trading_resumes() -> None:
    day = 1766707200.0
    starts = [day - 1800.0, day - 900.0, day, day + 900.0, day + 1800.0]
    watch = LimitWatch(starts, GuardLimits(max_orders_per_day=1))
    assert watch.observe(_refusal("confidence"), window_index=0, as_of=starts[0]) is None
    stop = watch.observe(_refusal("economics", "daily_orders"), window_index=1, as_of=starts[1])
    assert stop is not None
    assert stop.window_number == 2
    assert stop.sentence == (
        "trading stopped at window 2 of 5 (12-25 23:45 UTC): daily order cap reached "
        "(MAX_ORDERS_PER_DAY=1); the 5 recorded windows fall on 2 UTC days (at most 3 on one) "
        "— run with MAX_ORDERS_PER_DAY=3 to trade them all")
    assert watch.observe(_refusal("daily_orders"), window_index=1, as_of=starts[1]) is None
    assert watch.observe(Verdict(approved=True), window_index=2, as_of=starts[2]) is None
    ledger = LedgerView(consecutive_losses=4, last_loss_ts=day + 1800.0)
    paused = watch.observe(_refusal("cooldown", ledger=ledger), window_index=4,
                           as_of=starts[4])
    assert paused is not None
    assert paused.sentence == (
        "trading paused at window 5 of 5 (12-26 00:30 UTC): 4 losses in a row "
        "(MAX_CONSECUTIVE_LOSSES=4), cooling down for LOSS_COOLDOWN_S=3600 until "
        "12-26 01:30 UTC")
    assert [s.rule for s in watch.stops] == ["daily_orders", "cooldown"]


def test_dashboard_shows_pnl_position_results_and_times() -> None:
    start = 1766745000.0  # 2025-12-26 10:30 UTC
    doc = {"mode": "paper", "run_id": "0123456789abcdef", "account": "paper",
           "started_ts": start - 1800.0, "as_of": start + 300.0,
           "counters": {"totals": {"windows": 3, "decisions": 9, "orders": 3, "fills": 3,
                                   "settled": 2, "pnl_usd": -17.39}},
           "settled": {"wins": 1, "losses": 1, "recent": [
               {"market": "btc-15m", "market_id": "btc-updown-15m-1766743200",
                "window_start": start - 1800.0, "side": "down", "outcome": "down",
                "won": True, "pnl_usd": 12.61},
               {"market": "btc-15m", "market_id": "btc-updown-15m-1766744100",
                "window_start": start - 900.0, "side": "up", "outcome": "down",
                "won": False, "pnl_usd": -30.0}]},
           "markets": {"btc-15m": {
               "market_id": "btc-updown-15m-1766745000", "window_start": start,
               "window_end": start + 900.0, "time_to_close_s": 600.0, "price": 88_700.0,
               "price_to_beat": 88_650.0, "price_to_beat_verified": True, "entered": True,
               "position": {"side": "up", "shares": 42.25, "price": 0.71, "cost_usd": 30.0},
               "window_decisions": 2,
               "last_decision": {"decision": "up", "confidence": 74, "approved": False,
                                 "rules": ["daily_orders"], "execution": None}}}}
    text = _text(render_dashboard(doc, log_file=Path("logs/updown.log"),
                                  limits=GuardLimits(max_orders_per_day=24)), width=200)
    assert "P&L -17.39 USDC   won 1  lost 1" in text
    assert "10:30" in text
    assert "1766745000" not in text
    assert "up 42.25 @ 0.71 = $30.00" in text
    assert "settled: 10:15 btc-15m up lost -30.00   10:00 btc-15m down won +12.61" in text
    assert "log: logs/updown.log" in text
    assert "btc-15m: trading stopped, daily order cap reached (MAX_ORDERS_PER_DAY=24)" in text


def _run_in_pty(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run with stdin/stdout/stderr on a pseudo-terminal (a person's terminal, 140x45), and
    everything it wrote there, escape sequences removed."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 45, 140, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
                            close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break  # exited, and nothing more to read
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # every writer closed: the process is done
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        code = proc.wait(timeout=300)
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminal: Linux")
def test_on_a_terminal_the_log_goes_to_the_file_not_over_the_view(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "run.log"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "POLYMARKET_", "LANGSMITH_", "LANGCHAIN_"))}
    env.update(LOG_FILE=str(log_file), TERM="xterm-256color", COLUMNS="140", LINES="45")
    code, screen = _run_in_pty(
        [UPDOWN, "run", "--replay", str(EMBEDDED), "--journal", str(tmp_path / "j.db"),
         "--decision-log", str(tmp_path / "d.jsonl")], env, tmp_path)
    assert code == 0, screen[-3000:]
    # The view and the summary reached the terminal ...
    assert "P&L +6.51 USDC" in screen
    assert "won 18  lost 6" in screen
    assert "replay summary" in screen
    assert "trading stopped at window 25 of 32 (16:30 UTC)" in screen
    assert f"log: {log_file}" in screen
    # ... and not one log line did: they are all in the file.
    for needle in ("decision_id=", "rules_fired=", "[info", "[warning", "settlement "):
        assert needle not in screen, needle
    logged = log_file.read_text()
    assert "\x1b[" not in logged  # no colour codes in a file
    decisions = sum(1 for line in logged.splitlines() if " decision " in line
                    and "decision_id=" in line)
    assert decisions == 366
    assert "trading_stopped" in logged
    assert "settlement" in logged
