"""The soak: ``updown run --live`` for many short windows against loopback feeds and the fake
CLOB venue, with faults sprinkled in, then journal == venue ledger.

Accelerated windows: the fakes serve a synthetic series ``btc-updown-<n>s`` of windows ``n``
seconds long (Gamma lists each one, the crypto-price endpoint states its open, the fake CLOB
resolves it shortly after its end).  Nothing is scaled: the runner uses the system clock and
every fake stamps wall time, so ages, watchdogs and back-offs behave as they do live, only the
windows are shorter.  The runner is a separate process (the real console script), so its RSS
is its own and a crash is a non-zero exit or a traceback.

The plan of each window (synthetic): the open is 300 below or above the fake's current price
(an edge for Up or Down) or at it (no edge); the winner is drawn with a seeded generator.
Faults, drawn per window: websocket drops (Binance, RTDS, CLOB), stalls (Binance long enough
for its watchdog, CLOB), garbage frames (Binance, CLOB), and venue faults on the next order
(timeouts before/after the fill, 5xx before/after, 429, delayed) or on lookups (503s).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from autorunkit import UPDOWN, SymbolBinance, read_status, runner_env
from eth_account import Account
from fakeclob import FakeClob, serve
from feedfakes import FakeClobMarket, FakeHttp, FakeRtds, venue_env
from livekit import journal_vs_venue

from agent.status import rss_kb
from tools.journal import Journal

ORDER_FAULTS = ("timeout_after_fill", "timeout_lost", "timeout_after_kill",
                "http_500_after_fill", "http_502_lost", "delayed", "http_429")
FEED_FAULTS = ("binance_drop", "rtds_drop", "clob_drop", "binance_stall", "clob_stall",
               "binance_garbage", "clob_garbage")


@dataclass
class WindowPlan:
    open_price: float
    winner: str  # "up" / "down"


class SoakClob(FakeClob):
    """The fake CLOB + Gamma listing every window of one short series on demand, resolving
    each a little after its end with the plan's winner."""

    def __init__(self, *, prefix: str, length_s: int, plans: dict[int, WindowPlan],
                 resolve_after_s: float = 0.5, **kw: Any) -> None:
        super().__init__(**kw)
        self.prefix, self.length_s, self.plans = prefix, length_s, plans
        self.resolve_after_s = resolve_after_s

    def _route(self, method: str, path: str, q: dict[str, str], h: dict[str, str],
               body: bytes) -> Any:
        found = re.fullmatch(rf"/gamma/markets/slug/{re.escape(self.prefix)}-(\d+)", path)
        if found:
            start = int(found.group(1))
            slug = f"{self.prefix}-{start}"
            if slug not in self.markets and start % self.length_s == 0:
                added = self.add_market(slug, window_start=float(start))
                added.window_end = float(start + self.length_s)
            market = self.markets.get(slug)
            plan = self.plans.get(start)
            if (market is not None and not market.closed and plan is not None
                    and self.now() >= market.window_end + self.resolve_after_s):
                self.resolve(slug, plan.winner)
        return super()._route(method, path, q, h, body)


@dataclass
class SoakResult:
    windows: int
    wall_s: float
    exit_code: int | None
    tracebacks: int
    feed_task_failures: int
    decisions: int
    large_move_decisions: int
    orders: int
    fills: int
    order_errors: int
    settled: int
    pnl_usd: float
    reconciliations: int
    posts: int
    venue_fills: int
    faults: Counter[str]
    rss_kb: dict[str, int | None]
    ledger_problems: list[str]
    unsettled: list[str]
    unresolved: list[str]
    reconnects: dict[str, int] = field(default_factory=dict)

    @property
    def crashes(self) -> int:
        return int(self.exit_code != 0) + self.tracebacks + self.feed_task_failures

    def lines(self) -> list[str]:
        rss = {k: (None if v is None else round(v / 1024, 1)) for k, v in self.rss_kb.items()}
        return [
            f"windows {self.windows}  wall {self.wall_s:.0f}s  exit {self.exit_code}  "
            f"crashes {self.crashes} (tracebacks {self.tracebacks}, feed task failures "
            f"{self.feed_task_failures})",
            f"decisions {self.decisions} (large-move {self.large_move_decisions})  orders "
            f"{self.orders}  fills {self.fills}  order errors (reconciled) {self.order_errors}  "
            f"reconciliations {self.reconciliations}",
            f"venue: POSTs {self.posts}  filled orders {self.venue_fills}",
            f"settled {self.settled}  P&L {self.pnl_usd:+.2f} USDC (synthetic)  unsettled "
            f"{len(self.unsettled)}  unresolved orders {len(self.unresolved)}",
            "faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())),
            f"feed reconnects: {self.reconnects}",
            f"RSS MiB start/mid/end: {rss['start']} / {rss['mid']} / {rss['end']}",
            "journal vs venue ledger: " + ("equal" if not self.ledger_problems
                                           else "; ".join(self.ledger_problems)),
        ]


