"""The ledger the guard judges by: an account's trading day as the journal records it."""

from __future__ import annotations

from core.clock import trading_day_start
from core.records import LedgerView
from tools.journal import Journal


def guard_ledger(journal: Journal | None, *, account: str, now: float) -> LedgerView:
    """Orders, realised P&L and the losing streak of ``account``'s trading day up to ``now``.

    Without a journal (a bare Studio run) the ledger is empty: nothing has been traded."""
    if journal is None:
        return LedgerView()
    return journal.ledger_view(account=account, day_start=trading_day_start(now), now=now)
