"""Typed records every node writes: the decision as data.

Each record lands unchanged in graph state, the JSONL decision log, the SQLite journal and the
Studio view.  Field names are the trading-domain names used everywhere in the project.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Side = Literal["up", "down"]
Direction = Literal["up", "down", "neutral"]
Decision = Literal["up", "down", "hold"]
RiskLevel = Literal["low", "medium", "high"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class IndicatorSignal(_Record):
    """technical_analyst output: TA-Lib indicators on 1-minute candles and a preliminary signal."""

    candles_used: int = Field(ge=0)
    rsi: float | None = None
    macd: float | None = None
    macd_signal: float | None = None
    macd_hist: float | None = None
    sma_fast: float | None = None
    sma_slow: float | None = None
    ema_fast: float | None = None
    ema_slow: float | None = None
    bb_upper: float | None = None
    bb_middle: float | None = None
    bb_lower: float | None = None
    bb_percent_b: float | None = None
    volume_ratio: float | None = None
    # -1 (strongly down) .. +1 (strongly up), the vote of the indicators that are warm.
    score: float = Field(default=0.0, ge=-1.0, le=1.0)
    signal: Direction = "neutral"
    reasons: tuple[str, ...] = ()
    # The 15-minute frame (complete 15-minute candles aggregated from the 1-minute ones):
    # reported as context, not voted (no measured skill beyond moneyness).
    candles_15m: int = Field(default=0, ge=0)
    rsi_15m: float | None = None
    macd_hist_15m: float | None = None
    ema_fast_15m: float | None = None
    ema_slow_15m: float | None = None
    bb_percent_b_15m: float | None = None


class FairValueEstimate(_Record):
    """fair_value output: the agent's P(up) and each side's edge after fees.

    ``fair_up`` is what the agent trades on and evals score as the agent: the model's P(up)
    combined with the market's mid when a book is present (else the model alone).  ``model_up``
    is the model by itself (moneyness, volatility, tails, basis/lag allowance).
    """

    fair_up: float = Field(ge=0.0, le=1.0)
    price: float
    price_to_beat: float
    price_to_beat_verified: bool
    time_to_close_s: float = Field(ge=0.0)
    # Per-sqrt-second volatility of log price used in the model.
    sigma_per_sqrt_s: float = Field(ge=0.0)
    # ln(price / price_to_beat)
    log_moneyness: float
    up_ask: float | None = None
    down_ask: float | None = None
    market_up_mid: float | None = None
    fee_up_per_share: float | None = None
    fee_down_per_share: float | None = None
    # fair probability of the side minus (ask + fee per share); None when that side has no ask.
    edge_after_fees_up: float | None = None
    edge_after_fees_down: float | None = None
    # The model alone (None on records written before it existed: then fair_up is the model).
    model_up: float | None = Field(default=None, ge=0.0, le=1.0)
    # Weight of the market mid in logit space (0 when no mid was used), the seconds added to
    # time left for price age and reference lag, the basis allowance (sd of log price), the
    # Student-t degrees of freedom (None: normal) and the parameter file's version.
    market_weight: float = 0.0
    lag_s: float = Field(default=0.0, ge=0.0)
    basis_sd: float = Field(default=0.0, ge=0.0)
    tail_dof: float | None = None
    model_version: str | None = None

    @property
    def fair_down(self) -> float:
        return 1.0 - self.fair_up

    def fair_for(self, side: Side) -> float:
        return self.fair_up if side == "up" else 1.0 - self.fair_up

    def edge_for(self, side: Side) -> float | None:
        return self.edge_after_fees_up if side == "up" else self.edge_after_fees_down

    def best_side(self) -> Side | None:
        """The side with the larger positive edge after fees, if any."""
        edges = [(e, s) for s, e in (("up", self.edge_after_fees_up),
                                     ("down", self.edge_after_fees_down)) if e is not None]
        if not edges:
            return None
        edge, side = max(edges)
        return side if edge > 0 else None  # type: ignore[return-value]


class SentimentScore(_Record):
    """One source's sentiment: -100 (bearish) .. +100 (bullish)."""

    source: str
    score: float = Field(default=0.0, ge=-100.0, le=100.0)
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    items: int = Field(default=0, ge=0)
    newest_item_ts: float | None = None
    # Why the source contributed nothing (no key, no items in the lookback, fetch failed ...).
    skipped_reason: str | None = None


class AggregatedSentiment(_Record):
    """sentiment_analyst output: confidence-weighted blend of the sources."""

    score: float = Field(default=0.0, ge=-100.0, le=100.0)
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    label: Literal["bullish", "bearish", "neutral"] = "neutral"
    sources: tuple[SentimentScore, ...] = ()
    lookback_s: float = 0.0


