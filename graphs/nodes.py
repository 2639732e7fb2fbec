"""The graph's nodes: thin adapters that read state, call a tool, and return one key.

All real work lives in ``tools/`` and ``agent/``; nodes only wire context into it.
"""

from __future__ import annotations

import asyncio
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from core import guard as guard_rules
from core import policy
from core.records import (
    AggregatedSentiment,
    AIAnalysis,
    ExecutionReport,
    ExecutionStatus,
    LedgerView,
    LLMUsage,
    RiskAssessment,
    SentimentScore,
    TradeProposal,
    TraderDecision,
)
from core.settings import Settings, default_settings
from core.snapshot import MarketSnapshot
from graphs.context import Context
from graphs.state import AgentState
from tools import llm
from tools.fair_value import estimate_fair_value
from tools.indicators_stream import TechnicalAnalyst
from tools.paper_broker import PaperBroker

DAY_S = 86400.0
EMBEDDED_TEXTS = Path(__file__).resolve().parent.parent / "data" / "news_social" / "texts.csv.gz"


def snapshot_of(state: AgentState) -> MarketSnapshot:
    """The snapshot as a model (the API server hands nodes plain JSON dicts)."""
    snap = state["snapshot"]
    return snap if isinstance(snap, MarketSnapshot) else MarketSnapshot.model_validate(snap)


def decision_id_of(state: AgentState, snap: MarketSnapshot) -> str:
    return state.get("decision_id") or f"{snap.market_id}@{snap.as_of:.3f}"


def _settings() -> Settings:
    return default_settings()


def _limits(ctx: Context) -> guard_rules.GuardLimits:
    if ctx.limits is not None:
        return ctx.limits  # type: ignore[no-any-return]
    return guard_rules.GuardLimits.from_settings(_settings())


def _use_llm(ctx: Context) -> bool:
    if ctx.use_llm is not None:
        return ctx.use_llm
    return _settings().llm_enabled


@lru_cache(maxsize=1)
def _default_model() -> Any:
    return llm.make_chat_model(_settings())


def _model_name(model: Any) -> str:
    return str(getattr(model, "model_name", None) or getattr(model, "model", "llm"))


# --- analysts (parallel) ---------------------------------------------------------------

# One per process: incremental indicator streams, advanced by the new candles of each tick.
_TECHNICAL = TechnicalAnalyst()


async def technical_analyst(state: AgentState) -> dict[str, Any]:
    return {"technical": _TECHNICAL.analyse(snapshot_of(state).candles)}


async def fair_value(state: AgentState) -> dict[str, Any]:
    return {"fair_value": estimate_fair_value(snapshot_of(state))}


@lru_cache(maxsize=1)
def embedded_sentiment() -> Any:
    """The embedded recorded corpus (real dated headlines/posts): what replays score."""
    from tools.sentiment import RecordedSentiment, TextCorpus

    return RecordedSentiment(TextCorpus.load(EMBEDDED_TEXTS), _settings().sentiment_lookback_s)


@lru_cache(maxsize=1)
def _default_sentiment() -> Any:
    """Studio and live: the live sources whose keys are set, with the recorded corpus beside
    them when "recorded" is listed; with no live source configured, the recorded corpus."""
    from tools.sentiment import TextCorpus
    from tools.sentiment_live import LiveSentiment, build_sources

    settings = _settings()
    built, skipped = build_sources(settings)
    if not built:
        return embedded_sentiment()
    corpus = TextCorpus.load(EMBEDDED_TEXTS) if "recorded" in settings.sentiment_sources else None
    return LiveSentiment(settings, sources=built, skipped=skipped, corpus=corpus)


async def sentiment_analyst(state: AgentState, runtime: Runtime[Context]) -> dict[str, Any]:
    snap = snapshot_of(state)
    provider: Any = runtime.context.sentiment if runtime.context else None
    if provider is None:
        settings = _settings()
        if not settings.sentiment_enabled:
            return {"sentiment": AggregatedSentiment(sources=(SentimentScore(
                source="recorded", skipped_reason="sentiment disabled by settings"),))}
        # The first use reads files (and may build HTTP clients): off the event loop.
        loaded = _default_sentiment.cache_info().currsize > 0
        provider = _default_sentiment() if loaded else await asyncio.to_thread(
            _default_sentiment)
    if getattr(provider, "blocking", False):
        # Live sources fetch over the network once per window: never on the event loop.
        return {"sentiment": await asyncio.to_thread(provider.score, snap.as_of)}
    return {"sentiment": provider.score(snap.as_of)}


# --- decision ----------------------------------------------------------------------------

