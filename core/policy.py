"""Deterministic risk and trading policy: what decides when no model is configured.

It reads the same analyst records the LLM would, and it is also where the stake is sized:
the stake is always computed here, never by a model (a model may only lower the risk level).
"""

from __future__ import annotations

from typing import Literal

from core.guard import MAX_WORST_PRICE
from core.records import (
    AggregatedSentiment,
    AIAnalysis,
    FairValueEstimate,
    IndicatorSignal,
    RiskAssessment,
    RiskLevel,
    Side,
    TradeProposal,
)
from core.snapshot import MarketSnapshot

POLICY = "policy"

# The user's risk appetite (RISK_LEVEL) sets the base stake as a fraction of MAX_POSITION_SIZE.
APPETITE_FRACTION: dict[str, float] = {"low": 0.25, "medium": 0.5, "high": 1.0}
# The assessed risk of this trade scales that base down.
RISK_MULTIPLIER: dict[RiskLevel, float] = {"low": 1.0, "medium": 0.6, "high": 0.3}
_LEVELS: tuple[RiskLevel, ...] = ("low", "medium", "high")

# Thresholds for risk factors.  A spread this wide costs more than a typical edge.
WIDE_SPREAD = 0.04
LATE_WINDOW_S = 180.0
HIGH_VOL_PER_SQRT_S = 1.5e-4


def risk_factors(
    snapshot: MarketSnapshot,
    technical: IndicatorSignal,
    fair: FairValueEstimate | None,
    sentiment: AggregatedSentiment,
) -> tuple[str, ...]:
    """Named reasons this trade is riskier than usual."""
    factors: list[str] = []
    if fair is None:
        return ("no fair value (price to beat unknown)",)
    side = fair.best_side()
    if not snapshot.price_to_beat_verified:
        factors.append("price to beat unverified")
    if fair.sigma_per_sqrt_s > HIGH_VOL_PER_SQRT_S:
        factors.append(f"high volatility {fair.sigma_per_sqrt_s:.2e}/sqrt(s)")
    if snapshot.time_to_close_s < LATE_WINDOW_S:
        factors.append(f"late in window ({snapshot.time_to_close_s:.0f}s left)")
    if side is not None:
        book = snapshot.book_for(side)
        if book is not None and book.bid is not None and book.ask is not None:
            spread = book.ask - book.bid
            if spread > WIDE_SPREAD:
                factors.append(f"wide spread {spread:.2f}")
        if technical.signal not in ("neutral", side):
            factors.append(f"technicals point {technical.signal}")
        if sentiment.confidence >= 0.3 and sentiment.label != "neutral":
            bullish = sentiment.label == "bullish"
            if bullish != (side == "up"):
                factors.append(f"sentiment {sentiment.label} against {side}")
    return tuple(factors)


def risk_level_for(factors: tuple[str, ...]) -> RiskLevel:
    if len(factors) == 0:
        return "low"
    return "medium" if len(factors) <= 2 else "high"


def stake_for(level: RiskLevel, *, appetite: str, max_position_usd: float) -> float:
    """Dollar stake for a risk level: base appetite times the level's multiplier, in cents."""
    stake = max_position_usd * APPETITE_FRACTION.get(appetite, 0.5) * RISK_MULTIPLIER[level]
    return round(stake, 2)


def riskier(a: RiskLevel, b: RiskLevel) -> RiskLevel:
    """The higher of two risk levels: a model can raise the level (shrink), never lower it."""
    return a if _LEVELS.index(a) >= _LEVELS.index(b) else b


def assess_risk(
    snapshot: MarketSnapshot,
    technical: IndicatorSignal,
    fair: FairValueEstimate | None,
    sentiment: AggregatedSentiment,
    *,
    appetite: str,
    max_position_usd: float,
) -> RiskAssessment:
    factors = risk_factors(snapshot, technical, fair, sentiment)
    level = risk_level_for(factors)
    return RiskAssessment(
        risk_level=level,
        stake_usd=stake_for(level, appetite=appetite, max_position_usd=max_position_usd),
        factors=factors,
        decided_by=POLICY,
    )


def decide(
    fair: FairValueEstimate | None,
    technical: IndicatorSignal,
    sentiment: AggregatedSentiment,
    risk: RiskAssessment,
) -> AIAnalysis:
    """Buy the side whose fair probability beats its all-in price; otherwise hold.

    Confidence is the model's probability of the chosen side in percent, so the guard's
    confidence threshold reads as "only trade when we think this side wins >= 70% of the time".
    """
    if fair is None:
        return AIAnalysis(decision="hold", confidence=0, risk_level=risk.risk_level,
                          reasoning="No price to beat, so no fair value: hold.")
    side: Side | None = fair.best_side()
    if side is None:
        return AIAnalysis(
            decision="hold",
            confidence=round(100 * max(fair.fair_up, fair.fair_down)),
            risk_level=risk.risk_level,
            reasoning=_explain(fair, technical, sentiment, None),
        )
    return AIAnalysis(
        decision=side,
        confidence=min(100, max(0, round(100 * fair.fair_for(side)))),
        risk_level=risk.risk_level,
        reasoning=_explain(fair, technical, sentiment, side),
    )


def proposal_for(analysis: AIAnalysis, snapshot: MarketSnapshot, fair: FairValueEstimate | None,
                 *, stake_usd: float, max_slippage: float) -> TradeProposal | None:
    """Turn a direction (from the policy or a model) into an order request.

    Deterministic: the stake is the risk manager's, the limit price the ask plus the allowed
    slippage (never above the venue's last tick).  A hold, no fair value or no ask: no order."""
    if analysis.decision == "hold" or fair is None:
        return None
    side: Side = analysis.decision
    book = snapshot.book_for(side)
    if book is None or book.ask is None:
        return None
    return TradeProposal(
        side=side,
        stake_usd=stake_usd,
        confidence=analysis.confidence,
        fair_p=fair.fair_for(side),
        ask=book.ask,
        worst_price=min(book.ask + max_slippage, MAX_WORST_PRICE),
    )


def _explain(
    fair: FairValueEstimate,
    technical: IndicatorSignal,
    sentiment: AggregatedSentiment,
    side: Literal["up", "down"] | None,
) -> str:
    pct = (fair.price / fair.price_to_beat - 1.0) * 100.0
    base = (f"BTC {fair.price:,.2f} vs price to beat {fair.price_to_beat:,.2f} ({pct:+.3f}%), "
            f"{fair.time_to_close_s:.0f}s left: fair P(up) {fair.fair_up:.3f}.")
    edges = (f" Edge after fees: up {_fmt(fair.edge_after_fees_up)}, "
             f"down {_fmt(fair.edge_after_fees_down)}.")
    context = (f" Technicals {technical.signal} ({technical.score:+.2f}); "
               f"sentiment {sentiment.label} ({sentiment.score:+.0f}).")
    verdict = f" Buy {side}." if side else " No side beats its price after fees: hold."
    return (base + edges + context + verdict)[:600]


def _fmt(edge: float | None) -> str:
    return "n/a" if edge is None else f"{edge:+.3f}"