class SoakVenue:
    """All fakes on a background event loop, plus the director that plans and injures."""

    def __init__(self, *, length_s: int, seed: int = 96) -> None:
        self.length_s = length_s
        self.prefix = f"btc-updown-{length_s}s"
        self.rng = random.Random(seed)
        self.plans: dict[int, WindowPlan] = {}
        self.faults: Counter[str] = Counter()
        self.key = Account.create(extra_entropy="synthetic soak key")
        self.clob_venue = SoakClob(prefix=self.prefix, length_s=length_s, plans=self.plans,
                                   address=self.key.address, balance_usd=Decimal(1_000_000))
        self.binance = SymbolBinance(rate=20.0, seed=seed)
        self.rtds = FakeRtds(0.2)
        self.clob_ws = FakeClobMarket(0.25)
        self.http = FakeHttp(length_s=length_s, prefix=self.prefix)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._director: Any = None
        self._serve: Any = None
        self.clob_url = ""

    def __enter__(self) -> SoakVenue:
        self._thread.start()
        for fake in (self.binance, self.rtds, self.clob_ws):
            asyncio.run_coroutine_threadsafe(fake.start(), self.loop).result(10)
        self.http.__enter__()
        self._serve = serve(self.clob_venue, hang_s=1.0)
        self.clob_url = self._serve.__enter__()
        self._plan_ahead()
        self._director = asyncio.run_coroutine_threadsafe(self._direct(), self.loop)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._director is not None:
            self._director.cancel()
        for fake in (self.binance, self.rtds, self.clob_ws):
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(fake.stop(), self.loop).result(10)
        self.http.__exit__()
        if self._serve is not None:
            self._serve.__exit__(None, None, None)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def env(self, tmp: Path, **overrides: str) -> dict[str, str]:
        feeds = venue_env(self.binance.url, self.rtds.url, self.clob_ws.url, self.http)
        feeds["POLYMARKET_CLOB_URL"] = self.clob_url
        feeds["POLYMARKET_GAMMA_URL"] = self.clob_url + "/gamma"
        return runner_env(feeds, tmp, **{
            "MARKETS": f"btc-{self.length_s}s:synthetic",
            "POLYMARKET_MODE": "live",
            "POLYMARKET_PRIVATE_KEY": self.key.key.hex(),
            "LIVE_CONFIRM": "trade real money",
            "POLYMARKET_ORDER_TIMEOUT_S": "0.5",
            "POLYMARKET_LOOKUP_TIMEOUT_S": "2",
            "MAX_POSITION_SIZE": "20",
            "NO_ENTRY_FIRST_S": "0.2",
            "NO_ENTRY_LAST_S": "0.5",
            "LARGE_MOVE_PCT": "0.02",
            "LOG_LEVEL": "WARNING",
            **overrides})

    # --- the director ----------------------------------------------------------------

    def _plan_ahead(self) -> None:
        """Plans for the windows of the next minute: open (= price to beat) and winner."""
        now = time.time()
        first = math.floor(now / self.length_s) * self.length_s
        for start in range(first, first + 60 + self.length_s, self.length_s):
            if start in self.plans:
                continue
            edge = self.rng.choices(("up", "down", "none"), weights=(45, 45, 10))[0]
            price = self.binance.price
            open_price = {"up": price - 300.0, "down": price + 300.0, "none": price}[edge]
            favoured_wins = self.rng.random() < 0.7
            winner = edge if edge != "none" and favoured_wins else (
                {"up": "down", "down": "up"}.get(edge) or self.rng.choice(("up", "down")))
            self.plans[start] = WindowPlan(round(open_price, 2), winner)
            self.http.open_prices[start] = round(open_price, 2)
            close = open_price + (50.0 if winner == "up" else -50.0)
            self.http.close_prices[start] = round(close, 2)

    async def _direct(self) -> None:
        """Keep the reference near the trade price, plan windows, and injure things."""
        window = -1
        while True:
            await asyncio.sleep(0.1)
            # RTDS tracks the exchange (the guard compares them), as the real ones do.
            self.rtds.value = self.binance.price - 0.37
            current = math.floor(time.time() / self.length_s)
            if current == window:
                continue
            window = current
            self._plan_ahead()
            # A fault in about two windows of three, an order fault in about one of four.
            if self.rng.random() < 0.65:
                await self._feed_fault(self.rng.choice(FEED_FAULTS))
            if self.rng.random() < 0.25 and not self.clob_venue._faults:
                fault = self.rng.choice(ORDER_FAULTS)
                if fault == "http_429" and self.faults["order:http_429"] >= 2:
                    fault = "timeout_after_fill"  # each 429 blocks orders for 7 s
                self.clob_venue.inject(fault)
                self.faults[f"order:{fault}"] += 1
            if self.rng.random() < 0.1:
                self.clob_venue.lookup_failures += 2
                self.faults["lookup:503x2"] += 1

    async def _feed_fault(self, kind: str) -> None:
        self.faults[kind] += 1
        if kind == "binance_drop":
            self.binance.drop_all()
        elif kind == "rtds_drop":
            self.rtds.drop_all()
        elif kind == "clob_drop":
            self.clob_ws.drop_all()
        elif kind == "binance_garbage":
            self.binance.garbage += 5
        elif kind == "clob_garbage":
            await self.clob_ws.broadcast('{"event_type": "book", "bids": [garbage')
            await self.clob_ws.broadcast("\x00\xff not json")
        elif kind in ("binance_stall", "clob_stall"):
            fake = self.binance if kind == "binance_stall" else self.clob_ws
            # Binance: longer than its 2 s watchdog, so the feed reconnects.
            hold = 2.5 if kind == "binance_stall" else 1.5
            fake.stalled = True
            self.loop.call_later(hold, setattr, fake, "stalled", False)


