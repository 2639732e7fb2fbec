"""The live autonomous runner: ``updown run`` without ``--replay``.

One :class:`~tools.polymarket.live_feed.LiveFeed` per configured market keeps a snapshot
store current; for
each market a loop follows the windows the feed discovers:

* a window is taken up as soon as the feed activates it (window boundaries come from the
  injected clock; the feed rolls over at ``end_ts``);
* the price to beat is logged (and shown in the status) once the feed has it for the window;
* decisions run at ``start + k * cadence`` (aligned to the window, not to when the process
  started) and additionally as soon as the price moved ``large_move_pct`` since the window's
  last decision, until an entry or the cut-off (``NO_ENTRY_LAST_S`` before the close: the
  guard refuses after it anyway);
* after the close the window is settled: in paper mode from the outcome the feed received
  (the venue's close price or ``market_resolved``), in live mode from the venue's resolution
  (``LiveSession.settle_due``: fills final on chain only), and journaled; winning positions
  are then redeemed exactly once (paper: a ledger entry; live: ``LiveSession.redeem_due``).

The graph is compiled with the SQLite checkpointer; every window is one thread (thread id =
market slug), so each decision of a window is a checkpointed run of that thread and can be
opened in Studio or replayed later.  Restart safety: before deciding in a window the runner
asks the journal (every order intent blocks its window) and the window's checkpoint (its last
execution) whether the window was already entered; an interrupted decision is never resumed
(its snapshot is stale), the next decision supersedes it.

Live mode only through ``resolve_mode`` and ``LiveSession``: the session connects and
reconciles before the first decision; an order whose outcome is unknown is reconciled before
the next decision (never resent), and while any stays unresolved no decision runs.  After a
feed reconnect, orders and trades are read again before the next decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.cache.memory import InMemoryCache

from agent.live import LiveSession, TradingMode
from agent.maker_live import RunnerDesk, build_runner_desk
from agent.status import HealthServer, RunCounters, rss_kb, write_atomic
from core.clock import Clock, SystemClock
from core.errors import UserError
from core.logs import get_logger
from core.settings import Settings
from core.snapshot import MarketSnapshot
from evals.replay_runner import DecisionSink, decision_record
from graphs.context import Context
from graphs.graph import RECURSION_LIMIT, compile_graph
from graphs.state import AgentState
from tools.journal import Journal, SettledPosition
from tools.polymarket.gamma import MarketWindow, WindowSeries
from tools.polymarket.live_feed import FeedEndpoints, FeedTimings, LiveFeed
from tools.polymarket.markets import MarketSpec, endpoints_for

log = get_logger("updown.autorun")

PAPER_ACCOUNT = "paper"
# The graph state's model types the checkpointer may rebuild (everything else is refused).
CHECKPOINT_TYPES: tuple[tuple[str, str], ...] = (
    ("core.snapshot", "MarketSnapshot"), ("core.snapshot", "BookTop"),
    ("core.snapshot", "Candles"),
    *(("core.records", name) for name in (
        "IndicatorSignal", "FairValueEstimate", "SentimentScore", "AggregatedSentiment",
        "LLMUsage", "RiskAssessment", "AIAnalysis", "TradeProposal", "TraderDecision",
        "RuleHit", "LedgerView", "Verdict", "ExecutionReport")),
)


class RunnerError(UserError):
    """The runner cannot go on; one line for the user."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    cadence_s: float
    large_move_pct: float
    # Stop after this many windows per market (None: run until stopped).
    windows: int | None = None
    status_path: Path | None = None
    status_port: int = 0
    # Status file / dashboard refresh (real seconds).
    status_every_s: float = 1.0
    # After the last window: how long to wait for the venue's outcomes before exiting.
    settle_wait_s: float = 30.0
    # Live: how often resolved windows are settled from the venue.
    settle_every_s: float = 5.0
    # Operator dashboard (agent.web) while the run lasts: None = off, 0 = any free port.
    dashboard_port: int | None = None
    dashboard_host: str = "127.0.0.1"
    # The kill switch's token (printed by the command; None: the server makes one).
    dashboard_token: str | None = None