async def risk_manager(state: AgentState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = runtime.context or Context()
    snap = snapshot_of(state)
    fair = state.get("fair_value")
    limits = _limits(ctx)
    appetite = ctx.risk_appetite or _settings().risk_level
    assessed = policy.assess_risk(snap, state["technical"], fair, state["sentiment"],
                                  appetite=appetite, max_position_usd=limits.max_position_usd)
    # The model is consulted only when a trade could pass (an edge exists): cost control.
    if not _use_llm(ctx) or fair is None or fair.best_side() is None:
        return {"risk": assessed}
    model = ctx.risk_model or await asyncio.to_thread(_default_model)
    fields = llm.prompt_fields(snap, state["technical"], fair, state["sentiment"], assessed)
    call = await llm.call_structured(model, llm.RiskReview, llm.render("risk_manager", fields))
    if not isinstance(call.value, llm.RiskReview):
        return {"risk": assessed.model_copy(update={
            "factors": (*assessed.factors, call.note or "risk model abstained"),
            "llm_usage": _usage(call, model),
        })}
    # The model may only raise the risk level, which can only shrink the stake.
    level = policy.riskier(assessed.risk_level, call.value.risk_level)
    factors = tuple(f[:120] for f in call.value.factors[:5])
    return {"risk": RiskAssessment(
        risk_level=level,
        stake_usd=policy.stake_for(level, appetite=appetite,
                                   max_position_usd=limits.max_position_usd),
        factors=(*assessed.factors, *factors),
        decided_by=f"llm:{_model_name(model)}",
        llm_usage=_usage(call, model),
    )}


def _proposal(analysis: AIAnalysis, snap: MarketSnapshot, state: AgentState,
              limits: guard_rules.GuardLimits) -> TradeProposal | None:
    """Deterministic: turn a direction into an order request sized by the risk manager."""
    fair = state.get("fair_value")
    if analysis.decision == "hold" or fair is None:
        return None
    side = analysis.decision
    book = snap.book_for(side)
    if book is None or book.ask is None:
        return None
    return TradeProposal(
        side=side,
        stake_usd=state["risk"].stake_usd,
        confidence=analysis.confidence,
        fair_p=fair.fair_for(side),
        ask=book.ask,
        worst_price=min(book.ask + limits.max_slippage, guard_rules.MAX_WORST_PRICE),
    )


async def trader(state: AgentState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = runtime.context or Context()
    snap = snapshot_of(state)
    fair = state.get("fair_value")
    limits = _limits(ctx)
    deterministic = policy.decide(fair, state["technical"], state["sentiment"], state["risk"])
    fair_up = fair.fair_up if fair is not None else None
    if not _use_llm(ctx):
        return {"trader": TraderDecision(
            analysis=deterministic, decided_by=policy.POLICY, p_up=fair_up,
            proposal=_proposal(deterministic, snap, state, limits))}
    if fair is None or fair.best_side() is None:
        return {"trader": TraderDecision(
            analysis=deterministic, decided_by=policy.POLICY, p_up=fair_up,
            note="no edge after fees on either side: model not consulted")}
    model = ctx.trader_model or await asyncio.to_thread(_default_model)
    name = f"llm:{_model_name(model)}"
    risk = state["risk"]
    if risk.llm_usage is not None and risk.decided_by == policy.POLICY:
        # The risk manager's call to the same provider just failed (timeout, 429 storm,
        # refusal, bad output): hold without a second call, which would only double the
        # latency and the bill of a failing provider.
        note = f"{risk.factors[-1] if risk.factors else 'risk model abstained'}; " \
               "trader model not consulted"
        hold = AIAnalysis(decision="hold", confidence=0, risk_level=risk.risk_level,
                          reasoning=f"Abstained: {note}.")
        return {"trader": TraderDecision(analysis=hold, decided_by=name, note=note,
                                         p_up=fair_up)}
    fields = llm.prompt_fields(snap, state["technical"], fair, state["sentiment"], risk)
    if ctx.lessons is not None:  # untrusted notes from settled windows, bounded in the prompt
        fields["lessons"] = llm.lessons_block(
            await asyncio.to_thread(ctx.lessons.lessons_for, ctx.account, snap.as_of))
    call = await llm.call_structured(model, AIAnalysis, llm.render("trader", fields))
    if not isinstance(call.value, AIAnalysis):
        hold = AIAnalysis(decision="hold", confidence=0, risk_level=risk.risk_level,
                          reasoning=f"Abstained: {call.note}.")
        return {"trader": TraderDecision(analysis=hold, decided_by=name, note=call.note,
                                         p_up=fair_up, llm_usage=_usage(call, model))}
    return {"trader": TraderDecision(
        analysis=call.value, decided_by=name, p_up=_llm_p_up(call.value, fair_up),
        proposal=_proposal(call.value, snap, state, limits), llm_usage=_usage(call, model))}


def _llm_p_up(analysis: AIAnalysis, fair_up: float | None) -> float | None:
    """The model states a side and its confidence in it; on hold it states no direction."""
    if analysis.decision == "up":
        return analysis.confidence / 100.0
    if analysis.decision == "down":
        return 1.0 - analysis.confidence / 100.0
    return fair_up


def _usage(call: llm.LLMCall, model: Any) -> LLMUsage:
    return LLMUsage(prompt_tokens=call.prompt_tokens, completion_tokens=call.completion_tokens,
                    usd=call.usd(_model_name(model)))


# --- money path --------------------------------------------------------------------------

def _now(ctx: Context, snap: MarketSnapshot) -> float:
    return float(ctx.clock.now()) if ctx.clock is not None else snap.as_of


def _stop_file(ctx: Context) -> Path:
    return Path(ctx.stop_file) if ctx.stop_file else _settings().stop_file


def ledger_for(ctx: Context, now: float) -> LedgerView:
    """The ledger view the guard judges by: the journal's, for the context's account."""
    if ctx.journal is None:
        return LedgerView()
    day_start = math.floor(now / DAY_S) * DAY_S
    view: LedgerView = ctx.journal.ledger_view(account=ctx.account, day_start=day_start, now=now)
    return view


def _guard_inputs(ctx: Context, now: float) -> tuple[LedgerView, bool]:
    """The guard's I/O (journal read, STOP file): run off the event loop."""
    return ledger_for(ctx, now), _stop_file(ctx).exists()


async def guard(state: AgentState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = runtime.context or Context()
    snap = snapshot_of(state)
    proposal = state["trader"].proposal
    now = _now(ctx, snap)
    if proposal is None:  # hold: nothing to guard, no I/O needed
        ledger, kill = LedgerView(), False
    else:
        ledger, kill = await asyncio.to_thread(_guard_inputs, ctx, now)
    verdict = guard_rules.evaluate(proposal, snap, state.get("fair_value"), _limits(ctx),
                                   ledger, now, kill_switch_engaged=kill)
    return {"verdict": verdict}


def route_after_guard(state: AgentState) -> str:
    return "execute" if state["verdict"].approved else "__end__"


async def execute(state: AgentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Send the approved order once (journal, broker and STOP file are blocking I/O)."""
    ctx = runtime.context or Context()
    return await asyncio.to_thread(_execute, state, ctx)


def _execute(state: AgentState, ctx: Context) -> dict[str, Any]:
    """Journal the intent, check the kill switch, send once; an exception means "unknown"."""
    snap = snapshot_of(state)
    verdict = state["verdict"]
    side, worst_price = verdict.side, verdict.worst_price
    if not verdict.approved or side is None or worst_price is None:
        raise RuntimeError("execute reached without an approved verdict")  # structural bug
    decision_id = decision_id_of(state, snap)
    order_id = f"{decision_id}#1"
    broker = ctx.broker or PaperBroker()
    now = _now(ctx, snap)

    def unsent(status: ExecutionStatus, reason: str) -> dict[str, Any]:
        return {"execution": ExecutionReport(
            status=status, broker=broker.name, order_id=order_id, market_id=snap.market_id,
            side=side, stake_usd=verdict.stake_usd, worst_price=worst_price, reason=reason)}

    # The kill switch is checked again right before the order, after any model latency.
    if _stop_file(ctx).exists():
        return unsent("killed", "STOP file present at send time")
    if ctx.journal is not None:
        from tools.journal import DuplicateEntryError

        try:
            ctx.journal.record_order_intent(
                account=ctx.account, run_id=ctx.run_id or "", decision_id=decision_id,
                order_id=order_id, market_id=snap.market_id, side=side,
                stake_usd=verdict.stake_usd, worst_price=worst_price, created_ts=now)
        except DuplicateEntryError:
            return unsent("killed", "journal already holds an entry for this window")
    try:
        rep = broker.place_market_buy(order_id=order_id, snapshot=snap, side=side,
                                      stake_usd=verdict.stake_usd, worst_price=worst_price)
    except Exception as exc:  # outcome unknown: record it for reconciliation, never resend
        rep = unsent("error", f"outcome unknown ({type(exc).__name__}): reconcile before "
                     "any new order")["execution"]
    if ctx.journal is not None:
        ctx.journal.record_execution(rep, ts=now)
    return {"execution": rep}
