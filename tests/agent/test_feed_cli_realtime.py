"""``updown stream`` and ``updown run`` against loopback venues speaking each reference
channel: keyless RTDS, and the authenticated realtime channel when the CLOB API credentials
are configured (``FakeRealtime``, which also relays Pyth-sourced prices that must not become
the reference).  Subprocesses, synthetic prices and credentials, no internet."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from autorunkit import UPDOWN, checkpoint_state, journal_rows, runner_env
from feedfakes import ThreadedVenue

pytestmark = pytest.mark.server
CHANNELS = ["rtds", "realtime"]


def _env(venue: ThreadedVenue, channel: str) -> dict[str, str]:
    env: dict[str, str] = venue.realtime_env() if channel == "realtime" else venue.env()
    return env


def _reference_values(venue: ThreadedVenue, channel: str) -> set[float]:
    values: set[float] = (set(venue.realtime.chainlink_sent) | set(venue.realtime.history_sent)
                          if channel == "realtime"
                          else {v for c in venue.rtds.connections for v in c.sent})
    return values


@pytest.mark.parametrize("channel", CHANNELS)
def test_stream_takes_the_reference_from_the_configured_channel(channel: str,
                                                                tmp_path: Path) -> None:
    with ThreadedVenue(binance_rate=20.0) as venue:
        start = int(time.time() // 900 * 900)
        for s in (start - 900, start, start + 900):
            venue.http.open_prices[s] = 100_000.0 + (s % 10_000) / 100  # synthetic
        env = runner_env(_env(venue, channel), tmp_path)
        done = subprocess.run([UPDOWN, "stream", "--json", "--duration", "3", "--interval",
                               "0.2"], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        sent = _reference_values(venue, channel)
        used, unused = ((venue.realtime, venue.rtds) if channel == "realtime"
                        else (venue.rtds, venue.realtime))
        assert used.connections
        assert not unused.connections
        pyth = set(venue.realtime.pyth_sent)
        twaps = set(venue.realtime.twap_sent)
    printed = [line["reference_price"] for line in lines if line["reference_price"] is not None]
    assert printed
    assert set(printed) <= sent  # every reference printed is a Chainlink value the venue sent
    assert not set(printed) & pyth
    last = lines[-1]
    assert last["settlement"] == "twap"  # the Gamma market's cryptoMarketConfig
    assert last["feeds"]["rtds"]["connected"] is True  # the reference feed, either channel
    if channel == "realtime":
        assert last["twap60"] in twaps
        first = [json.loads(m)["op"] for m in venue.realtime.connections[0].messages[:2]]
        assert first == ["auth", "subscribe"]
        assert venue.realtime.violations == []
    # The credentials never reach the output.
    assert "synthetic-pass" not in done.stdout + done.stderr


def test_stream_with_refused_credentials_is_one_line(tmp_path: Path) -> None:
    with ThreadedVenue(binance_rate=20.0) as venue:
        env = runner_env({**venue.realtime_env(), "POLYMARKET_API_SECRET": "wrong"}, tmp_path)
        done = subprocess.run([UPDOWN, "stream", "--duration", "2"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, check=False)
    lines = [line for line in done.stderr.splitlines()
             if line.strip() and not line.startswith("{")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1, done.stderr
    assert "refused the API credentials (auth_invalid)" in lines[0]
    assert "wrong" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("channel", CHANNELS)
def test_paper_run_on_each_reference_channel(channel: str, tmp_path: Path) -> None:
    length = 4
    with ThreadedVenue(length_s=length, prefix=f"btc-updown-{length}s") as venue:
        # Synthetic: every window opens at 99,000 and closes at 99,500 (Up wins).  The fake
        # channel's own TWAP at each start would be a second verified price to beat that
        # disagrees with this one (then the guard rightly refuses): keep it out of this run.
        venue.http.default_open_price = 99_000.0
        venue.realtime.twap = False
        now = math.floor(time.time() / length) * length
        for start in range(now - length, now + 40 * length, length):
            venue.http.close_prices[start] = 99_500.0
        env = runner_env(_env(venue, channel), tmp_path, MARKETS=f"btc-{length}s:synthetic",
                         STATUS_PORT="0")
        done = subprocess.run([UPDOWN, "run", "--windows", "2", "--no-view"], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=90,
                              check=False)
        sent = _reference_values(venue, channel)
        used = venue.realtime if channel == "realtime" else venue.rtds
        unused = venue.rtds if channel == "realtime" else venue.realtime
        assert used.connections
        assert not unused.connections
    assert done.returncode == 0, done.stderr[-3000:]
    filled = journal_rows(tmp_path / "journal.db",
                          "SELECT i.market_id FROM order_intents i JOIN executions e ON "
                          "e.order_id = i.order_id WHERE e.status = 'filled'")
    assert filled
    market = filled[0]["market_id"]
    state: Any = asyncio.run(checkpoint_state(tmp_path / "checkpoints.db", market))
    snap = state["snapshot"]
    assert snap.settlement == "twap"
    assert snap.reference_price in sent
    assert "synthetic-pass" not in done.stdout + done.stderr
