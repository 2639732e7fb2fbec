"""The journal's schema and its migrations (``PRAGMA user_version`` is the version).

Version 1: runs, decisions, order intents, executions and settlements.

Version 2 adds what live trading needs (a version-1 file is migrated in place):

* ``venue_orders``: the signed venue order of an intent (its EIP-712 order hash, token, amounts),
  written BEFORE the order is posted.  One per intent (primary key), one per hash: an intent is
  signed once.  An intent without a signed order was never posted, so reconciliation can close
  it without asking the venue; one with a signed order is looked up by its hash.
* ``reconciliations``: what each startup reconciliation found for an order (audit trail).
* ``daily_loss_resets``: the explicit, manual resets of the daily loss limit.  Realised P&L
  "today" counts only settlements after the day's start and after the latest reset; nothing
  but the ``reset-daily-loss`` command writes here.

Version 3 adds indexes for the operator's read models (``tools.journal.reads``): decisions by
time and by market and time (newest first, keyset paging on (as_of, decision_id), the decision
at or before a time), and order intents by entry time.  ``IF NOT EXISTS`` keeps the step safe
on a file where an index was created by hand.

Version 4 makes live fills final and winnings redeemed (issue 13):

* ``fills``: one row per filled execution with its finality: ``provisional`` while the
  venue's trades are MATCHED / MINED / RETRYING (exposure, no position yet), ``confirmed``
  once they are CONFIRMED on chain (a position), ``failed`` when they failed (no position, no
  P&L, the stake returned; the execution then reads ``killed``).  The match as first
  reported is kept, so a reversal is auditable.  Filled executions of an older file were
  final when written and become ``confirmed``.
* ``redemptions``: one row per winning settled position, ``pending`` -> ``submitted`` ->
  ``confirmed`` (or ``failed``, retried later); the primary key on the position makes a
  second redemption of it impossible to record.  Winning positions of an older file start
  ``pending``.

The chain is a list of steps (``MIGRATIONS[i]`` takes version i to i + 1): a new version
appends its script and nothing else changes.

The lessons table shares the file but not this version chain (``tools.journal.lessons``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

from tools.journal.errors import JournalError
from tools.journal.resting_schema import SCHEMA_RESTING

_SCHEMA_V1 = """
CREATE TABLE runs (
    run_id       TEXT PRIMARY KEY,
    account      TEXT NOT NULL,
    mode         TEXT NOT NULL,
    dataset      TEXT,
    config_json  TEXT NOT NULL,
    started_ts   REAL NOT NULL,
    ended_ts     REAL
);
CREATE TABLE decisions (
    decision_id       TEXT PRIMARY KEY,
    run_id            TEXT NOT NULL REFERENCES runs(run_id),
    market_id         TEXT NOT NULL,
    as_of             REAL NOT NULL,
    decided_by        TEXT NOT NULL,
    decision          TEXT NOT NULL,
    approved          INTEGER NOT NULL CHECK (approved IN (0, 1)),
    rules_fired_json  TEXT NOT NULL,
    record_json       TEXT NOT NULL
);
CREATE INDEX decisions_run ON decisions(run_id);
CREATE TABLE order_intents (
    order_id     TEXT PRIMARY KEY,
    account      TEXT NOT NULL,
    run_id       TEXT NOT NULL REFERENCES runs(run_id),
    decision_id  TEXT NOT NULL UNIQUE,
    market_id    TEXT NOT NULL,
    side         TEXT NOT NULL CHECK (side IN ('up', 'down')),
    stake_usd    REAL NOT NULL,
    worst_price  REAL NOT NULL,
    created_ts   REAL NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'filled', 'killed', 'error')),
    -- One entry per market window per account, whatever became of the order.
    UNIQUE (account, market_id)
);
CREATE INDEX order_intents_run ON order_intents(run_id);
CREATE TABLE executions (
    order_id      TEXT PRIMARY KEY REFERENCES order_intents(order_id),
    status        TEXT NOT NULL CHECK (status IN ('filled', 'killed', 'error')),
    broker        TEXT NOT NULL,
    shares        REAL NOT NULL,
    avg_price     REAL,
    notional_usd  REAL NOT NULL,
    fee_usd       REAL NOT NULL,
    reason        TEXT,
    ts            REAL NOT NULL,
    report_json   TEXT NOT NULL,
    -- The 'error' report this one replaced after reconciliation, if any (kept for audit).
    superseded_json  TEXT
);
CREATE TABLE settlements (
    order_id          TEXT PRIMARY KEY REFERENCES executions(order_id),
    account           TEXT NOT NULL,
    market_id         TEXT NOT NULL,
    side              TEXT NOT NULL,
    outcome           TEXT NOT NULL CHECK (outcome IN ('up', 'down')),
    outcome_verified  INTEGER NOT NULL CHECK (outcome_verified IN (0, 1)),
    shares            REAL NOT NULL,
    notional_usd      REAL NOT NULL,
    fee_usd           REAL NOT NULL,
    payout_usd        REAL NOT NULL,
    pnl_usd           REAL NOT NULL,
    settled_ts        REAL NOT NULL
);
CREATE INDEX settlements_account_ts ON settlements(account, settled_ts);
"""

_SCHEMA_V2 = """
CREATE TABLE venue_orders (
    order_id        TEXT PRIMARY KEY REFERENCES order_intents(order_id),
    venue           TEXT NOT NULL,
    order_hash      TEXT NOT NULL UNIQUE,
    token_id        TEXT NOT NULL,
    order_type      TEXT NOT NULL CHECK (order_type IN ('FOK', 'FAK')),
    -- Decimal strings: exactly what was signed (dollars, worst price, base units).
    amount_usd      TEXT NOT NULL,
    worst_price     TEXT NOT NULL,
    maker_amount    TEXT NOT NULL,
    taker_amount    TEXT NOT NULL,
    signed_ts       REAL NOT NULL,
    -- Last venue status seen and the venue's trade ids of the fill (JSON list).
    venue_status    TEXT,
    trade_ids_json  TEXT NOT NULL DEFAULT '[]',
    updated_ts      REAL
);
CREATE TABLE reconciliations (
    reconciliation_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    account            TEXT NOT NULL,
    order_id           TEXT,
    outcome            TEXT NOT NULL,
    detail             TEXT NOT NULL,
    ts                 REAL NOT NULL
);
CREATE INDEX reconciliations_account ON reconciliations(account, ts);
CREATE TABLE daily_loss_resets (
    reset_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    account   TEXT NOT NULL,
    reset_ts  REAL NOT NULL,
    note      TEXT NOT NULL
);
CREATE INDEX daily_loss_resets_account ON daily_loss_resets(account, reset_ts);
"""

_SCHEMA_V3 = """
CREATE INDEX IF NOT EXISTS decisions_as_of ON decisions(as_of, decision_id);
CREATE INDEX IF NOT EXISTS decisions_market_as_of ON decisions(market_id, as_of, decision_id);
CREATE INDEX IF NOT EXISTS order_intents_created ON order_intents(created_ts, order_id);
"""

_SCHEMA_V4 = """
CREATE TABLE fills (
    order_id              TEXT PRIMARY KEY REFERENCES order_intents(order_id),
    state                 TEXT NOT NULL
                          CHECK (state IN ('provisional', 'confirmed', 'failed')),
    -- The venue's trade ids of the match (JSON list, empty for paper fills).
    trade_ids_json        TEXT NOT NULL DEFAULT '[]',
    -- The match as first journaled (the execution row holds what is final).
    matched_shares        REAL NOT NULL,
    matched_notional_usd  REAL NOT NULL,
    matched_fee_usd       REAL NOT NULL,
    matched_ts            REAL NOT NULL,
    final_ts              REAL,
    detail                TEXT
);
CREATE INDEX fills_state ON fills(state, order_id);
INSERT INTO fills (order_id, state, matched_shares, matched_notional_usd, matched_fee_usd,
                   matched_ts, final_ts, detail)
    SELECT order_id, 'confirmed', shares, notional_usd, fee_usd, ts, ts,
           'final when journaled (before schema v4)'
    FROM executions WHERE status = 'filled';
