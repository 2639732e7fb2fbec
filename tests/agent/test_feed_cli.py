"""``updown stream``, ``updown markets`` and ``updown record`` end to end, as subprocesses
against the loopback venues of ``feedfakes`` (synthetic data, no internet).

The commands read the wall clock to find the current window; the tests never assume it is the
one they compute.  ``stream`` and ``record`` run for seconds: the test picks a window with
enough time left (waiting for the next one if need be) and gives the command at most that long,
so no boundary passes while it runs.  ``markets`` is one lookup: any window current between the
test's two clock readings is accepted, and everything else is checked against the one it
picked.  ``tests/test_window_boundaries.py`` runs them again started just before a boundary."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from feedfakes import (
    ThreadedVenue,
    closed_port,
    seconds_left,
    token_ids,
    window_with_time_left,
    windows_between,
)
from typer.testing import CliRunner

from agent.cli.app import app
from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed

pytestmark = pytest.mark.server
UPDOWN = str(Path(sys.executable).with_name("updown"))
# The longest a ``stream`` or ``record`` run here may take (they take 5-10 s, 30 s on a box
# loaded three times over); it is given a window with this long left (window_with_time_left).
COMMAND_BUDGET_S = 60.0


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("OPENAI_", "POLYMARKET_", "BINANCE_", "LANGSMITH_",
                                 "LANGCHAIN_", "LOG_"))}
    return {**base, **extra}


def run_updown(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([UPDOWN, *args], cwd=cwd, env=clean_env(env), capture_output=True,
                          text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def open_venue() -> Iterator[ThreadedVenue]:
    with ThreadedVenue(binance_rate=20.0) as v:
        start = int(time.time() // 900 * 900)
        for s in (start - 900, start, start + 900):
            v.http.open_prices[s] = 100_000.0 + (s % 10_000) / 100  # synthetic
        yield v


@pytest.fixture
def venue() -> Iterator[ThreadedVenue]:
    with open_venue() as v:
        yield v


def test_stream_json_prints_the_venue_prices_across_a_disconnect(venue: Any,
                                                                 tmp_path: Path) -> None:
    start = window_with_time_left(900, COMMAND_BUDGET_S)
    proc = subprocess.Popen(
        [UPDOWN, "stream", "--json", "--duration", "5", "--interval", "0.2"],
        cwd=tmp_path, env=clean_env(venue.env()), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    # Stopped (and failed below) rather than let it run into the next window.
    overrun = threading.Timer(seconds_left(start, 900, COMMAND_BUDGET_S), proc.kill)
    overrun.start()
    assert proc.stdout is not None
    lines: list[dict[str, Any]] = []
    dropped_at_line: int | None = None
    try:
        for raw in proc.stdout:
            lines.append(json.loads(raw))
            if dropped_at_line is None and len(lines) == 8:
                assert venue.call(venue.binance.drop_all) == 1  # server-side, abrupt
                dropped_at_line = len(lines)
        code = proc.wait(30)
    finally:
        overrun.cancel()
        if proc.poll() is None:
            proc.kill()
    assert code == 0, proc.stderr.read() if proc.stderr else ""

    assert dropped_at_line is not None
    assert len(lines) >= 20
    sent = set(venue.binance.sent_prices)
    printed = [line["btc_price"] for line in lines if line["btc_price"] is not None]
    assert printed
    assert set(printed) <= sent  # every printed price is one the venue sent
    second = set(venue.binance.connections[1].sent)
    assert {line["btc_price"] for line in lines[dropped_at_line + 3:]} & second
    last = lines[-1]
    up, down = token_ids(start)
    assert last["market_id"] == f"btc-updown-15m-{start}"
    assert last["feeds"]["binance"]["reconnects"] >= 1
    assert last["price_to_beat_verified"] is True
    assert last["price_to_beat_source"] == "crypto_price_api"
    assert (last["up_bid"], last["up_ask"], last["down_bid"], last["down_ask"]) == (
        0.54, 0.56, 0.45, 0.47)
    assert 0 < last["time_to_close_s"] <= 900
    assert last["reference_price"] is not None
    assert venue.clob.subscriptions[0] == [up, down]


def test_stream_exits_fast_naming_the_unreachable_endpoint(tmp_path: Path) -> None:
    with closed_port() as port:
        dead = f"127.0.0.1:{port}"
        env = {"BINANCE_WS_URL": f"ws://{dead}/ws/btcusdt@trade", "BINANCE_REST_URL":
               f"http://{dead}", "POLYMARKET_RTDS_URL": f"ws://{dead}",
               "POLYMARKET_CLOB_WS_URL": f"ws://{dead}/ws/market",
               "POLYMARKET_GAMMA_URL": f"http://{dead}", "POLYMARKET_CLOB_URL": f"http://{dead}",
               "POLYMARKET_CRYPTO_PRICE_URL": f"http://{dead}/api/crypto/crypto-price"}
        began = time.monotonic()
        proc = run_updown("stream", env=env, cwd=tmp_path, timeout=30)
        elapsed = time.monotonic() - began
    assert elapsed < 10.0
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: cannot reach POLYMARKET_GAMMA_URL")
    assert dead in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.fixture
def own_logging() -> Any:
    """The in-process CLI configures structlog onto CliRunner's stderr, closed afterwards;
    later tests must not log into it."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("own_logging")
