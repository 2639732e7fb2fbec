"""The graph's shared, typed state.  Each key has exactly one writer node, besides the
``intake`` node that clears every result key at the start of a run: on a reused thread (Studio,
the live runner's window threads) no result of an earlier decision survives into a later one.

``typing_extensions.TypedDict``: on Python 3.11 pydantic (and so the API server's schema
endpoint, which feeds Studio's input form) cannot build a schema from ``typing.TypedDict``.
"""

from __future__ import annotations

from typing import NotRequired

from typing_extensions import TypedDict

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
