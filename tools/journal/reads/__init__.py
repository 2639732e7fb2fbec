"""Read models over the journal for the operator: trades, profit and decisions.

Pure functions of a ``sqlite3.Connection`` (a ``Journal``'s inside ``journal.reading()``, or
the dashboard's own, read-only one) returning frozen dataclasses; none of them writes.  Each
list is paged (trades by ``limit``/``offset``, decisions by keyset), so a page costs the same
on a journal of 100,000 decisions as on a fresh one.
"""

from __future__ import annotations

from tools.journal.reads.decisions import (
    DecisionKey,
    DecisionRow,
    FiredRule,
    decision_at,
    decisions,
)
from tools.journal.reads.profit import PROFIT_BY, ProfitReport, ProfitRow, profit
from tools.journal.reads.trades import TradeRow, trades

__all__ = [
    "PROFIT_BY",
    "DecisionKey",
    "DecisionRow",
    "FiredRule",
    "ProfitReport",
    "ProfitRow",
    "TradeRow",
    "decision_at",
    "decisions",
    "profit",
    "trades",
]
