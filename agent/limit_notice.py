"""The one line that says a daily limit ended (or paused) trading, and what to change.

The guard refuses every proposal once a daily limit is reached (``daily_orders``,
``daily_loss``) or while a losing streak cools down (``cooldown``), so a run can go on
deciding for hours without trading.  :class:`LimitWatch` notices the first proposal a limit
refused (again after trading resumed) and words it with the setting that caused it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from agent.timeofday import spans_days, utc_label
from core.clock import trading_day_start
from core.guard import GuardLimits
from core.records import Verdict

# Most lasting first: a refusal by several is told by the one that lasts longest.
LIMIT_RULES = ("daily_loss", "daily_orders", "cooldown")


def limit_reason(rule: str, limits: GuardLimits) -> str:
    """What was reached, named by its setting, e.g. ``daily order cap reached
    (MAX_ORDERS_PER_DAY=24)``."""
    if rule == "daily_orders":
        return f"daily order cap reached (MAX_ORDERS_PER_DAY={limits.max_orders_per_day})"
    if rule == "daily_loss":
        return f"daily loss limit reached (DAILY_LOSS_LIMIT={limits.daily_loss_limit_usd:g})"
    if rule == "cooldown":
        return (f"{limits.max_consecutive_losses} losses in a row (MAX_CONSECUTIVE_LOSSES="
                f"{limits.max_consecutive_losses}), cooling down for LOSS_COOLDOWN_S="
                f"{limits.loss_cooldown_s:g}")
    raise ValueError(f"not a limit rule: {rule}")


def limit_rule(rules: Sequence[str]) -> str | None:
    """The limit among the rejecting rules, or None when no limit refused."""
    return next((rule for rule in LIMIT_RULES if rule in rules), None)


@dataclass(frozen=True, slots=True)
class LimitStop:
    rule: str
    window_number: int
    window_start: float
    as_of: float
    sentence: str


class LimitWatch:
    """Watches a replay's verdicts over its windows (their start times, in replay order)."""

    def __init__(self, window_starts: Sequence[float], limits: GuardLimits) -> None:
        self.starts = tuple(window_starts)
        self.limits = limits
        self.with_date = spans_days(self.starts)
        self.blocked_by: str | None = None
        self.stops: list[LimitStop] = []

    def observe(self, verdict: Verdict, *, window_index: int, as_of: float) -> LimitStop | None:
        """The notice when this verdict is the first a limit refused, else None.  A hold (no
        proposal) tells nothing; an approval means trading resumed."""
        if verdict.approved:
            self.blocked_by = None
            return None
        rule = limit_rule([h.rule for h in verdict.rules_fired if h.action == "reject"])
        if rule is None or self.blocked_by is not None:
            return None
        self.blocked_by = rule
        start = self.starts[window_index]
        stop = LimitStop(rule, window_index + 1, start, as_of,
                         self._sentence(rule, verdict, window_index))
        self.stops.append(stop)
        return stop

    def _sentence(self, rule: str, verdict: Verdict, window_index: int) -> str:
        verb = "paused" if rule == "cooldown" else "stopped"
        when = utc_label(self.starts[window_index], with_date=self.with_date)
        head = (f"trading {verb} at window {window_index + 1} of {len(self.starts)} "
                f"({when} UTC): ")
        ledger = verdict.ledger
        if rule == "daily_orders":
            per_day = Counter(trading_day_start(s) for s in self.starts)
            most = max(per_day.values())
            days = ("one UTC day" if len(per_day) == 1
                    else f"{len(per_day)} UTC days (at most {most} on one)")
            return (head + limit_reason(rule, self.limits) + f"; the {len(self.starts)} "
                    f"recorded windows fall on {days} — run with MAX_ORDERS_PER_DAY={most} to "
                    "trade them all")
        if rule == "daily_loss":
            pnl = "" if ledger is None else f", realised P&L today {ledger.realized_pnl_today:+.2f}"
            return (head + limit_reason(rule, self.limits) + pnl + "; no entry until the next "
                    "UTC day — run with a larger DAILY_LOSS_LIMIT to trade on")
        until = ""
        if ledger is not None and ledger.last_loss_ts is not None:
            resume = ledger.last_loss_ts + self.limits.loss_cooldown_s
            until = f" until {utc_label(resume, with_date=self.with_date)} UTC"
        return head + limit_reason(rule, self.limits) + until