@pytest.mark.parametrize(("window", "length"), [("15m", 900), ("5m", 300)])
def test_markets_lists_current_and_next_with_tokens_and_prices(window: str, length: int,
                                                               monkeypatch: Any) -> None:
    with ThreadedVenue(length_s=length, prefix=f"btc-updown-{window}") as venue:
        for key, value in clean_env(venue.env()).items():
            monkeypatch.setenv(key, value)
        series = [] if window == "15m" else ["--window", window]  # 15m: the default
        before = time.time()
        result = CliRunner().invoke(app, ["markets", "--json", *series])
        after = time.time()
        human = CliRunner().invoke(app, ["markets", *series], env={"COLUMNS": "200"})
        human_after = time.time()
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["window"] for r in rows] == ["current", "next"]
    # The window the command took for the current one (it read the clock once, in between).
    start = int(rows[0]["market_id"].rsplit("-", 1)[1])
    assert start in windows_between(before, after, length)
    for row, s in zip(rows, (start, start + length), strict=True):
        assert row["market_id"] == f"btc-updown-{window}-{s}"
        assert (row["up_token_id"], row["down_token_id"]) == token_ids(s)
        assert (row["up_price"], row["down_price"]) == (0.515, 0.485)
        # /book lists bids ascending and asks descending; the best levels are found anyway.
        assert (row["up_bid"], row["up_ask"]) == (0.54, 0.56)
        assert (row["down_bid"], row["down_ask"]) == (0.45, 0.47)
        assert (row["tick_size"], row["min_order_shares"], row["fee_rate"]) == (0.01, 5, 0.07)
    assert human.exit_code == 0, human.output
    assert any(token_ids(s)[0] in human.stdout
               for s in windows_between(after, human_after, length))


@dataclass(frozen=True)
class Recording:
    out: Path
    start: int  # the window it was given
    proc: subprocess.CompletedProcess[str]
    open_prices: dict[int, float]  # what the venue stated
    sent_prices: list[float]  # what the venue traded


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """One ``updown record`` run, shared by the tests of the recording."""
    tmp = tmp_path_factory.mktemp("record")
    out = tmp / "recording"
    with open_venue() as venue:
        start = window_with_time_left(900, COMMAND_BUDGET_S)
        proc = run_updown("record", "--out", str(out), "--duration", "4", env=venue.env(),
                          cwd=tmp, timeout=seconds_left(start, 900, COMMAND_BUDGET_S))
    return Recording(out, start, proc, dict(venue.http.open_prices),
                     list(venue.binance.sent_prices))


def test_record_writes_a_dataset_that_loads(recording: Recording) -> None:
    out, start, proc = recording.out, recording.start, recording.proc
    assert proc.returncode == 0, proc.stderr
    assert "recorded 1 window(s)" in proc.stdout

    dataset = load_dataset(out)  # the interchange format's own validation
    (market,) = dataset.markets
    assert market.market_id == f"btc-updown-15m-{start}"
    assert (market.start_ts, market.end_ts) == (start, start + 900)
    assert market.price_to_beat == recording.open_prices[start]
    assert market.fee_rate == 0.07
    assert market.outcome is None  # not resolved yet: left empty, never guessed
    with (out / "markets.csv").open() as f:
        row = next(csv.DictReader(f))
    assert (row["price_to_beat_source"], row["price_to_beat_verified"]) == (
        "crypto_price_api", "true")
    prices = dataset.prices["BTC"]
    sources = set(prices.source)  # type: ignore[arg-type]
    assert sources == {"binance_kline_1m", "binance_spot"}
    live = prices.price[prices.source == "binance_spot"]
    assert len(live) >= 3
    assert set(live.tolist()) <= set(recording.sent_prices)
    book = dataset.book(market.market_id)
    assert book is not None
    assert len(book) >= 3
    assert (book.up_ask[-1], book.down_ask[-1]) == (0.56, 0.47)
    meta = json.loads((out / "recording.json").read_text())
    assert meta["feeds"]["binance"]["accepted"] >= 3
    assert ReplayFeed(dataset).markets == dataset.markets  # replayable



def test_recording_replays_through_the_graph_and_the_eval_suite(recording: Recording,
                                                                tmp_path: Path) -> None:
    assert recording.proc.returncode == 0, recording.proc.stderr
    out = recording.out
    dataset = load_dataset(out)
    # The recording runs through the whole graph like any dataset, but only where it covers
    # the decision times: 4 seconds of a window cover them only when recorded in its last
    # minute; otherwise the window is skipped as price_ends_early, never replayed on stale
    # prices (the coverage rule itself is tested in tests/evals/test_eval_coverage.py).
    covered = bool(ReplayFeed(dataset, cadence_s=60.0).markets)
    run = run_updown("run", "--replay", str(out), "--cadence", "60", "--no-view",
                     "--journal", str(tmp_path / "j.db"),
                     "--decision-log", str(tmp_path / "d.jsonl"), env={}, cwd=tmp_path,
                     timeout=300)
    decisions = tmp_path / "d.jsonl"
    if covered:
        assert run.returncode == 0, run.stderr
        assert "replay summary" in run.stdout
        assert decisions.read_text().count("\n") >= 1
    else:  # nothing to replay at this cadence: one line, exit 2, nothing written
        assert run.returncode == 2, run.stderr
        assert "no usable window" in run.stderr
        assert "price_ends_early" in run.stderr
        assert not decisions.exists()

    # ... and through the eval suite: the outcome is unknown, so forecasts skip the window.
    report = tmp_path / "eval.json"
    ev = run_updown("eval", "--dataset", str(out), "--cadence", "60", "--json", str(report),
                    "--no-progress", env={}, cwd=tmp_path, timeout=300)
    if not covered:
        assert ev.returncode == 2, ev.stderr
        assert "no usable window (skipped: price_ends_early 1)" in ev.stderr
        return
    assert ev.returncode == 0, ev.stderr
    result = json.loads(report.read_text())
    assert result["windows"] == 1
    assert result["decisions"] >= 1
