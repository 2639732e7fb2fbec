"""The graph's nodes: thin adapters that read state, call a tool, and return one key.

All real work lives in ``core/`` (policy, guard) and ``tools/`` (analysts, the LLM seam, the
order path); nodes only wire the run's context into it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from core import guard as guard_rules
from core import policy
from core.records import (
    AggregatedSentiment,
    AIAnalysis,
    ExecutionReport,
    LedgerView,
    LLMUsage,
    RiskAssessment,
    SentimentScore,
    TraderDecision,
)
from core.settings import default_settings
from core.snapshot import MarketSnapshot
from graphs.context import Context, default_chat_model, default_sentiment
from graphs.state import AgentState
from tools import llm
from tools.execution import send_order
from tools.fair_value import estimate_fair_value
from tools.indicators_stream import TechnicalAnalyst
from tools.ledger import guard_ledger


def snapshot_of(state: AgentState) -> MarketSnapshot:
    """The snapshot as a model (the API server hands nodes plain JSON dicts)."""
    snap = state["snapshot"]
    return snap if isinstance(snap, MarketSnapshot) else MarketSnapshot.model_validate(snap)


def decision_id_of(state: AgentState, snap: MarketSnapshot) -> str:
    return state.get("decision_id") or f"{snap.market_id}@{snap.as_of:.3f}"


# Every key a decision writes; ``intake`` clears them so a run starts from a clean decision.
RESULT_KEYS = ("technical", "fair_value", "sentiment", "risk", "trader", "verdict", "execution")


async def intake(state: AgentState) -> dict[str, Any]:
    """Take the snapshot in: fix the decision id and clear the previous decision's results
    (a thread keeps its last state between runs)."""
    snap = snapshot_of(state)
    return {"decision_id": decision_id_of(state, snap), **dict.fromkeys(RESULT_KEYS)}


def _context(runtime: Runtime[Context]) -> Context:
    return runtime.context or Context()


def _model_name(model: Any) -> str:
    return str(getattr(model, "model_name", None) or getattr(model, "model", "llm"))


# --- analysts (parallel) ---------------------------------------------------------------

# One per process: incremental indicator streams, advanced by the new candles of each tick.
_TECHNICAL = TechnicalAnalyst()


async def technical_analyst(state: AgentState) -> dict[str, Any]:
    return {"technical": _TECHNICAL.analyse(snapshot_of(state).candles)}


async def fair_value(state: AgentState) -> dict[str, Any]:
    return {"fair_value": estimate_fair_value(snapshot_of(state))}


async def sentiment_analyst(state: AgentState, runtime: Runtime[Context]) -> dict[str, Any]:
    snap = snapshot_of(state)
    provider: Any = runtime.context.sentiment if runtime.context else None
    if provider is None:
        if not default_settings().sentiment_enabled:
            return {"sentiment": AggregatedSentiment(sources=(SentimentScore(
                source="recorded", skipped_reason="sentiment disabled by settings"),))}
        # The first use reads files (and may build HTTP clients): off the event loop.
        loaded = default_sentiment.cache_info().currsize > 0
        provider = default_sentiment() if loaded else await asyncio.to_thread(default_sentiment)
    if getattr(provider, "blocking", False):
        # Live sources fetch over the network once per window: never on the event loop.
        return {"sentiment": await asyncio.to_thread(provider.score, snap.as_of)}
    return {"sentiment": provider.score(snap.as_of)}


# --- decision ----------------------------------------------------------------------------

async def risk_manager(state: AgentState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = _context(runtime)
    snap = snapshot_of(state)
    fair = state.get("fair_value")
    cap = ctx.guard_limits.max_position_usd
    assessed = policy.assess_risk(snap, state["technical"], fair, state["sentiment"],
                                  appetite=ctx.appetite, max_position_usd=cap)
    # The model is consulted only when a trade could pass (an edge exists): cost control.
    if not ctx.use_llm or fair is None or fair.best_side() is None:
        return {"risk": assessed}
    model = ctx.risk_model or await asyncio.to_thread(default_chat_model)
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
        stake_usd=policy.stake_for(level, appetite=ctx.appetite, max_position_usd=cap),
        factors=(*assessed.factors, *factors),
        decided_by=f"llm:{_model_name(model)}",
        llm_usage=_usage(call, model),
    )}


def _proposal(analysis: AIAnalysis, snap: MarketSnapshot, state: AgentState, ctx: Context
              ) -> Any:
    return policy.proposal_for(analysis, snap, state.get("fair_value"),
                               stake_usd=state["risk"].stake_usd,
                               max_slippage=ctx.guard_limits.max_slippage)


async def trader(state: AgentState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = _context(runtime)
    snap = snapshot_of(state)
    fair = state.get("fair_value")
    deterministic = policy.decide(fair, state["technical"], state["sentiment"], state["risk"])
    fair_up = fair.fair_up if fair is not None else None
    if not ctx.use_llm:
        return {"trader": TraderDecision(
            analysis=deterministic, decided_by=policy.POLICY, p_up=fair_up,
            proposal=_proposal(deterministic, snap, state, ctx))}
    if fair is None or fair.best_side() is None:
        return {"trader": TraderDecision(
            analysis=deterministic, decided_by=policy.POLICY, p_up=fair_up,
            note="no edge after fees on either side: model not consulted")}
    model = ctx.trader_model or await asyncio.to_thread(default_chat_model)
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
        proposal=_proposal(call.value, snap, state, ctx), llm_usage=_usage(call, model))}


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

def _guard_inputs(ctx: Context, now: float) -> tuple[LedgerView, bool]:
    """The guard's I/O (journal read, STOP file): run off the event loop."""
    if ctx.ledger is not None:  # a re-run judges by the ledger its decision recorded
        return ctx.ledger, ctx.kill_switch.exists()
    journal, _ = ctx.journaling()
    return guard_ledger(journal, account=ctx.account, now=now), ctx.kill_switch.exists()


async def guard(state: AgentState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = _context(runtime)
    snap = snapshot_of(state)
    proposal = state["trader"].proposal
    now = ctx.now(snap.as_of)
    if proposal is None:  # hold: nothing to guard, no I/O needed
        ledger, kill = LedgerView(), False
    else:
        ledger, kill = await asyncio.to_thread(_guard_inputs, ctx, now)
    verdict = guard_rules.evaluate(proposal, snap, state.get("fair_value"), ctx.guard_limits,
                                   ledger, now, kill_switch_engaged=kill)
    return {"verdict": verdict}


def route_after_guard(state: AgentState) -> str:
    return "execute" if state["verdict"].approved else "__end__"


async def execute(state: AgentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Send the approved order once (journal, broker and STOP file are blocking I/O)."""
    ctx = _context(runtime)
    snap = snapshot_of(state)
    if ctx.execution_style != "taker":
        # A maker style rests its order from the runner's desk, which owns it across ticks.
        return {"execution": None}

    def send() -> ExecutionReport:
        journal, run_id = ctx.journaling()
        return send_order(verdict=state["verdict"], snapshot=snap,
                          decision_id=decision_id_of(state, snap), broker=ctx.order_broker,
                          journal=journal, account=ctx.account, run_id=run_id,
                          stop_file=ctx.kill_switch, now=ctx.now(snap.as_of))

    return {"execution": await asyncio.to_thread(send)}
