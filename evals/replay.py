"""The eval's replay: the one runner and graph over every window, optionally on several cores.

Owns turning a dataset into a *trace*: every decision the graph made (with the agent's, the
fair value's and the market's P(up), the guard's verdict and the order, if any) and every
settlement, in replay order.  It adds no trading logic: each decision is
``evals.replay_runner.ReplayRunner`` running ``graphs.graph`` in paper mode, with
``keep_deciding`` so a
forecast exists at every decision point (after an entry the guard refuses another by its
``window`` rule, exactly as in ``updown run``, which simply stops asking).

Parallel replay (why and how it stays exact)
--------------------------------------------
One process tops out near 200-250 decisions/s: LangGraph's own per-invoke cost for this
topology is ~4 ms.  Windows are therefore split into consecutive *chunks* (cut only where no
window spans the cut) and replayed in a process pool (forked, so workers inherit the loaded
dataset).  Chunks are handed out in time order, one per idle worker, each seeded with the exact
ledger accepted so far; a chunk's seed therefore misses only what the chunks still running
when it started will add.

The only thing a chunk takes from earlier ones is the ledger the guard reads (orders today,
realised P&L today, the losing streak); every other node reads only the snapshot.  So chunks
are accepted strictly in time order after *verification*: the merge rebuilds the exact ledger
(a journal holding everything accepted so far), re-evaluates the guard
(``core.guard.evaluate``, the same pure function the guard node calls, with the ledger read
the node makes) for every decision that proposed an order, and compares the verdict with the
one the worker got.  If every verdict is equal, the chunk is exactly what one sequential run
would have produced: the verdict is the only ledger-dependent value in the state, and orders
and settlements follow from it (a trace is exact whenever its verdicts match, whatever ledger
it was computed from).  At the first difference, everything of the chunk before the last cut
preceding it is kept and the rest is replayed again through the runner, first in line, from
the exact ledger: optimistic execution with rollback, never an approximation.  Re-runs are
counted in the result (``reruns``, ``rerun_windows``) and the eval JSON (``timing``).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import multiprocessing
import os
import queue as queue_module
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from core.clock import trading_day_start
from core.guard import GuardLimits, evaluate
from core.records import (
    ExecutionReport,
    FairValueEstimate,
    LedgerView,
    TradeProposal,
    Verdict,
)
from core.settings import Settings
from core.snapshot import MarketSnapshot
from evals.replay_runner import DecisionEvent, ReplayRunner, SettlementEvent
from feeds.replay import ReplayFeed
from graphs.context import Context
from graphs.graph import RECURSION_LIMIT, compile_graph
from tools.journal import Journal, OrderIntent, SettledPosition
from tools.ledger import guard_ledger  # the guard node's own ledger read
from tools.sentiment import embedded_sentiment

# The journal account every eval trades; journals are private to one eval run.
EVAL_ACCOUNT = "eval"
# Progress is reported in batches so the queue between processes stays quiet.
_PROGRESS_BATCH = 25


@dataclass(frozen=True, slots=True)
class GuardCall:
    """What the guard judged for a decision that proposed an order (for verification)."""

    proposal: TradeProposal
    fair: FairValueEstimate | None
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """An order the execute node sent: its journaled intent (if any) and the broker's report."""

    intent: OrderIntent | None
    report: ExecutionReport
    ts: float


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One decision point as the eval scores it."""

    window: int  # index in ReplayFeed.markets
    market_id: str
    t: float
    seconds_in: float
    time_left_s: float
    p_agent: float | None
    p_fair: float | None
    p_market: float | None
    decision: str
    decided_by: str
    proposal_side: str | None
    # Edge after fees of the proposed side at this decision (fair value vs ask + fee).
    edge_after_fees: float | None
    approved: bool
    rejected_by: tuple[str, ...]
    # True once the window holds a filled entry: `updown run` would not have asked any more.
    after_entry: bool
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    llm_usd: float
    latency_s: float
    guard: GuardCall | None
    order: OrderEvent | None


@dataclass(frozen=True, slots=True)
class SettleRow:
    """A window's close: outcome used for settlement (None = unknown) and settled positions."""

    window: int
    market_id: str
    outcome: str | None
    outcome_verified: bool
    ts: float
    positions: tuple[SettledPosition, ...]


TraceItem = DecisionRow | SettleRow


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    """How to replay: the same for every worker."""

    cadence_s: float
    use_llm: bool
    # Kill-switch path that never exists: a STOP file in the user's working directory is an
    # operational control for live orders and must not change an offline evaluation.
    stop_file: str
    # The chat model to ask (None: built from settings when the LLM is used).
    chat_model: Any = None


