"""What the read models share: row access on any connection and the filters they take."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence

# A window's slug ends in its start time (``btc-updown-15m-1766745000``); the market series is
# the slug without it, so every window of "BTC 15 minutes" groups together.
_WINDOW_SUFFIX = re.compile(r"-\d+$")

# An intent whose outcome is unknown: never executed, or an 'error' report that reconciliation
# has not replaced (the order may have filled at the venue).  Same rule as
# ``Journal.pending_intents(include_errors=True)``.
UNKNOWN_OUTCOME_SQL = (
    "(i.status = 'pending' OR (i.status = 'error' AND e.superseded_json IS NULL))"
)


def rows(conn: sqlite3.Connection, sql: str, args: Sequence[object]) -> list[sqlite3.Row]:
    """Run one query with named-column rows, whatever the connection's own row factory is.

    The dashboard may hand in its own connection; setting the factory on the cursor leaves the
    caller's connection as it was.
    """
    cur = conn.cursor()
    try:
        cur.row_factory = sqlite3.Row
        result: list[sqlite3.Row] = cur.execute(sql, tuple(args)).fetchall()
        return result
    finally:
        cur.close()


def market_series(market_id: str) -> str:
    """The market a window belongs to: its slug without the trailing start time."""
    return _WINDOW_SUFFIX.sub("", market_id) or market_id


def check_page(limit: int, offset: int = 0) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1 (got {limit})")
    if offset < 0:
        raise ValueError(f"offset must not be negative (got {offset})")


def intent_filters(*, account: str | None, market_id: str | None, run_id: str | None
                   ) -> tuple[str, list[object]]:
    """The WHERE clause (over ``order_intents i``) of the optional filters, and its arguments."""
    where: list[str] = []
    args: list[object] = []
    for column, value in (("i.account", account), ("i.market_id", market_id),
                          ("i.run_id", run_id)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    return (" WHERE " + " AND ".join(where)) if where else "", args