class LLMUsage(_Record):
    """What one node's model call cost."""

    calls: int = Field(default=1, ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    usd: float = Field(default=0.0, ge=0.0)


class RiskAssessment(_Record):
    """risk_manager output.  ``stake_usd`` is computed by deterministic code, never by a model."""

    risk_level: RiskLevel
    stake_usd: float = Field(ge=0.0)
    factors: tuple[str, ...] = ()
    decided_by: str
    llm_usage: LLMUsage | None = None


class AIAnalysis(_Record):
    """The trader's structured output (the original design's AIAnalysis). No size field: ever."""

    decision: Decision
    confidence: int = Field(ge=0, le=100)
    reasoning: str = Field(max_length=600)
    risk_level: RiskLevel


class TradeProposal(_Record):
    """What the trader asks the guard to allow; built by deterministic code from the analysis."""

    side: Side
    stake_usd: float = Field(ge=0.0)
    confidence: int = Field(ge=0, le=100)
    fair_p: float = Field(ge=0.0, le=1.0)
    ask: float = Field(ge=0.0, le=1.0)
    worst_price: float = Field(ge=0.0, le=1.0)


class TraderDecision(_Record):
    """trader output: the analysis, who produced it, and the proposal (None on hold)."""

    analysis: AIAnalysis
    decided_by: str
    # The agent's probability that the window resolves Up, after the trader: what evals score.
    p_up: float | None = Field(default=None, ge=0.0, le=1.0)
    proposal: TradeProposal | None = None
    # Why the LLM was not asked, or why its answer was discarded (timeout, refusal ...).
    note: str | None = None
    llm_usage: LLMUsage | None = None


class RuleHit(_Record):
    """One guard rule that fired: it either rejected the order or shrank its stake."""

    rule: str
    action: Literal["reject", "shrink"] = "reject"
    detail: str


class Verdict(_Record):
    """guard output: approved or not, the (possibly shrunk) stake, and every rule that fired."""

    approved: bool
    side: Side | None = None
    stake_usd: float = Field(default=0.0, ge=0.0)
    worst_price: float | None = None
    rules_fired: tuple[RuleHit, ...] = ()
    # What the rules judged by, kept so a logged decision re-runs exactly (``updown explain``):
    # later the journal also holds this decision's own order.  None/False/None on a hold.
    ledger: LedgerView | None = None
    kill_switch_engaged: bool = False
    judged_at: float | None = None

    def decision(self) -> tuple[object, ...]:
        """What was decided, without the inputs it was judged by: two verdicts that agree
        here send the same order (or none) whatever ledger each saw."""
        return (self.approved, self.side, self.stake_usd, self.worst_price, self.rules_fired)


ExecutionStatus = Literal["filled", "killed", "error"]


class ExecutionReport(_Record):
    """execute output: what the broker did with the approved order (never retried)."""

    status: ExecutionStatus
    broker: str
    order_id: str
    market_id: str
    side: Side
    stake_usd: float
    worst_price: float
    shares: float = 0.0
    avg_price: float | None = None
    notional_usd: float = 0.0
    fee_usd: float = 0.0
    reason: str | None = None
    # A live match is provisional until every trade of it is final on chain (CONFIRMED or
    # FAILED): exposure from the moment of the match, a position only once confirmed.
    # Paper fills are final at once.
    final: bool = True
    # The venue's trade ids of the fill (live), by which a provisional fill is re-checked.
    trade_ids: tuple[str, ...] = ()


# What became of a filled execution on chain (journal ``fills``): provisional until the
# venue's trades are CONFIRMED (a position) or FAILED (reversed: no position, no P&L).
FillState = Literal["provisional", "confirmed", "failed"]
# A winning position's redemption (journal ``redemptions``); failed ones are retried.
RedemptionState = Literal["pending", "submitted", "confirmed", "failed"]


class LedgerView(_Record):
    """What the guard needs to know of past trading, read from the journal for one account."""

    entered_market_ids: frozenset[str] = frozenset()
    orders_today: int = Field(default=0, ge=0)
    # Realised P&L of positions settled since the start of the UTC day (negative = loss).
    realized_pnl_today: float = 0.0
    # Losses in a row among the most recent settled positions.
    consecutive_losses: int = Field(default=0, ge=0)
    last_loss_ts: float | None = None
    # Fills matched at the venue and not yet final on chain: already in entered windows and
    # orders today, and their cost is open exposure until confirmed or reversed.
    provisional_fills: int = Field(default=0, ge=0)
    provisional_exposure_usd: float = Field(default=0.0, ge=0.0)