@contextlib.contextmanager
def _child(env: dict[str, str], tmp: Path, windows: int) -> Iterator[subprocess.Popen[str]]:
    log = open(tmp / "runner.log", "w", encoding="utf-8")  # noqa: SIM115
    proc = subprocess.Popen([UPDOWN, "run", "--live", "--no-view", "--windows", str(windows)],
                            env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def run_soak(tmp: Path, *, windows: int, length_s: int, seed: int = 96,
             progress: Any = None) -> SoakResult:
    """Run the soak in ``tmp``; every figure of the closing note comes back in the result."""
    tmp.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    rss: dict[str, int | None] = {"start": None, "mid": None, "end": None}
    with SoakVenue(length_s=length_s, seed=seed) as venue:
        env = venue.env(tmp)
        budget = 60.0 + windows * length_s * 2.0
        with _child(env, tmp, windows) as proc:
            last_done = -1
            while proc.poll() is None:
                if time.monotonic() - began > budget:
                    raise AssertionError(f"soak did not finish within {budget:.0f}s")
                status = read_status(tmp / "status.json")
                done = 0 if status is None else int(
                    status["counters"]["totals"].get("windows", 0))
                if done != last_done:
                    last_done = done
                    sample = rss_kb(proc.pid)
                    if done >= 1 and rss["start"] is None:
                        rss["start"] = sample
                    if done >= max(2, windows // 2) and rss["mid"] is None:
                        rss["mid"] = sample
                    if done >= windows:
                        rss["end"] = sample or rss["end"]
                    if progress is not None:
                        progress(done, windows, sample)
                time.sleep(0.2)
            exit_code = proc.returncode
        final = read_status(tmp / "status.json") or {}
        if final.get("rss_kb"):
            rss["end"] = int(final["rss_kb"])  # the runner's own reading at its very end
        log = (tmp / "runner.log").read_text(encoding="utf-8", errors="replace")
        totals = final.get("counters", {}).get("totals", {})
        feeds = final.get("markets", {}).get(f"btc-{length_s}s", {}).get("feeds", {})
        with Journal(tmp / "journal.db") as journal:
            account = f"live:{venue.clob_venue.funder.lower()}"
            problems = journal_vs_venue(journal, venue.clob_venue, account)
            unsettled = journal.unsettled_markets(account=account)
            unresolved = [i.order_id for i in journal.pending_intents(account=account,
                                                                      include_errors=True)]
        return SoakResult(
            windows=int(totals.get("windows", 0)), wall_s=time.monotonic() - began,
            exit_code=exit_code, tracebacks=log.count("Traceback"),
            feed_task_failures=log.count("feed_task_failed"),
            decisions=int(totals.get("decisions", 0)),
            large_move_decisions=int(totals.get("large_move_decisions", 0)),
            orders=int(totals.get("orders", 0)), fills=int(totals.get("fills", 0)),
            order_errors=int(totals.get("order_errors", 0)),
            settled=int(totals.get("settled", 0)), pnl_usd=float(totals.get("pnl_usd", 0.0)),
            reconciliations=int(final.get("counters", {}).get("reconciliations", 0)),
            posts=len(venue.clob_venue.posts),
            venue_fills=len(venue.clob_venue.filled_by_hash()),
            faults=venue.faults, rss_kb=rss, ledger_problems=problems,
            unsettled=unsettled, unresolved=unresolved,
            reconnects={name: int(c.get("reconnects", c.get("connects", 0)))
                        for name, c in feeds.items()},
        )