CREATE TABLE redemptions (
    order_id     TEXT PRIMARY KEY REFERENCES settlements(order_id),
    account      TEXT NOT NULL,
    market_id    TEXT NOT NULL,
    shares       REAL NOT NULL,
    payout_usd   REAL NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'submitted', 'confirmed', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    redeemer     TEXT,
    -- The venue's transaction id (relayer) and on-chain hash of the latest submission.
    tx_id        TEXT,
    tx_hash      TEXT,
    detail       TEXT,
    created_ts   REAL NOT NULL,
    updated_ts   REAL NOT NULL
);
CREATE INDEX redemptions_account_state ON redemptions(account, state, market_id);
INSERT INTO redemptions (order_id, account, market_id, shares, payout_usd, created_ts,
                         updated_ts)
    SELECT order_id, account, market_id, shares, payout_usd, settled_ts, settled_ts
    FROM settlements WHERE payout_usd > 0;
"""

# Index i holds the script that migrates user_version i to i + 1.  Append, never edit: a
# file at version i has already run every script before it.
MIGRATIONS: list[str] = [_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4]
# Version 5: resting (maker) orders and their fills (``tools.journal.resting``, issue 16).
MIGRATIONS.append(SCHEMA_RESTING)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection,
            tx: Callable[[], AbstractContextManager[sqlite3.Cursor]]) -> None:
    """Bring the file to ``SCHEMA_VERSION``; a no-op when it is there already."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"journal schema version {version} is newer than this code ({SCHEMA_VERSION})"
        )
    with tx() as cur:
        # Re-read inside the write lock: another process may have migrated meanwhile.
        version = int(cur.execute("PRAGMA user_version").fetchone()[0])
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step].split(";"):
                if statement.strip():
                    cur.execute(statement)
        if version < SCHEMA_VERSION:
            cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
