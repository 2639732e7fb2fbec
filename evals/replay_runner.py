"""The autonomous loop over recorded markets: window clock -> snapshot -> graph -> journal.

Windows are replayed in time order; inside each, the graph decides at the configured cadence
until an entry or the window's end, then the window is settled from the recorded outcome.
The replay clock is the only time the graph sees, so nothing after a decision time leaks in.

Decisions and settlements of all windows run on one timeline (time order; a settlement before
a decision at the same instant), so windows that overlap (5-minute markets inside a 15-minute
one) replay correctly; for back-to-back windows this is simply one window after the other.

The offline eval drives this same loop with a few options: ``keep_deciding`` (score a
forecast at every decision point; the guard's ``window`` rule then refuses further entries),
a subset of ``markets`` and a given ``account`` (to continue a journal it seeded),
``on_settlement`` to observe settlements, an injected ``chat_model``, and
``journal_decisions=False`` (it keeps its own record of each decision).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from core.clock import ReplayClock
from core.guard import GuardLimits
from core.logs import get_logger
from core.maker import ExecutionStyle, MakerParams, maker_params
from core.settings import Settings
from core.snapshot import MarketSnapshot
from evals.maker_replay import DeskDriver
from feeds.recorded import Outcome, RecordedMarket
from feeds.replay import CoverageGap, ReplayFeed
from graphs.context import Context
from graphs.graph import RECURSION_LIMIT, compile_graph
from graphs.state import AgentState
from tools.decision_log import DecisionLog, snapshot_fields
from tools.journal import Journal, RunSummary, SettledPosition
from tools.paper_broker import PaperBroker
from tools.sentiment import embedded_sentiment

log = get_logger("updown.runner")


def decision_record(state: AgentState, *, context: Context | None = None,
                    source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The decision with everything that re-runs it exactly (``updown explain``) as JSON-ready
    data: every node's record, the snapshot's hash and what rebuilds it (``source``: the
    recording a replay took it from; None copies the candles in, see
    ``tools.decision_log.snapshot_fields``) and the ``context`` the graph ran with (account,
    appetite, LLM switch, guard limits)."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, MarketSnapshot):
            out.update(snapshot_fields(value, source))
        elif hasattr(value, "model_dump"):
            out[key] = value.model_dump(mode="json")
        else:
            out[key] = value
    if context is not None:
        out["context"] = context_record(context)
    return out


def context_record(context: Context) -> dict[str, Any]:
    """The run's settings a decision depends on (its limits, sizing appetite, model switch)."""
    return {"account": context.account, "risk_appetite": context.appetite,
            "use_llm": bool(context.use_llm), "limits": _limits_json(context.guard_limits)}