def feed_timings(series: WindowSeries) -> FeedTimings:
    """Feed polling scaled to the window: a 15-minute window gets the feed's defaults."""
    length = float(series.length_s)
    return FeedTimings(price_to_beat_poll_s=min(2.0, max(0.1, length / 20.0)),
                       outcome_poll_s=min(10.0, max(0.1, length / 10.0)))


def thread_config(market_id: str) -> RunnableConfig:
    """One LangGraph thread per window: the thread id is the market slug."""
    return {"configurable": {"thread_id": market_id}, "recursion_limit": RECURSION_LIMIT}


@contextlib.asynccontextmanager
async def open_checkpointer(path: Path) -> AsyncIterator[Any]:
    """The SQLite checkpointer (``langgraph-checkpoint-sqlite``) for the runner's graph."""
    import aiosqlite
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(str(path))
    try:
        saver = AsyncSqliteSaver(conn, serde=JsonPlusSerializer(
            allowed_msgpack_modules=list(CHECKPOINT_TYPES)))
        await saver.setup()
        yield saver
    finally:
        await conn.close()


@dataclass
class MarketView:
    """What the status shows about one market's current window."""

    market_id: str | None = None
    window_start: float | None = None
    window_end: float | None = None
    price_to_beat: float | None = None
    price_to_beat_verified: bool = False
    price_to_beat_source: str | None = None
    entered: bool = False
    resumed_from: str | None = None
    window_decisions: int = 0
    last_decision: dict[str, Any] | None = None
    # The window's filled entry (side, shares, price, cost_usd), for the terminal view.
    position: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SettledEvent:
    """What the reflector's settlement hook reads: the positions a settlement closed."""

    positions: tuple[SettledPosition, ...]


@dataclass
class AutoRunReport:
    run_id: str
    account: str
    mode: str
    windows: int
    counters: dict[str, Any]
    unsettled: list[str] = field(default_factory=list)
    unresolved_orders: list[str] = field(default_factory=list)


