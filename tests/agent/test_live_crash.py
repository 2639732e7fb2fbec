"""SIGKILL at named points of the order path, then a restart: reconciliation runs first and
the invariants hold (one venue order per decision and per window, journal == venue ledger).

Each case runs ``tests/live_driver.py`` in real processes against a loopback fake venue that
outlives them: the first process is killed with SIGKILL at the point, the second one starts,
reconciles, tries the same window again (the guard refuses it) and then a new window.  The
processes come from a multiprocessing fork server that imported the project once, so a
"restart" costs milliseconds instead of seconds of imports; each is still its own process
with nothing of the killed one but the journal file and the venue.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import live_driver
import pytest
from eth_account import Account
from fakeclob import FakeClob, serve
from livekit import fork_server, journal_vs_venue

from tools.journal import Journal

pytestmark = pytest.mark.server

# point -> (POSTs the venue saw before the kill, signed order journaled, how the restart
#           resolves the order)
POINTS = {
    "after_sign": (0, False, "never_sent"),
    "before_post": (0, True, "not_found_at_venue"),
    "after_post": (1, True, "filled"),
    "before_journal_write": (1, True, "filled"),
}


@pytest.fixture(scope="module")
def processes() -> Any:
    return fork_server()


def run_driver(processes: Any, env: dict[str, str], events: Path, *markets: str,
               crash_at: str | None = None, extra: tuple[str, ...] = ()
               ) -> tuple[int | None, list[dict[str, Any]]]:
    """One driver process; returns its exit code and the events it wrote."""
    full = {**env, **({"UPDOWN_CRASH_AT": crash_at} if crash_at else {})}
    argv = [*extra, *(a for m in markets for a in ("--market", m))]
    events.unlink(missing_ok=True)
    proc = processes.Process(target=live_driver.run, args=(argv, full, str(events)))
    proc.start()
    proc.join(120)
    if proc.is_alive():
        proc.kill()
        pytest.fail("driver process hung")
    lines = events.read_text().splitlines() if events.exists() else []
    return proc.exitcode, [json.loads(line) for line in lines if line.startswith("{")]


def live_env(url: str, private_key: str, journal_path: Path, stop_file: Path
             ) -> dict[str, str]:
    """The driver's environment: live mode against the fake venue at ``url``, nothing of the
    caller's own venue, model or live settings."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("POLYMARKET_", "OPENAI_", "LIVE_", "UPDOWN_"))}
    return {**base, "POLYMARKET_MODE": "live", "POLYMARKET_PRIVATE_KEY": private_key,
            "POLYMARKET_CLOB_URL": url, "POLYMARKET_GAMMA_URL": url + "/gamma",
            "POLYMARKET_ORDER_TIMEOUT_S": "2", "LIVE_CONFIRM": "trade real money",
            "JOURNAL_PATH": str(journal_path), "STOP_FILE": str(stop_file),
            "LOG_LEVEL": "WARNING"}


