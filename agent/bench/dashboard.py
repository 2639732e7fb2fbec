"""Dashboard benchmark (``make bench-dashboard``): page and API latency on a journal of 100,000
decisions, and how far the server-sent events trail the journal.

The journal: the embedded replay is run through ``updown run --replay`` (its 366 real decision
records), then those records are replicated (labelled: run ``bench-replicated``, dataset
"replicated from <dataset>", each copy's ``record.replicated_from`` names its original) until
the journal holds ``--decisions`` decisions; each copy is moved to its own later window
(market id and times shifted by whole replay spans), so paging walks 100,000 distinct rows.

Then the dashboard is served on loopback (the same ``DashboardServer`` ``updown run`` starts)
and each endpoint is requested ``--requests`` times over one HTTP/1.1 connection: the first
and a deep page of the decisions (keyset ``before`` a random decision), their JSON API, one
decision's detail, the overview and the calibration.  Figures: p50 / p95 / p99 / max ms per
endpoint.  Finally the journal is written from another connection ``--commits`` times and the
time until the event stream announces the change is measured.  Timing lives here, never in
tests.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from agent.web.data import DashboardData, Limits, encode_key
from agent.web.server import DashboardServer
from tools.journal.reads import DecisionKey

ROOT = Path(__file__).resolve().parents[2]
DATASET = "data/recorded/pm15m_20251226_coinbase1m"
BENCH_RUN = "bench-replicated"


def build_journal(path: Path, decisions: int, dataset: str = DATASET) -> dict[str, Any]:
    """The replay's journal, its decisions replicated up to ``decisions`` (labelled)."""
    tmp = path.parent
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "updown"), "run", "--replay", dataset, "--no-view",
         "--journal", str(path)], cwd=ROOT, capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp), "LOG_LEVEL": "WARNING",
             "AI_DECISION_LOG_PATH": str(tmp / "decisions.jsonl"),
             "STOP_FILE": str(tmp / "STOP")})
    if done.returncode != 0:
        raise SystemExit(f"replay failed: {done.stderr[-2000:]}")
    conn = sqlite3.connect(path)
    try:
        real = conn.execute("SELECT decision_id, market_id, as_of, decided_by, decision,"
                            " approved, rules_fired_json, record_json FROM decisions"
                            " ORDER BY as_of").fetchall()
        first, last = real[0][2], real[-1][2]
        span = (int(last - first) // 900 + 1) * 900  # whole windows: slugs stay aligned
        conn.execute("INSERT INTO runs (run_id, account, mode, dataset, config_json,"
                     " started_ts, ended_ts) VALUES (?, 'bench', 'paper', ?, '{}', ?, ?)",
                     (BENCH_RUN, f"replicated from {Path(dataset).name} (real decision "
                      "records, copied)", last + span, last + span))
        rows: list[tuple[Any, ...]] = []
        copy = 1
        while len(real) + len(rows) < decisions:
            shift = copy * span
            for decision_id, market_id, as_of, by, decision, approved, rules, rec in real:
                if len(real) + len(rows) >= decisions:
                    break
                prefix, start = market_id.rsplit("-", 1)
                market = f"{prefix}-{int(start) + shift}"
                record = json.loads(rec)
                record["replicated_from"] = decision_id
                rows.append((f"{market}@{as_of + shift:.0f}/copy{copy}", BENCH_RUN, market,
                             as_of + shift, by, decision, approved, rules, json.dumps(record)))
            copy += 1
        conn.executemany("INSERT INTO decisions (decision_id, run_id, market_id, as_of,"
                         " decided_by, decision, approved, rules_fired_json, record_json)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.commit()
        total = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    finally:
        conn.close()
    return {"real_decisions": len(real), "replicated": len(rows), "decisions": total}


class _Served:
    """The dashboard on a free loopback port, in a thread with its own event loop."""

    def __init__(self, data: DashboardData) -> None:
        self.server = DashboardServer(data, port=0)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete,
                                       args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        await self.server.start()
        self.ready.set()
        await self.stop.wait()
        await self.server.aclose()

    def __enter__(self) -> DashboardServer:
        self.thread.start()
        if not self.ready.wait(30):
            raise SystemExit("dashboard did not start")
        return self.server

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


def _pct(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1000.0
    return {"n": len(samples), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p95_ms": round(float(np.percentile(a, 95)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}


def time_endpoints(base: str, journal: Path, requests: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    keys = [DecisionKey(float(a), str(d)) for a, d in conn.execute(
        "SELECT as_of, decision_id FROM decisions")]
    conn.close()
    deep = [encode_key(rng.choice(keys)) for _ in range(requests)]
    detail = [quote(rng.choice(keys).decision_id, safe="") for _ in range(requests)]
    endpoints: dict[str, Any] = {
        "GET /decisions": lambda i: "/decisions",
        "GET /decisions?before=<random>": lambda i: f"/decisions?before={quote(deep[i])}",
        "GET /api/decisions": lambda i: "/api/decisions",
        "GET /api/decisions?before=<random>":
            lambda i: f"/api/decisions?before={quote(deep[i])}",
        "GET /api/decisions/{id}": lambda i: f"/api/decisions/{detail[i]}",
        "GET /decisions/{id}": lambda i: f"/decisions/{detail[i]}",
        "GET /": lambda i: "/",
        "GET /api/overview": lambda i: "/api/overview",
        "GET /api/calibration": lambda i: "/api/calibration",
    }
    out = {}
    with httpx.Client(base_url=base, timeout=30) as client:
        for name, path in endpoints.items():
            for i in range(5):  # warm-up: connection, page cache
                client.get(path(i)).raise_for_status()
            samples = []
            for i in range(requests):
                t0 = time.perf_counter()
                response = client.get(path(i))
                samples.append(time.perf_counter() - t0)
                response.raise_for_status()
            out[name] = _pct(samples)
    return out


def time_events(base: str, journal: Path, commits: int) -> dict[str, Any]:
    """Journal commit (from another connection) -> ``change`` event on the stream."""
    arrivals: list[float] = []
    got = threading.Event()
    stop = threading.Event()

    def listen() -> None:
        with httpx.Client(base_url=base, timeout=None) as client, \
                client.stream("GET", "/api/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: change"):
                    arrivals.append(time.perf_counter())
                    got.set()
                if stop.is_set():
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    if not got.wait(10):  # the stream's first event (its state at connect)
        raise SystemExit("no event stream")
    writer = sqlite3.connect(journal)
    rng = random.Random(11)
    lags = []
    try:
        for i in range(commits):
            got.clear()
            # Apart from the previous change, at a random phase of the stream's polling.
            time.sleep(0.3 + rng.random() * 0.5)
            seen = len(arrivals)
            t0 = time.perf_counter()
            writer.execute("UPDATE runs SET ended_ts = ? WHERE run_id = ?",
                           (float(i), BENCH_RUN))
            writer.commit()
            if not got.wait(5):
                raise SystemExit("an event did not arrive within 5 s")
            lags.append(arrivals[seen] - t0)
    finally:
        stop.set()
        writer.close()
    return _pct(lags)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def dashboard_bench_command(decisions: int, json_out: Path | None, *, requests: int = 200,
                            commits: int = 20) -> int:
    """``updown bench --suite dashboard``: 0 when the decisions page and API meet the bar."""
    with tempfile.TemporaryDirectory(prefix="updown-bench-dashboard-") as tmp:
        journal = Path(tmp) / "journal.db"
        t0 = time.perf_counter()
        built = build_journal(journal, decisions)
        built["build_s"] = round(time.perf_counter() - t0, 1)
        say(f"journal: {built['decisions']} decisions ({built['real_decisions']} real from "
              f"the embedded replay, {built['replicated']} replicated copies, labelled run "
              f"'{BENCH_RUN}'), built in {built['build_s']} s")
        data = DashboardData(journal, stop_file=Path(tmp) / "STOP",
                             limits=Limits(daily_loss_limit_usd=250.0, max_orders_per_day=24))
        with _Served(data) as server:
            base = server.url.rstrip("/")
            endpoints = time_endpoints(base, journal, requests)
            events = time_events(base, journal, commits)
    say(f"{'endpoint':40} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, f in endpoints.items():
        say(f"{name:40} {f['n']:>5} {f['p50_ms']:>8} {f['p95_ms']:>8} {f['p99_ms']:>8} "
              f"{f['max_ms']:>8}")
    say(f"{'journal commit -> SSE change event':40} {events['n']:>5} {events['p50_ms']:>8} "
          f"{events['p95_ms']:>8} {events['p99_ms']:>8} {events['max_ms']:>8}")
    worst = max(endpoints[k]["p95_ms"] for k in endpoints if "decisions" in k)
    verdict = "PASS" if worst < 200.0 else "FAIL"
    say(f"decisions page and API p95 (worst of them): {worst} ms -> {verdict} (< 200 ms)")
    if json_out is not None:
        json_out.write_text(json.dumps({"journal": built, "endpoints": endpoints,
                                         "events": events, "decisions_p95_worst_ms": worst},
                                        indent=1))
    return 0 if verdict == "PASS" else 1

