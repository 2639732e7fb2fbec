"""The graph's shared, typed state.  Each key has exactly one writer node."""

from __future__ import annotations

from typing import NotRequired, TypedDict

from core.records import (
    AggregatedSentiment,
    ExecutionReport,
    FairValueEstimate,
    IndicatorSignal,
    RiskAssessment,
    TraderDecision,
    Verdict,
)
from core.snapshot import MarketSnapshot


class AgentInput(TypedDict):
    """What a caller provides: the market as of the decision time."""

    snapshot: MarketSnapshot
    # Stable id of this decision; derived from market and time when absent.
    decision_id: NotRequired[str]


class AgentState(AgentInput, total=False):
    technical: IndicatorSignal  # technical_analyst
    fair_value: FairValueEstimate | None  # fair_value (None: no price to beat)
    sentiment: AggregatedSentiment  # sentiment_analyst
    risk: RiskAssessment  # risk_manager
    trader: TraderDecision  # trader
    verdict: Verdict  # guard
    execution: ExecutionReport  # execute (only when the guard approved)
