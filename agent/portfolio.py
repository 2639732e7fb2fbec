"""The portfolio of one journal account (``updown portfolio``; the original ``portfolio_status``).

Read-only: open positions (filled and final on chain, not settled), provisional fills
(matched, not final: exposure), fills that FAILED on chain (reversed: no position, no P&L),
winning positions not redeemed yet, settled positions with P&L, today's realised
P&L against the daily loss limit (after any manual reset), orders today, the losing streak and
cooldown, orders whose outcome is still unknown, and the last reconciliation findings.  All of
it comes from the journal; ``updown portfolio --settle`` first asks the venue which windows
have resolved (``tools.polymarket.settlement``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from core.guard import GuardLimits
from core.records import ExecutionReport
from tools.journal import (
    DailyLossReset,
    FillRecord,
    Journal,
    OrderIntent,
    ReconciliationRecord,
    RedemptionRecord,
    SettledPosition,
)
from tools.journal.redemptions import OPEN_STATES
from tools.ledger import guard_ledger


@dataclass(frozen=True, slots=True)
class PortfolioReport:
    account: str
    now: float
    open_positions: list[ExecutionReport]
    settled: list[SettledPosition]
    # Intents whose outcome is unknown (pending or 'error'): reconcile before trading.
    unknown: list[OrderIntent]
    intents_by_status: Counter[str]
    realized_pnl_usd: float
    realized_pnl_today_usd: float
    fees_usd: float
    open_cost_usd: float
    orders_today: int
    consecutive_losses: int
    cooldown_until: float | None
    daily_loss_limit_usd: float
    max_orders_per_day: int
    resets: list[DailyLossReset] = field(default_factory=list)
    reconciliations: list[ReconciliationRecord] = field(default_factory=list)
    # Matched at the venue, not final on chain: exposure, not yet positions.
    provisional: list[FillRecord] = field(default_factory=list)
    # Matches whose trades FAILED on chain: no position, no P&L, the stake back.
    failed_fills: list[FillRecord] = field(default_factory=list)
    # Winning positions not redeemed yet (pending, submitted or failed: retried).
    unredeemed: list[RedemptionRecord] = field(default_factory=list)

    @property
    def unredeemed_usd(self) -> float:
        return round(sum(r.payout_usd for r in self.unredeemed), 6)

    @property
    def daily_loss_halted(self) -> bool:
        return self.realized_pnl_today_usd <= -self.daily_loss_limit_usd

    @property
    def wins(self) -> int:
        return sum(1 for p in self.settled if p.pnl_usd >= 0)

    @property
    def losses(self) -> int:
        return sum(1 for p in self.settled if p.pnl_usd < 0)


def build_portfolio(journal: Journal, *, account: str, limits: GuardLimits, now: float
                    ) -> PortfolioReport:
    executions = journal.executions(account=account)
    settled = journal.settlements(account=account)
    settled_ids = {p.order_id for p in settled}
    provisional = journal.fills(account=account, state="provisional")
    provisional_ids = {f.order_id for f in provisional}
    open_positions = [e for e in executions if e.status == "filled"
                      and e.order_id not in settled_ids and e.order_id not in provisional_ids]
    intents = journal.intents(account=account)
    unknown = journal.pending_intents(account=account, include_errors=True)
    view = guard_ledger(journal, account=account, now=now)
    cooldown_until = None
    if (view.consecutive_losses >= limits.max_consecutive_losses
            and view.last_loss_ts is not None
            and now - view.last_loss_ts < limits.loss_cooldown_s):
        cooldown_until = view.last_loss_ts + limits.loss_cooldown_s
    return PortfolioReport(
        account=account, now=now, open_positions=open_positions, settled=settled,
        unknown=unknown, intents_by_status=Counter(i.status for i in intents),
        realized_pnl_usd=round(sum(p.pnl_usd for p in settled), 6),
        realized_pnl_today_usd=view.realized_pnl_today,
        fees_usd=round(sum(e.fee_usd for e in executions if e.status == "filled"), 6),
        open_cost_usd=round(sum(e.notional_usd + e.fee_usd for e in open_positions), 6),
        orders_today=view.orders_today, consecutive_losses=view.consecutive_losses,
        cooldown_until=cooldown_until, daily_loss_limit_usd=limits.daily_loss_limit_usd,
        max_orders_per_day=limits.max_orders_per_day,
        resets=journal.daily_loss_resets(account=account),
        reconciliations=journal.reconciliations(account=account)[-10:],
        provisional=provisional,
        failed_fills=journal.fills(account=account, state="failed"),
        unredeemed=journal.redemptions(account=account, states=OPEN_STATES),
    )


def portfolio_json(report: PortfolioReport) -> dict[str, object]:
    """The report as JSON-ready data (``updown portfolio --json``)."""
    return {
        "account": report.account, "now": report.now,
        "open_positions": [e.model_dump(mode="json") for e in report.open_positions],
        "settled": [{"order_id": p.order_id, "market_id": p.market_id, "side": p.side,
                     "outcome": p.outcome, "shares": p.shares, "pnl_usd": p.pnl_usd,
                     "settled_ts": p.settled_ts} for p in report.settled],
        "unknown_outcome_orders": [i.order_id for i in report.unknown],
        "intents_by_status": dict(report.intents_by_status),
        "realized_pnl_usd": report.realized_pnl_usd,
        "realized_pnl_today_usd": report.realized_pnl_today_usd,
        "fees_usd": report.fees_usd, "open_cost_usd": report.open_cost_usd,
        "orders_today": report.orders_today, "max_orders_per_day": report.max_orders_per_day,
        "daily_loss_limit_usd": report.daily_loss_limit_usd,
        "daily_loss_halted": report.daily_loss_halted,
        "consecutive_losses": report.consecutive_losses,
        "cooldown_until": report.cooldown_until,
        "wins": report.wins, "losses": report.losses,
        "daily_loss_resets": [{"reset_ts": r.reset_ts, "note": r.note} for r in report.resets],
        "reconciliations": [{"order_id": r.order_id, "outcome": r.outcome, "detail": r.detail,
                             "ts": r.ts} for r in report.reconciliations],
        "provisional_fills": [_fill_json(f) for f in report.provisional],
        "failed_fills": [_fill_json(f) for f in report.failed_fills],
        "unredeemed": [{"order_id": r.order_id, "market_id": r.market_id, "shares": r.shares,
                        "payout_usd": r.payout_usd, "state": r.state, "attempts": r.attempts,
                        "detail": r.detail} for r in report.unredeemed],
        "unredeemed_usd": report.unredeemed_usd,
    }


def _fill_json(f: FillRecord) -> dict[str, object]:
    return {"order_id": f.order_id, "market_id": f.market_id, "state": f.state,
            "matched_shares": f.matched_shares, "matched_cost_usd": round(
                f.matched_notional_usd + f.matched_fee_usd, 6),
            "matched_ts": f.matched_ts, "final_ts": f.final_ts, "detail": f.detail}