@dataclass
class ReplayResult:
    trace: list[TraceItem]
    workers: int
    chunks: int
    # Chunks whose speculative ledger was wrong and that were replayed again from a cut.
    reruns: int = 0
    rerun_windows: int = 0
    # Graph decisions made in total, including speculative ones that were replayed again.
    graph_decisions: int = 0
    notes: list[str] = field(default_factory=list)


def _market_mid(snap: MarketSnapshot) -> float | None:
    """The market's P(up): the Up token's mid, else one minus the Down token's mid."""
    if snap.up is not None and snap.up.mid is not None:
        return snap.up.mid
    if snap.down is not None and snap.down.mid is not None:
        return 1.0 - snap.down.mid
    return None


class _Collector:
    """Turns the runner's decision and settlement events into trace items."""

    def __init__(self, feed: ReplayFeed, journal: Journal,
                 progress: Callable[[int], None] | None) -> None:
        self._index = {m.market_id: i for i, m in enumerate(feed.markets)}
        self._journal = journal
        self._progress = progress
        self._entered: set[str] = set()
        self.trace: list[TraceItem] = []

    def on_decision(self, event: DecisionEvent) -> None:
        s: Any = event.state
        snap: MarketSnapshot = s["snapshot"]
        trader, verdict, risk = s["trader"], s["verdict"], s["risk"]
        fair: FairValueEstimate | None = s.get("fair_value")
        execution: ExecutionReport | None = s.get("execution")
        proposal: TradeProposal | None = trader.proposal
        usage = [u for u in (risk.llm_usage, trader.llm_usage) if u is not None]
        order = None
        if execution is not None:
            order = OrderEvent(self._journal.intent(execution.order_id), execution, snap.as_of)
        edge = None
        if proposal is not None and fair is not None:
            edge = fair.edge_for(proposal.side)
        self.trace.append(DecisionRow(
            window=self._index[snap.market_id],
            market_id=snap.market_id,
            t=snap.as_of,
            seconds_in=snap.as_of - snap.window_start,
            time_left_s=snap.time_to_close_s,
            p_agent=trader.p_up,
            p_fair=None if fair is None else (
                fair.model_up if fair.model_up is not None else fair.fair_up),
            p_market=_market_mid(snap),
            decision=trader.analysis.decision,
            decided_by=trader.decided_by,
            proposal_side=None if proposal is None else proposal.side,
            edge_after_fees=edge,
            approved=verdict.approved,
            rejected_by=tuple(h.rule for h in verdict.rules_fired if h.action == "reject"),
            after_entry=snap.market_id in self._entered,
            llm_calls=sum(u.calls for u in usage),
            prompt_tokens=sum(u.prompt_tokens for u in usage),
            completion_tokens=sum(u.completion_tokens for u in usage),
            llm_usd=sum(u.usd for u in usage),
            latency_s=event.latency_s,
            guard=None if proposal is None else GuardCall(proposal, fair, verdict),
            order=order,
        ))
        if execution is not None and execution.status == "filled":
            self._entered.add(snap.market_id)
        if self._progress is not None:
            self._progress(1)

    def on_settlement(self, event: SettlementEvent) -> None:
        m = event.market
        self.trace.append(SettleRow(
            window=self._index[m.market_id], market_id=m.market_id, outcome=event.outcome,
            outcome_verified=event.outcome_verified, ts=event.settled_ts,
            positions=event.positions))


# --- the ledger: seeding a journal with accepted history -----------------------------------


def _apply(journal: Journal, run_id: str, item: TraceItem) -> None:
    """Write an item's ledger effect exactly as the execute node and the runner did."""
    if isinstance(item, SettleRow):
        if item.outcome is not None:
            journal.record_settlement(
                account=EVAL_ACCOUNT, market_id=item.market_id,
                outcome="up" if item.outcome == "up" else "down",
                outcome_verified=item.outcome_verified, settled_ts=item.ts)
        return
    if item.order is None:
        return
    intent = item.order.intent
    if intent is not None:
        journal.record_order_intent(
            account=EVAL_ACCOUNT, run_id=run_id, decision_id=intent.decision_id,
            order_id=intent.order_id, market_id=intent.market_id, side=intent.side,
            stake_usd=intent.stake_usd, worst_price=intent.worst_price,
            created_ts=intent.created_ts)
        journal.record_execution(item.order.report, ts=item.order.ts)


