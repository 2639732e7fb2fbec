"""The SQLite trade journal: runs, decisions, order intents, executions and settlements.

It owns the durable record of what the agent decided and did, and the read models the guard
(``ledger_view``), reports (``summary``) and the operator's queries (``tools.journal.reads``)
are built from.

One module per entity, one ``Journal`` class callers use:

* ``schema``: the tables and the migrations between versions (``PRAGMA user_version``).
* ``base``: the connection, its transactions (every write one ``BEGIN IMMEDIATE``) and money
  rounding.
* ``runs``: runs and decisions.
* ``orders``: order intents, executions, signed venue orders and reconciliation findings.
* ``fills``: whether a filled execution is final on chain (provisional / confirmed / failed).
* ``settlements``: settled positions and their P&L.
* ``redemptions``: each winning position's payout, redeemed exactly once.
* ``ledger``: the guard's ``LedgerView``, a run's ``RunSummary``, daily loss resets, accounts.
* ``reads``: paged read models for the ``trades`` / ``profit`` / ``decisions`` commands and
  the operator dashboard (pure functions over a ``sqlite3.Connection``).
* ``lessons``: the reflection lessons table (same file, its own connection).

``Journal`` is composed from the entity parts as mixins over one ``JournalBase`` so the API
stays flat (``journal.record_decision(...)``, ``journal.ledger_view(...)``), every part shares
the single connection and lock that make each call one transaction, and each entity's SQL is
read in one place.
"""

from __future__ import annotations

from tools.journal.base import JournalBase
from tools.journal.errors import (
    ConflictError,
    DuplicateEntryError,
    DuplicateRecordError,
    JournalError,
    UnknownRecordError,
)
from tools.journal.fills import FillRecord, Fills
from tools.journal.ledger import DailyLossReset, Ledger, RunSummary
from tools.journal.orders import (
    OrderIntent,
    Orders,
    ReconciliationRecord,
    SignedOrderRecord,
)
from tools.journal.redemptions import RedemptionRecord, Redemptions
from tools.journal.runs import Runs
from tools.journal.schema import _SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, SCHEMA_VERSION
from tools.journal.settlements import SettledPosition, Settlements


class Journal(Runs, Orders, Fills, Settlements, Redemptions, Ledger, JournalBase):
    """One SQLite file (or ``":memory:"``); safe to share between threads of one process."""


__all__ = [
    "SCHEMA_VERSION",
    "_SCHEMA_V1",
    "_SCHEMA_V2",
    "_SCHEMA_V3",
    "ConflictError",
    "DailyLossReset",
    "DuplicateEntryError",
    "DuplicateRecordError",
    "FillRecord",
    "Journal",
    "JournalError",
    "OrderIntent",
    "ReconciliationRecord",
    "RedemptionRecord",
    "RunSummary",
    "SettledPosition",
    "SignedOrderRecord",
    "UnknownRecordError",
]
