"""The dashboard over the journal of the embedded replay (``updown run --replay
data/recorded/pm15m_20251226_coinbase1m --no-view --journal J``): real figures on every page
and API answer, equal to the journal's own (``Journal.summary`` and the ``profit`` read model
behind ``updown profit``), rendered by headless Chromium, and no secret anywhere.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from dashkit import (
    CANARY_KEY,
    CANARY_OPENAI,
    CHROMIUM,
    ROOT,
    UPDOWN,
    build_replay_journal,
    chromium,
    keep_screenshot,
    served,
)

from agent.web.data import DashboardData, Limits
from tools.journal import Journal
from tools.journal.reads import profit

pytestmark = pytest.mark.server

PAGES = ("/", "/equity", "/decisions", "/trades", "/calibration")
APIS = ("/api/overview", "/api/equity", "/api/decisions", "/api/trades", "/api/calibration")


@pytest.fixture(scope="module")
def replay_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("replay")
    path = tmp / "journal.db"
    done = build_replay_journal(path, tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return path


@pytest.fixture(scope="module")
def figures(replay_journal: Path) -> dict[str, Any]:
    with Journal(replay_journal) as jr, jr.reading() as conn:
        run_id = conn.execute("SELECT run_id FROM runs").fetchone()[0]
        total = profit(conn, by="day").total
        decisions = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    with Journal(replay_journal) as jr:
        summary = jr.summary(run_id=run_id)
    return {"run_id": run_id, "pnl": total.pnl_usd, "trades": total.trades,
            "decisions": decisions, "summary": summary}


@pytest.fixture
def dashboard(replay_journal: Path, tmp_path: Path) -> Iterator[Any]:
    data = DashboardData(replay_journal, stop_file=tmp_path / "STOP",
                         limits=Limits(daily_loss_limit_usd=250.0, max_orders_per_day=24))
    with served(data) as server:
        yield server


def test_api_figures_equal_the_journals(dashboard: Any, figures: dict[str, Any]) -> None:
    summary = figures["summary"]
    # The run's settled P&L after fees, the same from both journal reads.
    assert figures["pnl"] == summary.pnl_usd
    assert figures["trades"] == summary.filled > 0
    with httpx.Client(base_url=dashboard.url) as client:
        overview = client.get("/api/overview").json()
        equity = client.get("/api/equity").json()
        first = client.get("/api/decisions", params={"limit": 50}).json()
        second = client.get("/api/decisions", params={"limit": 50,
                                                      "before": first["next"]}).json()
        trades = client.get("/api/trades", params={"limit": 500}).json()
        calibration = client.get("/api/calibration").json()
        detail = client.get("/api/decisions/" + quote(first["decisions"][0]["decision_id"],
                                                      safe="")).json()
        missing = client.get("/api/decisions/nope")
        bad = client.get("/api/decisions", params={"limit": "many"})
    assert overview["totals"]["pnl_usd"] == figures["pnl"]
    assert overview["totals"]["trades"] == summary.filled
    assert overview["totals"]["decisions"] == figures["decisions"] == summary.decisions
    assert overview["totals"]["wins"] == summary.wins
    assert overview["totals"]["losses"] == summary.losses
    # Every trade of the replay is on 2025-12-26 (UTC): today's P&L is the whole run's.
    assert overview["today"]["pnl_usd"] == figures["pnl"]
    assert overview["today"]["orders"] == summary.filled
    with sqlite3.connect(replay_journal_path(dashboard)) as conn:
        redemptions = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = "
                                   "'redemptions'").fetchone()[0]
    # n/a (with a note) on a journal that records no redemptions; a figure where it does.
    assert (overview["unredeemed"]["usd"] is None) == (redemptions == 0)
    assert overview["unredeemed"]["note"]
    assert overview["provisional"]["count"] == 0
    assert overview["provisional"]["note"]
    assert overview["kill_switch"]["engaged"] is False
    # The equity curve ends at the settled P&L; one point per settled position.
    assert equity["points"][-1]["equity_usd"] == pytest.approx(figures["pnl"], abs=1e-6)
    assert equity["settled"] == summary.wins + summary.losses
    # Keyset pages: 50 newest, then the next 50, no overlap, newest first throughout.
    ids = [d["decision_id"] for d in first["decisions"] + second["decisions"]]
    assert len(ids) == len(set(ids)) == 100
    times = [d["as_of"] for d in first["decisions"] + second["decisions"]]
    assert times == sorted(times, reverse=True)
    approved = [d for d in first["decisions"] + second["decisions"] if d["approved"]]
    rejected = [d for d in first["decisions"] + second["decisions"] if d["verdict"] == "rejected"]
    assert all(d["fair_up"] is not None for d in approved)
    assert all(d["rules_fired"] for d in rejected)
    assert all(d["reasoning"] for d in first["decisions"])
    assert len(trades["trades"]) == summary.filled
    assert sum(t["pnl_usd"] for t in trades["trades"]) == pytest.approx(figures["pnl"], abs=1e-6)
    assert calibration["windows"] == summary.wins + summary.losses
    assert sum(b["count"] for b in calibration["agent"]) == calibration["decisions"] > 0
    assert calibration["agent_brier"] is not None
    # The detail holds every node's output.
    assert {"snapshot", "technical", "fair_value", "sentiment", "risk", "trader",
            "verdict"} <= set(detail["record"])
    assert missing.status_code == 404
    assert bad.status_code == 400
    assert "limit" in bad.json()["error"]


def test_pages_hold_the_figures(dashboard: Any, figures: dict[str, Any]) -> None:
    pnl = f"{figures['pnl']:+.2f}"
    with httpx.Client(base_url=dashboard.url) as client:
        overview = client.get("/").text
        equity = client.get("/equity").text
        decisions = client.get("/decisions").text
        first_id = client.get("/api/decisions", params={"limit": 1}).json()[
            "decisions"][0]["decision_id"]
        detail = client.get("/decisions/" + quote(first_id, safe="")).text
    assert re.search(rf'id=total-pnl[^>]*>{re.escape(pnl)}<', overview)
    assert re.search(rf'id=today-pnl[^>]*>{re.escape(pnl)}<', overview)
    assert f'id=decision-count>{figures["decisions"]}<' in overview
    assert re.search(rf'id=equity-pnl[^>]*>{re.escape(pnl)}<', equity)
    assert '<svg class="chart" id="equity-chart"' in equity
    assert decisions.count('<a href="/decisions/') == 50
    assert 'id=older href="/decisions?limit=50&amp;before=' in decisions
    for node in ("snapshot", "fair_value", "trader", "verdict"):
        assert f'id="node-{node}"' in detail


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium not installed at "
                    "/usr/bin/chromium (CI installs it via .ci/run)")
def test_pages_render_in_headless_chromium(dashboard: Any, figures: dict[str, Any],
                                           tmp_path: Path) -> None:
    from matplotlib.image import imread

    pnl = f"{figures['pnl']:+.2f}"
    shots = {}
    for path, name in (("/", "overview"), ("/equity", "equity"), ("/decisions", "decisions"),
                       ("/calibration", "calibration")):
        out = tmp_path / f"dashboard_{name}.png"
        dom = chromium(dashboard.url.rstrip("/") + path, out, dump_dom=True)
        keep_screenshot(out)
        shots[name] = (out, dom)
    assert re.search(rf'id="total-pnl"[^>]*>{re.escape(pnl)}<', shots["overview"][1])
    assert re.search(rf'id="equity-pnl"[^>]*>{re.escape(pnl)}<', shots["equity"][1])
    assert shots["decisions"][1].count('href="/decisions/') == 50
    # The pictures hold the page, not a blank or an error: the equity line's blue and the
    # P&L's green are drawn, and the decisions table fills the window with text.
    equity = imread(shots["equity"][0])[..., :3]
    blue = ((abs(equity[..., 0] - 0x1F / 255) < 0.08) & (abs(equity[..., 1] - 0x6F / 255) < 0.08)
            & (abs(equity[..., 2] - 0xD1 / 255) < 0.08)).sum()
    assert blue > 500
    overview = imread(shots["overview"][0])[..., :3]
    green = ((abs(overview[..., 0] - 0x13 / 255) < 0.08)
             & (abs(overview[..., 1] - 0x80 / 255) < 0.08)
             & (abs(overview[..., 2] - 0x3B / 255) < 0.08)).sum()
    assert green > 100  # the positive P&L figures
    decisions = imread(shots["decisions"][0])[..., :3]
    assert (decisions.mean(axis=2) < 0.5).mean() > 0.03  # dark text over much of the page


def replay_journal_path(server: Any) -> Path:
    return Path(server.web.data.journal_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_updown_dashboard_serves_without_any_secret(replay_journal: Path, tmp_path: Path
                                                    ) -> None:
    """The command, with canary secrets in its settings: every page and answer is free of
    them, and of the kill switch token."""
    port = _free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "STOP_FILE": str(tmp_path / "STOP"),
           "POLYMARKET_PRIVATE_KEY": CANARY_KEY, "OPENAI_API_KEY": CANARY_OPENAI,
           "NOTIFY_URLS": f"json://127.0.0.1:9/{CANARY_OPENAI}"}
    proc = subprocess.Popen([UPDOWN, "dashboard", "--journal", str(replay_journal), "--port",
                             str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/api/overview", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "dashboard did not start"
                time.sleep(0.1)
        with httpx.Client(base_url=base) as client:
            bodies = [client.get(p).text for p in (*PAGES, *APIS,
                                                   "/static/dashboard.js",
                                                   "/static/dashboard.css")]
            ids = [d["decision_id"] for d in client.get(
                "/api/decisions", params={"limit": 500}).json()["decisions"]]
            bodies += [client.get("/decisions/" + quote(i, safe="")).text for i in ids[:40]]
            bodies += [client.get("/api/decisions/" + quote(i, safe="")).text for i in ids[:40]]
            with client.stream("GET", "/api/events") as events:
                first = next(events.iter_lines())
                bodies.append(first)
            forged = client.post("/api/kill", json={"engaged": True},
                                 headers={"X-Updown-Token": "guess"})
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, -15), err[-2000:]
    token = re.search(r"kill switch token: (\S+)\)", out)
    assert token, out + err
    assert forged.status_code == 403
    assert not (tmp_path / "STOP").exists()
    for body in bodies:
        assert CANARY_KEY not in body
        assert CANARY_OPENAI not in body
        assert token.group(1) not in body
    assert len(bodies) > 80


def test_a_missing_journal_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([UPDOWN, "dashboard", "--journal", str(tmp_path / "nope.db")],
                          cwd=ROOT, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: journal not found: {tmp_path}/nope.db"]
    assert not (tmp_path / "nope.db").exists()


def test_reads_are_read_only(replay_journal: Path, tmp_path: Path) -> None:
    data = DashboardData(replay_journal, stop_file=tmp_path / "STOP",
                         limits=Limits(daily_loss_limit_usd=250.0, max_orders_per_day=24))
    with data.connect() as conn, pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM decisions")