class AutoRunner:
    """Trades the configured markets on live feeds until stopped or ``windows`` are done."""

    def __init__(
        self,
        settings: Settings,
        specs: tuple[MarketSpec, ...],
        mode: TradingMode,
        *,
        journal: Journal,
        decision_log: DecisionSink | None,
        checkpoint_path: Path,
        options: RunOptions,
        clock: Clock | None = None,
        endpoints: FeedEndpoints | None = None,
        timings: Callable[[WindowSeries], FeedTimings] = feed_timings,
        session_kw: dict[str, Any] | None = None,
        on_status: Callable[[dict[str, Any]], None] | None = None,
        reflector: Any = None,
    ) -> None:
        """``reflector`` (``tools.reflection.Reflector``, REFLECTION_ENABLED): a lesson after
        each settled entry, recent lessons offered to the trader (prompt text only)."""
        if not specs:
            raise RunnerError("no market to trade")
        self.settings = settings
        self.specs = specs
        self.mode = mode
        self.journal = journal
        self.decision_log = decision_log
        self.checkpoint_path = checkpoint_path
        self.options = options
        self.clock = clock or SystemClock()
        base = endpoints or FeedEndpoints.from_settings(settings)
        self.feeds = {s.name: LiveFeed(endpoints_for(s, base), self.clock, series=s.series,
                                       timings=timings(s.series)) for s in specs}
        self.session_kw = session_kw or {}
        self.on_status = on_status
        self.reflector = reflector
        self.session: LiveSession | None = None
        self.counters = RunCounters()
        self.views = {s.name: MarketView() for s in specs}
        self.run_id = ""
        self.account = PAPER_ACCOUNT
        self.started_ts = 0.0
        self.stop = asyncio.Event()
        self.use_llm = settings.llm_enabled
        self.limits = mode.limits(settings)
        # Decisions and reconciliation never overlap: an order in flight has an intent
        # without an execution, which reconciliation must not mistake for a lost one.
        self._money = asyncio.Lock()
        self._graph: Any = None
        self._ctx: Context | None = None
        self._settling: set[asyncio.Task[Any]] = set()
        self._windows_done = 0
        # Settled positions won/lost and the last few of them (window start, side, P&L), for
        # the terminal view; window starts are kept for the last windows only.
        self.wins = 0
        self.losses = 0
        self.recent_settled: deque[dict[str, Any]] = deque(maxlen=8)
        self._window_starts: dict[str, float] = {}
        # agent.web.services.RunServices while running (the dashboard's port, the notifier).
        self.services: Any = None
        # Feed reconnects already followed by a re-read of orders and trades (live).
        self._reconnects_seen = 0
        # EXECUTION_STYLE maker / maker_then_taker: the desk that owns resting orders, and
        # (live) the order heartbeats that run while anything rests.
        self._maker: RunnerDesk | None = None
        self._beat: Any = None
        self._beat_task: asyncio.Task[None] | None = None
        self._book_seen: dict[str, float] = {}

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect every feed (FeedUnreachable names the first one that cannot be reached),
        then, in live mode, connect and reconcile the venue session."""
        results = await asyncio.gather(*(f.start() for f in self.feeds.values()),
                                       return_exceptions=True)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            await self._close_feeds()
            raise failure
        if self.mode.mode == "live":
            session = LiveSession(self.settings, self.journal, self.mode, clock=self.clock,
                                  **self.session_kw)
            try:
                await asyncio.to_thread(session.start)
            except BaseException:
                session.close()
                await self._close_feeds()
                raise
            self.session = session
            self.account = session.account

    async def _close_feeds(self) -> None:
        await asyncio.gather(*(f.aclose() for f in self.feeds.values()),
                             return_exceptions=True)

    def request_stop(self) -> None:
        self.stop.set()

    async def run(self) -> AutoRunReport:
        """Start, trade until stopped (or the windows are done), settle, and close."""
        await self.start()
        services = None
        try:
            # Dashboard and notifications (NOTIFY_URLS); neither can stop trading.
            from agent.web.services import start_run_services

            services = self.services = await start_run_services(self)
            return await self._run_started()
        finally:
            if services is not None:
                await services.aclose(reason="run stopping")
            await self._close_feeds()
            if self.session is not None:
                self.session.close()

    async def _run_started(self) -> AutoRunReport:
        self.started_ts = self.clock.now()
        self.run_id = self.journal.start_run(
            account=self.account, mode=self.mode.mode,
            dataset="live:" + ",".join(s.name for s in self.specs),
            config={"markets": [s.name for s in self.specs], "cadence_s": self.options.cadence_s,
                    "large_move_pct": self.options.large_move_pct,
                    "limits": {k: getattr(self.limits, k)
                               for k in self.limits.__dataclass_fields__},
                    "use_llm": self.use_llm, "model": self.settings.openai_model,
                    "risk_appetite": self.settings.risk_level,
                    "checkpoints": str(self.checkpoint_path)},
            started_ts=self.started_ts)
        style = self.settings.execution_style
        if self.session is not None:
            self._ctx = self.session.context(run_id=self.run_id, use_llm=self.use_llm,
                                             lessons=self.reflector, execution_style=style)
        else:
            self._ctx = Context(account=self.account, limits=self.limits,
                                risk_appetite=self.settings.risk_level, journal=self.journal,
                                run_id=self.run_id, clock=self.clock, use_llm=self.use_llm,
                                stop_file=str(self.settings.stop_file), lessons=self.reflector,
                                execution_style=style)
        if style != "taker":
            await self._start_maker(style)
        log.info("autorun_start", run_id=self.run_id, mode=self.mode.mode, account=self.account,
                 markets=[s.name for s in self.specs], cadence_s=self.options.cadence_s)
        health = (HealthServer(self.options.status_port, self.status_document)
                  if self.options.status_port else None)
        async with open_checkpointer(self.checkpoint_path) as saver:
            # The in-memory node cache makes sentiment one fetch per window (CachePolicy).
            self._graph = compile_graph(checkpointer=saver, cache=InMemoryCache())
            # Everything built so far (imports, graph, feeds) lives as long as the process:
            # moved out of the collector's reach, a full collection no longer walks it and
            # stalls the loop mid-burst (measured 65-180 ms pauses at 50k msg/s, agent.bench.feeds).
            gc.collect()
            gc.freeze()
            if health is not None:
                await health.start()
            status = asyncio.create_task(self._status_loop(), name="updown-status")
            sweeper = (asyncio.create_task(self._live_settle_loop(), name="updown-settle")
                       if self.session is not None else None)
            loops = [asyncio.create_task(self._market_loop(s), name=f"updown-{s.name}")
                     for s in self.specs]
            try:
                await self._wait_loops(loops)
                await self._finish_settlements()
            finally:
                self.stop.set()
                await self._stop_maker()
                for task in (*loops, *self._settling, *(t for t in (sweeper,) if t)):
                    task.cancel()
                await asyncio.gather(*loops, *self._settling,
                                     *(t for t in (sweeper,) if t), return_exceptions=True)
                status.cancel()
                await asyncio.gather(status, return_exceptions=True)
                self._write_status(final=True)
                if health is not None:
                    await health.aclose()
        self.journal.finish_run(self.run_id, ended_ts=self.clock.now())
        report = AutoRunReport(
            run_id=self.run_id, account=self.account, mode=self.mode.mode,
            windows=self._windows_done, counters=self.counters.as_dict(),
            unsettled=self.journal.unsettled_markets(account=self.account),
            unresolved_orders=[i.order_id for i in self.journal.pending_intents(
                account=self.account, include_errors=True)])
        log.info("autorun_done", run_id=self.run_id, windows_done=report.windows,
                 unsettled=len(report.unsettled), unresolved=len(report.unresolved_orders),
                 totals=self.counters.totals())
        return report

    async def _wait_loops(self, loops: list[asyncio.Task[None]]) -> None:
        """Until every market loop ended; a feed or loop failure ends the run with one line."""
        pending = set(loops)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=0.5,
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is not None:
                    raise RunnerError(f"{task.get_name()}: {exc}") from exc
            for name, feed in self.feeds.items():
                if feed.failure is not None:
                    raise RunnerError(f"feed {name} failed: {feed.failure}")

    # --- one market ---------------------------------------------------------------------

    async def _market_loop(self, spec: MarketSpec) -> None:
        feed = self.feeds[spec.name]
        seen: set[str] = set()
        done = 0
        while not self.stop.is_set():
            window = feed.window
            if (window is None or window.market_id in seen
                    or self.clock.now() >= window.end_ts):
                await self._pause(0.05)  # the feed rolls over at the boundary
                continue
            seen.add(window.market_id)
            if len(seen) > 64:
                seen = {window.market_id}  # only the current window matters from here
            await self._trade_window(spec, feed, window)
            if self.stop.is_set():
                break
            self._spawn_settlement(spec, feed, window)
            done += 1
            self._windows_done += 1
            if self.options.windows is not None and done >= self.options.windows:
                break

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), max(0.0, seconds))

    async def _trade_window(self, spec: MarketSpec, feed: LiveFeed, window: MarketWindow
                            ) -> None:
        counters = self.counters.market(spec.name)
        counters.windows += 1
        view = self.views[spec.name] = MarketView(
            market_id=window.market_id, window_start=window.start_ts, window_end=window.end_ts)
        self._window_starts[window.market_id] = window.start_ts
        if len(self._window_starts) > 256:
            self._window_starts.pop(next(iter(self._window_starts)))
        config = thread_config(window.market_id)
        view.resumed_from = await self._entered_before(window, config)
        view.entered = view.resumed_from is not None
        if view.entered:
            log.info("window_resumed", market=spec.name, market_id=window.market_id,
                     entered=True, source=view.resumed_from)
        else:
            log.info("window_open", market=spec.name, market_id=window.market_id,
                     start=window.start_ts, end=window.end_ts)
        cadence = self.options.cadence_s
        cutoff = window.end_ts - self.limits.no_entry_last_s
        now = self.clock.now()
        # Aligned to the window: start + k * cadence (the first tick at or after now).
        next_at = window.start_ts + math.ceil(max(0.0, now - window.start_ts) / cadence) * cadence
        # Moves are measured from the window's last decision, or from when it was taken up.
        last_price: float | None = feed.store.price
        poll = min(0.1, cadence / 4.0)
        while not self.stop.is_set():
            now = self.clock.now()
            if now >= window.end_ts:
                break
            self._note_price_to_beat(spec, feed, view)
            if self._maker is not None:
                await self._maker_books(feed, window, view)
            if view.entered or now >= cutoff:
                await self._pause(min(poll * 5, window.end_ts - now))
                continue
            price = feed.store.price
            if last_price is None:
                last_price = price
            moved = (last_price is not None and price is not None
                     and abs(price / last_price - 1.0) * 100.0 >= self.options.large_move_pct)
            if now < next_at and not moved:
                await self._pause(min(poll, next_at - now))
                continue
            ticks = math.floor((now - window.start_ts) / cadence) + 1
            next_at = window.start_ts + ticks * cadence
            snapshot = feed.snapshot()
            if snapshot is None or snapshot.market_id != window.market_id:
                counters.skipped_no_snapshot += 1
                continue
            async with self._money:
                if not await self._orders_resolved():
                    continue
                state = await self._decide(spec, window, snapshot, config, large_move=moved)
            last_price = snapshot.price
            if self._maker is not None:
                await self._maker_decision(state, view)
            execution = state.get("execution")
            if execution is not None and execution.order_id == f"{state['decision_id']}#1":
                # Whatever became of the order, the window has its one entry attempt.
                view.entered = True
                counters.orders += 1
                if execution.status == "filled":
                    counters.fills += 1
                elif execution.status == "error":
                    counters.order_errors += 1
        self._note_price_to_beat(spec, feed, view)
        if self._maker is not None:
            maker = self._maker
            async with self._money:
                await asyncio.to_thread(maker.close_window, window.market_id,
                                        self.clock.now())
            self._heartbeats()

    # --- maker execution (EXECUTION_STYLE maker / maker_then_taker) ---------------------

    async def _start_maker(self, style: Any) -> None:
        """The desk, then the resting orders a previous process left: adopted or cancelled
        (never sent again) before the first decision."""
        assert self._ctx is not None
        self._maker = build_runner_desk(
            style=style, settings=self.settings, limits=self.limits, journal=self.journal,
            account=self.account, run_id=self.run_id, stop_file=self._ctx.kill_switch,
            taker=self._ctx.order_broker,
            live=self.session.broker if self.session is not None else None)
        report = await asyncio.to_thread(self._maker.recover, self.journal,
                                         account=self.account, now=self.clock.now())
        if not report.ok:
            raise RunnerError(f"resting order(s) {', '.join(report.unresolved)} could not be "
                              "found at the venue: not trading until they are resolved")
        self._heartbeats()

    async def _maker_decision(self, state: AgentState, view: MarketView) -> None:
        maker = self._maker
        if maker is None:
            return
        snapshot = state["snapshot"]
        async with self._money:
            await asyncio.to_thread(
                maker.on_decision, snapshot=snapshot, fair=state.get("fair_value"),
                trader=state["trader"], risk=state.get("risk"),
                decision_id=state["decision_id"], now=self.clock.now())
        if maker.entered(snapshot.market_id):
            view.entered = True
        self._heartbeats()

    async def _maker_books(self, feed: LiveFeed, window: MarketWindow, view: MarketView
                           ) -> None:
        """Every fresh book of a window where something rests goes to the desk (fills,
        cut-off, stale data, kill switch, replaces)."""
        maker = self._maker
        if maker is None or not maker.needs_books(window.market_id):
            return
        snapshot = feed.snapshot()
        if snapshot is None or snapshot.market_id != window.market_id:
            return
        seen = self._book_seen.get(window.market_id)
        cut = self.clock.now() >= window.end_ts - maker.desk.params.cancel_last_s
        if not cut and snapshot.book_ts is not None and seen == snapshot.book_ts:
            return
        self._book_seen[window.market_id] = snapshot.book_ts or 0.0
        async with self._money:
            await asyncio.to_thread(maker.book, snapshot, self.clock.now())
        if maker.entered(window.market_id):
            view.entered = True
        self._heartbeats()

    def _heartbeats(self) -> None:
        """Live: order heartbeats run while anything rests (the venue cancels everything
        10 s after the last accepted one); a failure cancels and stops placing."""
        if self.session is None or self.session.broker is None or self._maker is None:
            return
        from tools.polymarket.heartbeat import HeartbeatLoop

        resting = self._maker.has_open()
        running = self._beat_task is not None and not self._beat_task.done()
        if resting and not running:
            self._beat = HeartbeatLoop(self.session.broker.order_heartbeat(),
                                       on_expired=self._on_heartbeat_expired)
            self._beat_task = asyncio.create_task(self._beat.run(), name="updown-heartbeat")
        elif not resting and running and self._beat is not None:
            self._beat.stop()

    def _on_heartbeat_expired(self) -> None:
        task = asyncio.get_running_loop().create_task(self._halt_maker())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _halt_maker(self) -> None:
        maker = self._maker
        if maker is None:
            return
        async with self._money:
            await asyncio.to_thread(maker.halt, self.clock.now(),
                                    reason="order heartbeat expired")

    async def _stop_maker(self) -> None:
        """Shutdown: cancel every resting order and verify (there is no heartbeat disarm)."""
        maker = self._maker
        if maker is None:
            return
        try:
            async with self._money:
                left = await asyncio.to_thread(maker.shutdown, self.clock.now())
            if left:
                log.error("resting_orders_left_at_exit", order_ids=[o.order_id for o in left])
        finally:
            if self._beat is not None:
                self._beat.stop()
            if self._beat_task is not None:
                await asyncio.gather(self._beat_task, return_exceptions=True)

    def _note_price_to_beat(self, spec: MarketSpec, feed: LiveFeed, view: MarketView) -> None:
        ptb = feed.store.price_to_beat
        if ptb is None or ptb.market_id != view.market_id:
            return
        if view.price_to_beat == ptb.value and view.price_to_beat_source == ptb.source:
            return
        view.price_to_beat, view.price_to_beat_verified = ptb.value, ptb.verified
        view.price_to_beat_source = ptb.source
        log.info("window_price_to_beat", market=spec.name, market_id=view.market_id,
                 price_to_beat=ptb.value, source=ptb.source, verified=ptb.verified)

    async def _entered_before(self, window: MarketWindow, config: RunnableConfig) -> str | None:
        """Why this window counts as entered already (journal, checkpoint), or None."""
        in_journal = bool(await asyncio.to_thread(
            self.journal.intents, account=self.account, market_id=window.market_id))
        state = await self._graph.aget_state(config)
        values = state.values if state is not None else {}
        execution = values.get("execution") if isinstance(values, dict) else None
        in_checkpoint = execution is not None and getattr(
            execution, "market_id", None) == window.market_id
        if state is not None and state.next:
            # Killed mid-decision: the run is not resumed (its snapshot is stale); the next
            # decision supersedes it and the journal has whatever its execute step recorded.
            log.warning("interrupted_decision", market_id=window.market_id,
                        pending=list(state.next))
        sources = [name for name, hit in (("journal", in_journal), ("checkpoint", in_checkpoint))
                   if hit]
        return "+".join(sources) if sources else None

    def _feed_reconnects(self) -> int:
        return sum(int(c.get("reconnects", 0)) for f in self.feeds.values()
                   for c in f.health().values())

    async def _orders_resolved(self) -> bool:
        """Live: an order with an unknown outcome is reconciled first; fail closed if not.

        After any reconnect, orders and trades are read again (the user stream does not
        replay what was missed) before the next decision."""
        if self.session is None or self.session.broker is None:
            return True
        reconnects = self._feed_reconnects()
        if reconnects > self._reconnects_seen:
            report = await asyncio.to_thread(self.session.reread)
            self.counters.reconciliations += 1
            if not report.ok:
                log.warning("reread_not_clean", unresolved=report.unresolved,
                            discrepancies=report.discrepancies[:5],
                            note="no decision until the venue and the journal agree")
                return False
            self._reconnects_seen = reconnects
        pending = self.journal.pending_intents(account=self.account, include_errors=True)
        if not pending:
            return True
        from tools.polymarket.reconcile import reconcile

        report = await asyncio.to_thread(reconcile, self.journal, self.session.broker,
                                         account=self.account, clock=self.clock, audit=False)
        self.counters.reconciliations += 1
        self.counters.unresolved_orders = len(report.unresolved)
        if report.unresolved:
            log.warning("unresolved_orders", orders=report.unresolved,
                        note="no decision until the venue resolves them")
            return False
        return True

    async def _decide(self, spec: MarketSpec, window: MarketWindow, snapshot: MarketSnapshot,
                      config: RunnableConfig, *, large_move: bool) -> AgentState:
        counters = self.counters.market(spec.name)
        view = self.views[spec.name]
        decision_id = f"{window.market_id}@{snapshot.as_of:.3f}/{self.run_id[:12]}"
        started = time.perf_counter()
        out = await self._graph.ainvoke({"snapshot": snapshot, "decision_id": decision_id},
                                        config, context=self._ctx)
        latency_s = time.perf_counter() - started
        state = cast(AgentState, out)
        counters.decisions += 1
        counters.large_move_decisions += int(large_move)
        view.window_decisions += 1
        trader, verdict = state["trader"], state["verdict"]
        for rec in (state["risk"], trader):
            if rec.llm_usage is not None:
                counters.llm_calls += 1
                counters.llm_usd += rec.llm_usage.usd or 0.0
        execution = state.get("execution")
        if execution is not None and execution.order_id != f"{decision_id}#1":
            execution = None  # an earlier decision's, still in the thread's state
        rejected = [h.rule for h in verdict.rules_fired if h.action == "reject"]
        # No source: a live snapshot exists nowhere else, so the record copies it in.
        record = decision_record(state, context=self._ctx)
        if execution is None:
            record.pop("execution", None)
        record["thread_id"] = window.market_id
        self.journal.record_decision(
            run_id=self.run_id, decision_id=decision_id, market_id=window.market_id,
            as_of=snapshot.as_of, decided_by=trader.decided_by,
            decision=trader.analysis.decision, approved=verdict.approved,
            rules_fired=rejected, record=record)
        if self.decision_log is not None:
            self.decision_log.append(record)
        view.last_decision = {
            "as_of": snapshot.as_of, "decision": trader.analysis.decision,
            "confidence": trader.analysis.confidence, "approved": verdict.approved,
            "rules": rejected, "execution": execution.status if execution else None,
            "latency_ms": round(latency_s * 1000.0, 1)}
        if execution is not None and execution.status == "filled":
            view.position = {"side": execution.side, "shares": execution.shares,
                             "price": execution.avg_price,
                             "cost_usd": round(execution.notional_usd + execution.fee_usd, 6)}
        log.info("decision", decision_id=decision_id, market_id=window.market_id,
                 as_of=snapshot.as_of, decided_by=trader.decided_by,
                 decision=trader.analysis.decision, confidence=trader.analysis.confidence,
                 approved=verdict.approved, rules_fired=rejected, large_move=large_move,
                 execution=execution.status if execution else None,
                 latency_ms=round(latency_s * 1000.0, 1))
        return state

    # --- settlement ---------------------------------------------------------------------

    def _spawn_settlement(self, spec: MarketSpec, feed: LiveFeed, window: MarketWindow
                          ) -> None:
        if self.session is not None:
            return  # live: the venue's resolution, swept by _live_settle_loop
        task = asyncio.create_task(self._settle_paper(spec, feed, window),
                                   name=f"updown-settle-{window.market_id}")
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle_paper(self, spec: MarketSpec, feed: LiveFeed, window: MarketWindow
                            ) -> None:
        """Paper: the outcome the venue stated to the feed (close price or market_resolved)."""
        if window.market_id not in self.journal.unsettled_markets(account=self.account):
            return
        give_up = window.end_ts + feed.timings.outcome_give_up_s
        while window.market_id not in feed.store.outcomes:
            if self.clock.now() >= give_up:
                log.warning("settlement_unknown", market_id=window.market_id)
                return
            await asyncio.sleep(0.1)
        outcome = feed.store.outcomes[window.market_id]
        positions = self.journal.record_settlement(
            account=self.account, market_id=window.market_id, outcome=outcome.outcome,
            outcome_verified=True, settled_ts=min(self.clock.now(), window.end_ts))
        await self._settled(positions)
        log.info("settlement", market_id=window.market_id, outcome=outcome.outcome,
                 source=outcome.source, positions=len(positions),
                 pnl_usd=round(sum(p.pnl_usd for p in positions), 6))
        # Paper winnings are redeemed at once: a ledger entry (exactly once, journaled).
        from tools.redemption import PaperRedeemer, redeem_due

        redeem_due(self.journal, PaperRedeemer(), account=self.account, now=self.clock.now())

    async def _live_settle_loop(self) -> None:
        while True:
            await self._settle_live_once()
            await asyncio.sleep(self.options.settle_every_s)

    async def _settle_live_once(self) -> None:
        if self.session is None:
            return
        try:
            positions = await asyncio.to_thread(self.session.settle_due)
        except Exception as exc:  # the venue is down: settle on a later sweep
            log.warning("settle_sweep_failed", error=f"{type(exc).__name__}: {exc}")
            return
        await self._settled(positions)
        try:  # winning positions redeemed after settlement, exactly once, retried if failed
            await asyncio.to_thread(self.session.redeem_due)
        except Exception as exc:
            log.warning("redeem_sweep_failed", error=f"{type(exc).__name__}: {exc}")

    async def _settled(self, positions: list[SettledPosition]) -> None:
        self._count_settled(positions)
        if self.reflector is None or not positions:
            return
        try:
            await self.reflector.on_settled(SettledEvent(tuple(positions)),
                                            journal=self.journal)
        except Exception as exc:  # a lesson is optional; trading goes on without it
            log.warning("reflection_failed", error=f"{type(exc).__name__}: {exc}")

    def _count_settled(self, positions: list[SettledPosition]) -> None:
        for position in positions:
            name = self._market_of(position.market_id)
            if name is None:
                continue
            counters = self.counters.market(name)
            counters.settled += 1
            counters.pnl_usd = round(counters.pnl_usd + position.pnl_usd, 6)
            won = position.side == position.outcome
            self.wins += int(won)
            self.losses += int(not won)
            self.recent_settled.append({
                "market": name, "market_id": position.market_id,
                "window_start": self._window_starts.get(position.market_id),
                "side": position.side, "outcome": position.outcome, "won": won,
                "pnl_usd": round(position.pnl_usd, 6)})

    def _market_of(self, market_id: str) -> str | None:
        for spec in self.specs:
            if market_id.startswith(spec.series.slug_prefix + "-"):
                return spec.name
        return None

    async def _finish_settlements(self) -> None:
        """After the last window: outcomes still due are awaited a bounded time."""
        deadline = self.clock.now() + self.options.settle_wait_s
        if self.session is not None:
            # An order whose answer was lost may need the venue's not-found grace to pass
            # before it can be called unsent: reconcile again until resolved or out of time.
            while True:
                async with self._money:
                    if await self._orders_resolved() or self.clock.now() >= deadline:
                        break
                await asyncio.sleep(0.5)
            while self.clock.now() < deadline:
                await self._settle_live_once()
                if not self.journal.unsettled_markets(account=self.account):
                    break
                await asyncio.sleep(min(1.0, self.options.settle_every_s))
            return
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=self.options.settle_wait_s)

    # --- status -------------------------------------------------------------------------

    def status_document(self) -> dict[str, Any]:
        now = self.clock.now()
        markets: dict[str, Any] = {}
        for spec in self.specs:
            feed, view = self.feeds[spec.name], self.views[spec.name]
            live = feed.status()
            markets[spec.name] = {
                "market_id": view.market_id, "window_start": view.window_start,
                "window_end": view.window_end,
                "time_to_close_s": (None if view.window_end is None
                                    else round(max(0.0, view.window_end - now), 3)),
                "price_to_beat": view.price_to_beat,
                "price_to_beat_verified": view.price_to_beat_verified,
                "price_to_beat_source": view.price_to_beat_source,
                "entered": view.entered, "resumed_from": view.resumed_from,
                "window_decisions": view.window_decisions,
                "last_decision": view.last_decision, "position": view.position,
                "price": live.btc_price, "price_age_s": _round(live.btc_price_age_s),
                "reference_age_s": _round(live.reference_age_s),
                "book_age_s": _round(live.book_age_s),
                "feeds": feed.health(),
            }
        return {"run_id": self.run_id, "pid": os.getpid(), "mode": self.mode.mode,
                "account": self.account, "started_ts": self.started_ts, "as_of": now,
                "stopping": self.stop.is_set(), "rss_kb": rss_kb(),
                "checkpoints": str(self.checkpoint_path),
                "counters": self.counters.as_dict(), "markets": markets,
                "settled": {"wins": self.wins, "losses": self.losses,
                            "recent": list(self.recent_settled)}}

    def _write_status(self, *, final: bool = False) -> None:
        document = self.status_document()
        if final:
            document["stopped"] = True
        if self.options.status_path is not None:
            try:
                write_atomic(self.options.status_path, document)
            except OSError as exc:
                log.warning("status_write_failed", path=str(self.options.status_path),
                            error=str(exc))
        if self.on_status is not None:
            self.on_status(document)

    async def _status_loop(self) -> None:
        while True:
            self._write_status()
            await asyncio.sleep(self.options.status_every_s)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