class DecisionSink(Protocol):
    """Where each decision record goes (``tools.decision_log.DecisionLog`` or a stand-in)."""

    def append(self, record: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """What the terminal view shows after each decision."""

    window_index: int
    windows: int
    state: AgentState
    # Wall time of the decision: snapshot build plus the whole graph.
    latency_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SettlementEvent:
    """A window closed: its outcome (None = undeterminable) and the positions it settled."""

    market: RecordedMarket
    outcome: Outcome | None
    outcome_verified: bool
    settled_ts: float
    positions: tuple[SettledPosition, ...]


@dataclass
class ReplayReport:
    run_id: str
    account: str
    dataset: str
    windows: int
    skipped: dict[str, int]
    decisions: int
    decided_by: Counter[str]
    llm_calls: int
    summary: RunSummary
    unsettled: list[str] = field(default_factory=list)


class ReplayRunner:
    """Replays a recorded dataset through the one trading graph in paper mode."""

    def __init__(
        self,
        feed: ReplayFeed,
        settings: Settings,
        *,
        journal: Journal,
        decision_log: DecisionLog | DecisionSink | None,
        cadence_s: float,
        speed: float = 0.0,
        use_llm: bool | None = None,
        observer: Callable[[DecisionEvent], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        keep_deciding: bool = False,
        markets: Sequence[RecordedMarket] | None = None,
        account: str | None = None,
        stop_file: str | None = None,
        on_settlement: Callable[[SettlementEvent], None] | None = None,
        chat_model: Any = None,
        journal_decisions: bool = True,
        reflector: Any = None,
        execution_style: ExecutionStyle | None = None,
        maker: MakerParams | None = None,
    ) -> None:
        """``keep_deciding``: decide at every decision time even after a window's entry (the
        guard refuses a second entry), so every decision point has a forecast to score.
        ``markets``: replay only these windows of the feed (default: all).  ``account``: the
        journal account to trade (default ``replay:<run id>``, a fresh ledger per run).
        ``stop_file``: kill-switch path (default from settings).  ``decision_log`` None
        writes no JSONL log.  ``chat_model``: the
        model the risk manager and trader ask (default: built from settings).
        ``journal_decisions`` False leaves decision rows out of the journal (orders, executions
        and settlements, all the guard reads, are still journaled): for the offline eval,
        which keeps its own record of every decision.  ``reflector``
        (``tools.reflection.Reflector``, only `updown run` with REFLECTION_ENABLED): writes a
        lesson after each settled entry and offers recent ones to the trader."""
        self.feed = feed
        self.settings = settings
        self.journal = journal
        self.decision_log = decision_log
        self.cadence_s = cadence_s
        self.speed = speed
        self.use_llm = settings.llm_enabled if use_llm is None else use_llm
        self.observer = observer
        self._sleep = sleep
        self.keep_deciding = keep_deciding
        # Coverage is checked before any decision: a window whose price path (or book) does
        # not cover its decision times is skipped with its reason, never half-replayed.
        self.skipped_windows: list[CoverageGap] = (
            list(feed.skipped_windows) if markets is None else [])
        covered: list[RecordedMarket] = []
        for market in feed.markets if markets is None else markets:
            gap = feed.coverage_gap(market, cadence_s, settings.max_price_age_s)
            if gap is None:
                covered.append(market)
            else:
                self.skipped_windows.append(gap)
        self.markets = tuple(covered)
        self.account = account
        self.stop_file = stop_file
        self.on_settlement = on_settlement
        self.chat_model = chat_model
        self.journal_decisions = journal_decisions
        self.reflector = reflector
        # EXECUTION_STYLE: a maker style rests orders from a maker desk (evals.maker_replay),
        # stepped through every recorded book between decisions; ``maker`` overrides params.
        self.execution_style: ExecutionStyle = execution_style or settings.execution_style
        self.maker_params = maker or maker_params(settings)
        self.desk: DeskDriver | None = None
        # Replays are paper by construction, on derived prices to beat (GuardLimits.for_replay).
        self.limits = GuardLimits.for_replay(settings)
        self.graph = compile_graph()

    @property
    def skipped(self) -> dict[str, int]:
        """Windows left out by reason: the feed's (whole-feed runs) and the coverage check's."""
        return dict(sorted(Counter(g.reason for g in self.skipped_windows).items()))

    def run(self) -> ReplayReport:
        return asyncio.run(self.arun())

    def _timeline(self) -> list[tuple[float, int, int]]:
        """(time, kind, window) in replay order: kind 0 settles the window, 1 decides in it.

        Sorting puts a settlement before a decision at the same instant (the outcome is known
        at the close) and keeps each window's own decisions in time order."""
        events: list[tuple[float, int, int]] = []
        for index, market in enumerate(self.markets):
            events.extend((t, 1, index) for t in self.feed.decision_times(market, self.cadence_s))
            events.append((market.end_ts, 0, index))
        events.sort()
        return events

    async def arun(self) -> ReplayReport:
        markets = self.markets
        first = markets[0].start_ts if markets else 0.0
        clock = ReplayClock(first)
        run_id = self.journal.start_run(
            account="replay", mode="paper", dataset=self.feed.dataset.name,
            config={"cadence_s": self.cadence_s, "limits": _limits_json(self.limits),
                    "use_llm": self.use_llm, "model": self.settings.openai_model,
                    "risk_appetite": self.settings.risk_level,
                    "keep_deciding": self.keep_deciding,
                    "journal_decisions": self.journal_decisions,
                    "execution_style": self.execution_style},
        )
        account = self.account or f"replay:{run_id}"
        ctx = Context(account=account, limits=self.limits, risk_appetite=self.settings.risk_level,
                      journal=self.journal, run_id=run_id, clock=clock, use_llm=self.use_llm,
                      stop_file=self.stop_file, trader_model=self.chat_model,
                      risk_model=self.chat_model,
                      # Replays score the recorded corpus only: live sources would see the
                      # present, not the recorded past.
                      sentiment=embedded_sentiment(self.settings.sentiment_lookback_s),
                      lessons=self.reflector, execution_style=self.execution_style)
        if self.execution_style != "taker":
            self.desk = DeskDriver.build(
                self.feed, markets, style=self.execution_style, params=self.maker_params,
                limits=self.limits, journal=self.journal, account=account, run_id=run_id,
                stop_file=ctx.kill_switch, taker=cast(PaperBroker, ctx.order_broker))
        for gap in self.skipped_windows:
            log.warning("window_skipped", market_id=gap.market_id, reason=gap.reason,
                        detail=gap.detail)
        decided_by: Counter[str] = Counter()
        llm_calls = decisions = 0
        entered: set[int] = set()
        for t, kind, index in self._timeline():
            market = markets[index]
            if self.desk is not None:
                self.desk.advance_to(t)
            if kind == 0:
                clock.advance_to(max(clock.now(), t))
                if self.desk is not None:
                    self.desk.close(market.market_id, clock.now())
                settled = self._settle(market, account, clock.now())
                if self.reflector is not None and settled is not None:
                    await self.reflector.on_settled(settled, journal=self.journal)
                continue
            if index in entered and not self.keep_deciding:
                continue  # one entry per window: nothing more to decide here
            self._pace(clock.now(), t)
            clock.advance_to(t)
            started = time.perf_counter()
            state = await self._decide(market, t, ctx, run_id)
            latency_s = time.perf_counter() - started
            decisions += 1
            decided_by[state["trader"].decided_by] += 1
            resting = None if self.desk is None else self.desk.after_decision(
                snapshot=state["snapshot"], fair=state.get("fair_value"), trader=state["trader"],
                risk=state.get("risk"), decision_id=state["decision_id"], now=t)
            llm_calls += sum(1 for rec in (state["risk"], state["trader"])
                             if rec.llm_usage is not None)
            verdict = state["verdict"]
            if self.journal_decisions or self.decision_log is not None:
                record = decision_record(state, context=ctx, source={
                    "kind": "dataset", "dataset": self.feed.dataset.name,
                    "path": str(self.feed.dataset.path.resolve()),
                    "market_id": market.market_id, "as_of": t})
                record["execution_style"] = self.execution_style
                if resting is not None:
                    record["resting"] = resting.model_dump(mode="json")
                if self.journal_decisions:
                    self.journal.record_decision(
                        run_id=run_id, decision_id=state["decision_id"],
                        market_id=market.market_id, as_of=t,
                        decided_by=state["trader"].decided_by,
                        decision=state["trader"].analysis.decision, approved=verdict.approved,
                        rules_fired=[h.rule for h in verdict.rules_fired if h.action == "reject"],
                        record=record)
                if self.decision_log is not None:
                    self.decision_log.append(record)
            execution = state.get("execution")
            log.info("decision", decision_id=state["decision_id"],
                     market_id=market.market_id, as_of=t,
                     decided_by=state["trader"].decided_by,
                     decision=state["trader"].analysis.decision,
                     confidence=state["trader"].analysis.confidence,
                     approved=verdict.approved,
                     rules_fired=[h.rule for h in verdict.rules_fired],
                     execution=execution.status if execution else None)
            if self.observer is not None:
                self.observer(DecisionEvent(index, len(markets), state, latency_s))
            if execution is not None and execution.status == "filled":
                entered.add(index)
            if self.desk is not None and self.desk.entered(market.market_id):
                entered.add(index)
        if self.desk is not None:
            self.desk.finish(clock.now())
        self.journal.finish_run(run_id, ended_ts=clock.now())
        return ReplayReport(
            run_id=run_id, account=account, dataset=self.feed.dataset.name,
            windows=len(markets), skipped=self.skipped, decisions=decisions,
            decided_by=decided_by, llm_calls=llm_calls,
            summary=self.journal.summary(run_id=run_id),
            unsettled=self.journal.unsettled_markets(account=account),
        )

    async def _decide(self, market: RecordedMarket, t: float, ctx: Context, run_id: str
                      ) -> AgentState:
        snapshot = self.feed.snapshot_at(market, t)
        # Unique across runs sharing a journal; readable as window@time.
        decision_id = f"{market.market_id}@{t:.0f}/{run_id[:12]}"
        out = await self.graph.ainvoke(
            {"snapshot": snapshot, "decision_id": decision_id}, context=ctx,
            config={"recursion_limit": RECURSION_LIMIT},
        )
        return cast(AgentState, out)

    def _settle(self, market: RecordedMarket, account: str, now: float
                ) -> SettlementEvent | None:
        outcome, verified = self.feed.settlement(market)
        if outcome is None:
            log.warning("settlement_unknown", market_id=market.market_id)
            if self.on_settlement is not None:
                self.on_settlement(SettlementEvent(market, None, False, now, ()))
            return None
        settled = self.journal.record_settlement(account=account, market_id=market.market_id,
                                                 outcome=outcome, outcome_verified=verified,
                                                 settled_ts=now)
        event = SettlementEvent(market, outcome, verified, now, tuple(settled))
        if self.on_settlement is not None:
            self.on_settlement(event)
        log.info("settlement", market_id=market.market_id, outcome=outcome,
                 outcome_verified=verified, positions=len(settled),
                 pnl_usd=round(sum(p.pnl_usd for p in settled), 6))
        return event

    def _pace(self, now: float, t: float) -> None:
        """At --speed X, wait (t - now) / X real seconds; speed 0 replays as fast as it can."""
        if self.speed > 0 and t > now:
            self._sleep((t - now) / self.speed)


def _limits_json(limits: GuardLimits) -> dict[str, object]:
    return {k: getattr(limits, k) for k in limits.__dataclass_fields__}