def _seeded_journal(feed: ReplayFeed, history: Sequence[TraceItem]) -> tuple[Journal, str]:
    journal = Journal(":memory:")
    run_id = journal.start_run(account=EVAL_ACCOUNT, mode="paper", dataset=feed.dataset.name,
                               config={"seeded_items": len(history)}, started_ts=0.0)
    for item in history:
        _apply(journal, run_id, item)
    return journal, run_id


def replay_windows(
    feed: ReplayFeed,
    settings: Settings,
    spec: ReplaySpec,
    windows: Sequence[int],
    history: Sequence[TraceItem] = (),
    progress: Callable[[int], None] | None = None,
) -> list[TraceItem]:
    """Replay these windows (indices into ``feed.markets``) through ReplayRunner, in this
    process, on a journal seeded with ``history`` (the exact trace before them)."""
    journal, _ = _seeded_journal(feed, history)
    try:
        collector = _Collector(feed, journal, progress)
        runner = ReplayRunner(
            feed, settings, journal=journal, decision_log=None, cadence_s=spec.cadence_s,
            use_llm=spec.use_llm, observer=collector.on_decision, keep_deciding=True,
            markets=[feed.markets[i] for i in windows], account=EVAL_ACCOUNT,
            stop_file=spec.stop_file, on_settlement=collector.on_settlement,
            chat_model=spec.chat_model, journal_decisions=False)
        runner.run()
        return collector.trace
    finally:
        journal.close()


def _first_mismatch(
    feed: ReplayFeed, limits: GuardLimits, history: Sequence[TraceItem],
    trace: list[TraceItem],
) -> int | None:
    """Position in ``trace`` of the first decision whose verdict differs under the exact
    ledger (``history`` followed by the trace itself), or None when the chunk is exact.

    A decision that agrees but was judged by another ledger (the chunk's speculative one) is
    replaced in ``trace`` by the exact verdict, so the trace equals a single-process run's
    down to the inputs each verdict records."""
    journal, run_id = _seeded_journal(feed, history)
    try:
        # The ledger view only changes when an item is applied or the UTC day changes: items
        # are applied in time order, so every row it counts is already at or before `now`.
        cached: tuple[tuple[int, float], LedgerView] | None = None
        applied = 0
        for pos, item in enumerate(trace):
            if isinstance(item, DecisionRow) and item.guard is not None:
                key = (applied, trading_day_start(item.t))
                if cached is None or cached[0] != key:
                    cached = (key, guard_ledger(journal, account=EVAL_ACCOUNT, now=item.t))
                snap = feed.snapshot_at(feed.markets[item.window], item.t)
                verdict = evaluate(item.guard.proposal, snap, item.guard.fair, limits,
                                   cached[1], item.t, kill_switch_engaged=False)
                # Same decision, not same inputs: a speculative chunk saw another ledger.
                if verdict.decision() != item.guard.verdict.decision():
                    return pos
                if verdict != item.guard.verdict:
                    trace[pos] = replace(item, guard=replace(item.guard, verdict=verdict))
            if isinstance(item, SettleRow) or item.order is not None:
                _apply(journal, run_id, item)
                applied += 1
        return None
    finally:
        journal.close()


# --- chunk planning --------------------------------------------------------------------------


def cut_points(feed: ReplayFeed, windows: Sequence[int]) -> list[int]:
    """Positions k (0 < k < len) where ``windows`` may be cut: every window before k has ended
    by the start of window k, so nothing of theirs happens after anything of the rest."""
    cuts: list[int] = []
    latest_end = -math.inf
    for k, w in enumerate(windows):
        m = feed.markets[w]
        if k > 0 and latest_end <= m.start_ts:
            cuts.append(k)
        latest_end = max(latest_end, m.end_ts)
    return cuts