@pytest.mark.parametrize("point", list(POINTS))
def test_sigkill_then_restart_reconciles_first(processes: Any, tmp_path: Path, point: str
                                               ) -> None:
    posts_at_kill, signed_at_kill, resolution = POINTS[point]
    key = Account.create()
    fake = FakeClob(address=key.address)
    now = time.time()
    first = fake.add_market("btc-updown-15m-crash1", window_start=now - 300.0)
    second = fake.add_market("btc-updown-15m-crash2", window_start=now - 300.0)
    journal_path = tmp_path / "journal.db"
    with serve(fake) as url:
        env = live_env(url, key.key.hex(), journal_path, tmp_path / "STOP")

        # 1. The process dies at the point, without any chance to clean up.
        events_file = tmp_path / "events.jsonl"
        code, events = run_driver(processes, env, events_file, first.slug, crash_at=point)
        assert code == -signal.SIGKILL, events
        assert events[-1] == {"event": "crashing", "at": point}
        assert fake.post_count() == posts_at_kill
        con = sqlite3.connect(journal_path)
        try:
            intents = con.execute("SELECT order_id, status FROM order_intents").fetchall()
            signed = con.execute("SELECT COUNT(*) FROM venue_orders").fetchone()[0]
            executions = con.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
        finally:
            con.close()
        assert [status for _, status in intents] == ["pending"]
        assert signed == int(signed_at_kill)
        assert executions == 0

        # 2. Restart: reconciliation is the first thing it does, then the same window is
        #    refused by the guard and a new window trades normally.
        requests_before = len(fake.requests)
        code, events = run_driver(processes, env, events_file, first.slug, second.slug)
        assert code == 0, events
        kinds = [e["event"] for e in events]
        assert kinds == ["reconciled", "order", "order"]
        [resolved] = events[0]["resolved"]
        assert resolved["order_id"] == intents[0][0]
        assert resolved["reason"].startswith(resolution) or resolution == "filled"
        assert resolved["status"] == ("filled" if resolution == "filled" else "killed")
        same_window, new_window = events[1], events[2]
        assert not same_window["approved"]
        assert "window" in same_window["rules"]
        assert new_window["status"] == "filled"
        # Nothing was posted before the reconciliation's lookups.
        restart = fake.requests[requests_before:]
        first_post = restart.index(("POST", "/order"))
        assert all(r != ("POST", "/order") for r in restart[:first_post])
        if signed_at_kill:
            assert any(p.startswith("/data/order/") for _, p in restart[:first_post])

    # 3. Invariants.
    with Journal(journal_path) as jr:
        [account] = [a for a in jr.accounts() if a.startswith("live:")]
        assert journal_vs_venue(jr, fake, account) == []
        assert jr.pending_intents(account=account, include_errors=True) == []
        assert next(r.outcome for r in jr.reconciliations(account=account)) in ("killed",
                                                                               "filled")
    assert fake.post_count() == posts_at_kill + 1
    assert max(fake.posts_per_hash().values()) == 1


# --- issue 16: SIGKILL while a resting (maker) order rests ----------------------------------


def test_sigkill_while_an_order_rests_then_restart_adopts_it_never_duplicates(
        processes: Any, tmp_path: Path) -> None:
    """Killed right after the post of a post-only GTD buy: the order rests at the venue and
    the journal says only "intent" (no answer recorded).  The restart finds it from the
    journal (its hash) and the venue, adopts it (its window is open), sends nothing for that
    window again, and rests normally in a new window."""
    key = Account.create()
    fake = FakeClob(address=key.address)
    now = time.time()
    first = fake.add_market("btc-updown-15m-rest1", window_start=now - 300.0)
    second = fake.add_market("btc-updown-15m-rest2", window_start=now - 300.0)
    journal_path = tmp_path / "journal.db"
    with serve(fake) as url:
        env = live_env(url, key.key.hex(), journal_path, tmp_path / "STOP")
        rest = ("--rest", "0.50", "--window-end", str(first.window_end))
        events_file = tmp_path / "events.jsonl"
        code, events = run_driver(processes, env, events_file, first.slug,
                                  crash_at="resting_after_post", extra=rest)
        assert code == -signal.SIGKILL, events
        assert events[-1] == {"event": "crashing", "at": "resting_after_post"}
        (live,) = fake.live_orders()
        con = sqlite3.connect(journal_path)
        try:
            rows = con.execute("SELECT order_id, status FROM resting_orders").fetchall()
        finally:
            con.close()
        assert [status for _, status in rows] == ["intent"]
        posts = fake.post_count()

        code, events = run_driver(processes, env, events_file, first.slug, second.slug,
                                  extra=rest)
        assert code == 0, events
        recovered = events[1]
        assert recovered["event"] == "recovered"
        assert recovered["adopted"] == [rows[0][0]]
        assert recovered["unresolved"] == []
        assert recovered["cancelled"] == []
        assert events[2] == {"event": "rest_skipped", "market_id": first.slug,
                             "resting": [rows[0][0]]}
        assert (events[3]["event"], events[3]["status"]) == ("rested", "resting")
        assert fake.post_count() == posts + 1  # only the new window's order
        assert max(fake.posts_per_hash().values()) == 1
        assert live in fake.live_orders()
        assert len(fake.live_orders()) == 2
        with Journal(journal_path) as journal:
            account = f"live:{key.address.lower()}"
            assert journal_vs_venue(journal, fake, account) == []