def split_windows(feed: ReplayFeed, windows: Sequence[int], cadence_s: float, parts: int
                  ) -> list[list[int]]:
    """``windows`` in consecutive parts of about equal decision counts, cut only at valid cut
    points (fewer parts when there are not enough cuts)."""
    windows = list(windows)
    if parts <= 1 or len(windows) < 2:
        return [windows] if windows else []
    weights = [max(1, len(feed.decision_times(feed.markets[w], cadence_s))) for w in windows]
    prefix = [0]
    for w in weights:
        prefix.append(prefix[-1] + w)
    total = prefix[-1]
    cuts = cut_points(feed, windows)
    chosen: set[int] = set()
    for j in range(1, parts):
        target = total * j / parts
        # The valid cut whose decisions-before count is closest to the target.
        best = min(cuts, key=lambda k: abs(prefix[k] - target), default=None)
        if best is not None:
            chosen.add(best)
    bounds = [0, *sorted(chosen), len(windows)]
    return [windows[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def plan_chunks(feed: ReplayFeed, cadence_s: float, chunks: int) -> list[list[int]]:
    """Every window of the feed in ``chunks`` consecutive chunks."""
    return split_windows(feed, range(len(feed.markets)), cadence_s, chunks)


def ledger_items(trace: Sequence[TraceItem]) -> list[TraceItem]:
    """The items that change the ledger (orders and settlements): all a seed needs."""
    return [i for i in trace if isinstance(i, SettleRow) or i.order is not None]


# --- the process pool ------------------------------------------------------------------------

# Set before the pool forks so workers inherit the loaded feed instead of re-reading it.
_INHERITED: tuple[ReplayFeed, Settings, ReplaySpec] | None = None
_WORKER: tuple[ReplayFeed, Settings, ReplaySpec, Any] | None = None


def _init_worker(dataset_dir: str, spec: ReplaySpec, progress_queue: Any) -> None:
    global _WORKER
    if _INHERITED is not None:
        feed, settings, _ = _INHERITED
    else:  # spawn start method: nothing inherited, load it here
        from core.settings import load_settings
        from feeds.recorded import load_dataset

        settings = load_settings()
        # The same coverage check as the parent's feed, so window indices agree.
        feed = ReplayFeed(load_dataset(dataset_dir), cadence_s=spec.cadence_s,
                          max_price_age_s=settings.max_price_age_s)
    _WORKER = (feed, settings, spec, progress_queue)


def _worker_replay(windows: list[int], history: list[TraceItem]) -> list[TraceItem]:
    if _WORKER is None:
        raise RuntimeError("eval worker not initialised")
    feed, settings, spec, progress_queue = _WORKER
    pending = [0]

    def progress(n: int) -> None:
        pending[0] += n
        if pending[0] >= _PROGRESS_BATCH:
            progress_queue.put(pending[0])
            pending[0] = 0

    trace = replay_windows(feed, settings, spec, windows, history=history, progress=progress)
    if pending[0]:
        progress_queue.put(pending[0])
    return trace


def _mp_context() -> Any:
    # fork shares the loaded dataset and warmed imports with the workers at no cost.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def default_workers(use_llm: bool) -> int:
    """One worker per core for the deterministic path; the LLM path is network-bound and
    replays in one process (parallel model calls would only change rate-limit behaviour)."""
    if use_llm:
        return 1
    return max(1, os.cpu_count() or 1)


def _warm_up(feed: ReplayFeed, settings: Settings, spec: ReplaySpec) -> None:
    """One decision before forking: imports, the sentiment corpus and TA-Lib load once and
    every worker inherits them.  Its result is discarded."""

    if not feed.markets:
        return
    market = feed.markets[0]
    times = feed.decision_times(market, spec.cadence_s)
    if not times:
        return
    graph = compile_graph()
    ctx = Context(account="warm-up", limits=GuardLimits.for_replay(settings), use_llm=False,
                  risk_appetite=settings.risk_level, stop_file=spec.stop_file,
                  sentiment=embedded_sentiment(settings.sentiment_lookback_s))
    asyncio.run(graph.ainvoke({"snapshot": feed.snapshot_at(market, times[0])}, context=ctx,
                              config={"recursion_limit": RECURSION_LIMIT}))


class Progress(Protocol):
    """Told about graph decisions as they happen, and about work added by re-runs."""

    def advance(self, n: int) -> None: ...

    def add_total(self, n: int) -> None: ...


@dataclass
class _Segment:
    """Consecutive windows: waiting, running in the pool, or replayed (speculatively)."""

    windows: list[int]
    future: Future[list[TraceItem]] | None = None
    # How many accepted trace items its seed held: if nothing was accepted since, the segment
    # started from the exact ledger and needs no verification.
    seeded_with: int = -1


# Chunks per worker by default: small chunks keep every speculative seed at most a few
# windows stale (fewer and cheaper re-runs) and balance the workers at the end of a run.
CHUNKS_PER_WORKER = 4


def replay_dataset(
    feed: ReplayFeed,
    settings: Settings,
    spec: ReplaySpec,
    *,
    workers: int,
    chunks: int | None = None,
    progress: Progress | None = None,
) -> ReplayResult:
    """The whole dataset's exact trace: in this process (``workers`` 1) or speculatively in
    chunks over a process pool, each chunk verified in time order (module docstring).

    Scheduling: chunks are handed out in time order, at most one per worker at a time, each
    seeded with the exact ledger accepted so far; whenever the earliest outstanding chunk is
    done it is verified and accepted (or partly replayed again), so a chunk's seed misses only
    the chunks still running when it started."""
    advance = progress.advance if progress is not None else None
    everything = list(range(len(feed.markets)))
    if workers <= 1 or len(split_windows(feed, everything, spec.cadence_s, 2)) < 2:
        trace = replay_windows(feed, settings, spec, everything, progress=advance)
        return ReplayResult(trace=trace, workers=1, chunks=1,
                            graph_decisions=_decisions(trace))

    parts = chunks or workers * CHUNKS_PER_WORKER
    segments = [_Segment(w) for w in split_windows(feed, everything, spec.cadence_s, parts)]
    result = ReplayResult(trace=[], workers=min(workers, len(segments)), chunks=len(segments))
    limits = GuardLimits.for_replay(settings)
    _warm_up(feed, settings, spec)
    global _INHERITED
    ctx = _mp_context()
    progress_queue = ctx.Queue()
    _INHERITED = (feed, settings, spec)
    try:
        with ProcessPoolExecutor(max_workers=result.workers, mp_context=ctx,
                                 initializer=_init_worker,
                                 initargs=(str(feed.dataset.path), spec, progress_queue)
                                 ) as pool:
            while segments:
                running = sum(1 for seg in segments
                              if seg.future is not None and not seg.future.done())
                seed: list[TraceItem] | None = None
                for seg in segments:
                    if running >= result.workers:
                        break
                    if seg.future is None:
                        if seed is None:
                            seed = ledger_items(result.trace)
                        seg.seeded_with = len(result.trace)
                        seg.future = pool.submit(_worker_replay, seg.windows, seed)
                        running += 1
                # Wait until some chunk finishes: then hand out more work and accept what can
                # be accepted (only ever the earliest chunks, in order).
                _drain_progress([seg.future for seg in segments
                                 if seg.future is not None and not seg.future.done()],
                                progress_queue, advance)
                segments = _accept_verified(feed, limits, spec, segments, result, progress)
            _drain_progress([], progress_queue, advance)
    finally:
        _INHERITED = None
        progress_queue.close()
    return result


def _accept_verified(
    feed: ReplayFeed, limits: GuardLimits, spec: ReplaySpec, segments: list[_Segment],
    result: ReplayResult, progress: Progress | None,
) -> list[_Segment]:
    """Move finished segments, in order, into the result after verifying them; at the first
    that is not exact, keep its verified part up to the last cut before the difference and
    put the rest back, first in line, to replay from the exact ledger.  Returns what is left."""
    while segments and segments[0].future is not None and segments[0].future.done():
        head = segments[0]
        assert head.future is not None
        trace = list(head.future.result())
        result.graph_decisions += _decisions(trace)
        exact = head.seeded_with == len(result.trace)
        bad = None if exact else _first_mismatch(feed, limits, ledger_items(result.trace), trace)
        if bad is None:
            result.trace.extend(trace)
            segments = segments[1:]
            continue
        position = head.windows.index(trace[bad].window)
        cut = max((k for k in cut_points(feed, head.windows) if k <= position), default=0)
        kept_windows = set(head.windows[:cut])
        result.trace.extend(item for item in trace if item.window in kept_windows)
        redo = head.windows[cut:]
        result.reruns += 1
        result.rerun_windows += len(redo)
        result.notes.append(
            f"speculative ledger differed at {trace[bad].market_id} "
            f"({type(trace[bad]).__name__} {bad}); replayed {len(redo)} window(s) again "
            "from the exact ledger")
        if progress is not None:
            progress.add_total(sum(len(feed.decision_times(feed.markets[w], spec.cadence_s))
                                   for w in redo))
        return [_Segment(redo), *segments[1:]]
    return segments


def _decisions(trace: Sequence[TraceItem]) -> int:
    return sum(1 for item in trace if isinstance(item, DecisionRow))


def _drain_progress(futures: list[Future[list[TraceItem]]], progress_queue: Any,
                    progress: Callable[[int], None] | None) -> None:
    """Forward workers' progress until one of ``futures`` is done (at once when none is
    given), then what is already queued."""
    while True:
        finished = not futures or any(f.done() for f in futures)
        try:
            n = progress_queue.get_nowait() if finished else progress_queue.get(timeout=0.05)
        except queue_module.Empty:
            if finished:
                return
            continue
        if progress is not None:
            progress(n)
