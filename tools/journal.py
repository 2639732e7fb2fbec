"""The SQLite trade journal: runs, decisions, order intents, executions and settlements.

It owns the durable record of what the agent decided and did, and the read models the guard
(``ledger_view``) and reports (``summary``) are built from.

Durability: WAL mode with ``synchronous=FULL``; every write method runs in one
``BEGIN IMMEDIATE`` transaction, so a crash leaves either all of a call's rows or none, and the
checks a method makes before writing cannot be raced by another process on the same file.

Money: stored as floats rounded to 1e-6 (USDC has 6 decimals).  Rounding every stored amount
keeps sums stable without the cost of Decimal columns, which SQLite does not have anyway.

Decisions made here:

* Order intents are written BEFORE the order is sent and at most one exists per
  (account, market_id), enforced by a UNIQUE constraint.  An intent whose order was killed or
  errored keeps blocking its window: one attempt per window, because a "killed" report can be
  wrong (the order may have filled after a timeout) and a retry would risk a second entry.
* An 'error' execution may be superseded once by the reconciled report (its outcome may have
  been unknown); 'filled' and 'killed' executions are final.
* An intent without an execution is "pending": its outcome is unknown and must be reconciled
  with the venue (``pending_intents``) before anything else is sent.
* Settlement is per position (filled order) and idempotent: settling a market again settles
  only positions not settled yet and returns every settled position of that market.  A
  settlement with a different outcome than one already recorded raises ``ConflictError``.
* A position with pnl < 0 is a loss, anything else a win (pnl == 0 cannot happen with fees
  and a price below 1, and is not a reason to pause).
* Time-windowed reads in ``ledger_view`` only count rows stamped at or before ``now`` so a
  replay that reuses a journal never sees the future.

Schema version 2 adds what live trading needs (a version-1 file is migrated in place):

* ``venue_orders``: the signed venue order of an intent (its EIP-712 order hash, token, amounts),
  written BEFORE the order is posted.  One per intent (primary key), one per hash: an intent is
  signed once.  An intent without a signed order was never posted, so reconciliation can close
  it without asking the venue; one with a signed order is looked up by its hash.
* ``reconciliations``: what each startup reconciliation found for an order (audit trail).
* ``daily_loss_resets``: the explicit, manual resets of the daily loss limit.  Realised P&L
  "today" counts only settlements after the day's start and after the latest reset; nothing
  but the ``reset-daily-loss`` command writes here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from core.clock import SystemClock
from core.records import ExecutionReport, LedgerView, Side

SCHEMA_VERSION = 2

# Config keys that look like credentials.  The caller promises to pass none; this is a second
# line of defence so a secret never reaches a file that is copied around for analysis.
_SECRET_KEY_PARTS = ("key", "secret", "passphrase", "token")

_MONEY_DP = 6

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

# Index i holds the script that migrates user_version i to i + 1.
_MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2)


class JournalError(Exception):
    """Base class of the journal's own errors."""


class DuplicateEntryError(JournalError):
    """A second order intent for the same (account, market) window, decision or order id."""


class DuplicateRecordError(JournalError):
    """A decision id that is already recorded."""


class UnknownRecordError(JournalError, LookupError):
    """A run or order intent that the journal does not hold."""


class ConflictError(JournalError):
    """A write that contradicts what is already recorded (other outcome, other fill)."""


@dataclass(frozen=True, slots=True)
class SettledPosition:
    order_id: str
    account: str
    market_id: str
    side: Side
    outcome: Side
    outcome_verified: bool
    shares: float
    notional_usd: float
    fee_usd: float
    payout_usd: float
    pnl_usd: float
    settled_ts: float


@dataclass(frozen=True, slots=True)
class OrderIntent:
    order_id: str
    account: str
    run_id: str
    decision_id: str
    market_id: str
    side: Side
    stake_usd: float
    worst_price: float
    created_ts: float
    status: str


@dataclass(frozen=True, slots=True)
class SignedOrderRecord:
    """The venue order signed for an intent (written before it is posted)."""

    order_id: str
    venue: str
    order_hash: str
    token_id: str
    order_type: str
    amount_usd: str
    worst_price: str
    maker_amount: str
    taker_amount: str
    signed_ts: float
    venue_status: str | None
    trade_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReconciliationRecord:
    account: str
    order_id: str | None
    outcome: str
    detail: str
    ts: float


@dataclass(frozen=True, slots=True)
class DailyLossReset:
    account: str
    reset_ts: float
    note: str


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    decisions: int
    approved: int
    filled: int
    killed: int
    errors: int
    # Intents with no recorded execution (outcome unknown until reconciled).
    pending: int
    wins: int
    losses: int
    # wins / (wins + losses); None when nothing has settled.
    hit_rate: float | None
    # Realised P&L of settled positions, net of fees.
    pnl_usd: float
    # Taker fees of all filled orders, settled or not.
    fees_usd: float
    # Dollars paid for shares (notional, excluding fees) across filled orders.
    staked_usd: float
    # Guard rules that fired on decisions that were not approved.
    rejections: Counter[str] = field(default_factory=Counter)


def _money(x: float) -> float:
    return round(x, _MONEY_DP)


def _check_config_keys(obj: object, path: str = "") -> None:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            name = str(k)
            lowered = name.lower()
            if any(part in lowered for part in _SECRET_KEY_PARTS):
                # Name the key (never the value) so the caller can find it.
                raise ValueError(f"config key {path + name!r} looks like a secret; refused")
            _check_config_keys(v, f"{path}{name}.")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _check_config_keys(v, f"{path}[{i}].")


class Journal:
    """One SQLite file (or ``":memory:"``); safe to share between threads of one process."""

    def __init__(self, path: str | Path) -> None:
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly in _tx so every write is one
        # BEGIN IMMEDIATE ... COMMIT, whatever Python's implicit-transaction rules would do.
        self._conn = sqlite3.connect(
            target, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._conn.row_factory = sqlite3.Row
        # Graph nodes may run in worker threads; one lock serialises use of the connection.
        self._lock = threading.RLock()
        self._closed = False
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # --- lifecycle ---

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _migrate(self) -> None:
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal schema version {version} is newer than this code ({SCHEMA_VERSION})"
            )
        with self._tx() as cur:
            # Re-read inside the write lock: another process may have migrated meanwhile.
            version = int(cur.execute("PRAGMA user_version").fetchone()[0])
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step].split(";"):
                    if statement.strip():
                        cur.execute(statement)
            if version < SCHEMA_VERSION:
                cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction: all of it is committed or none of it."""
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (disk full, I/O error); a second
                # ROLLBACK would then raise and hide the original error.
                if self._conn.in_transaction:
                    self._conn.rollback()
                raise
            finally:
                cur.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Cursor]:
        """A consistent read: one deferred transaction so multi-query reads see one state."""
        with self._lock:
            if self._closed:
                raise JournalError("journal is closed")
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN")
                yield cur
            finally:
                if self._conn.in_transaction:
                    self._conn.rollback()  # nothing was written; just end the snapshot
                cur.close()

    @property
    def schema_version(self) -> int:
        with self._read() as cur:
            return int(cur.execute("PRAGMA user_version").fetchone()[0])

    # --- runs ---

    def start_run(
        self,
        *,
        account: str,
        mode: str,
        dataset: str | None,
        config: dict[str, object],
        started_ts: float | None = None,
    ) -> str:
        """Record a new run and return its id (uuid4 hex).

        ``config`` is stored as JSON; keys that look like credentials are refused with
        ValueError (and nothing is written).  ``started_ts`` defaults to the system clock.
        """
        _check_config_keys(config)
        config_json = json.dumps(config, default=str, sort_keys=True)
        run_id = uuid.uuid4().hex
        ts = SystemClock().now() if started_ts is None else started_ts
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO runs (run_id, account, mode, dataset, config_json, started_ts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, account, mode, dataset, config_json, ts),
            )
        return run_id

    def finish_run(self, run_id: str, *, ended_ts: float) -> None:
        with self._tx() as cur:
            cur.execute("UPDATE runs SET ended_ts = ? WHERE run_id = ?", (ended_ts, run_id))
            if cur.rowcount != 1:
                raise UnknownRecordError(f"unknown run {run_id!r}")

    def run_config(self, run_id: str) -> dict[str, object]:
        with self._read() as cur:
            row = cur.execute(
                "SELECT config_json FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        if row is None:
            raise UnknownRecordError(f"unknown run {run_id!r}")
        loaded: dict[str, object] = json.loads(row["config_json"])
        return loaded

    # --- decisions ---

    def record_decision(
        self,
        *,
        run_id: str,
        decision_id: str,
        market_id: str,
        as_of: float,
        decided_by: str,
        decision: str,
        approved: bool,
        rules_fired: list[str],
        record: dict[str, object],
    ) -> None:
        """Record one decision with the full JSON of its state; ``decision_id`` is unique."""
        record_json = json.dumps(record, default=str, sort_keys=True)
        rules_json = json.dumps(list(rules_fired))
        with self._tx() as cur:
            self._require_run(cur, run_id)
            if cur.execute(
                "SELECT 1 FROM decisions WHERE decision_id = ?", (decision_id,)
            ).fetchone():
                raise DuplicateRecordError(f"decision {decision_id!r} already recorded")
            cur.execute(
                "INSERT INTO decisions (decision_id, run_id, market_id, as_of, decided_by,"
                " decision, approved, rules_fired_json, record_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (decision_id, run_id, market_id, as_of, decided_by, decision,
                 int(approved), rules_json, record_json),
            )

    def decision_record(self, decision_id: str) -> dict[str, object] | None:
        with self._read() as cur:
            row = cur.execute(
                "SELECT record_json FROM decisions WHERE decision_id = ?", (decision_id,)
            ).fetchone()
        if row is None:
            return None
        loaded: dict[str, object] = json.loads(row["record_json"])
        return loaded

    # --- orders ---

    def record_order_intent(
        self,
        *,
        account: str,
        run_id: str,
        decision_id: str,
        order_id: str,
        market_id: str,
        side: Side,
        stake_usd: float,
        worst_price: float,
        created_ts: float,
    ) -> None:
        """Record the intent to send an order; call it BEFORE the order goes to the broker.

        Raises DuplicateEntryError (and writes nothing) when the account already has an intent
        in this market window, or the decision or order id already has one.
        """
        if side not in ("up", "down"):
            raise ValueError(f"invalid side {side!r}")
        with self._tx() as cur:
            self._require_run(cur, run_id)
            clash = cur.execute(
                "SELECT order_id, decision_id, account, market_id FROM order_intents"
                " WHERE (account = ? AND market_id = ?) OR decision_id = ? OR order_id = ?",
                (account, market_id, decision_id, order_id),
            ).fetchone()
            if clash is not None:
                if clash["account"] == account and clash["market_id"] == market_id:
                    what = f"account {account!r} already entered market {market_id!r}"
                elif clash["decision_id"] == decision_id:
                    what = f"decision {decision_id!r} already has an order"
                else:
                    what = f"order id {order_id!r} already used"
                raise DuplicateEntryError(what)
            try:
                cur.execute(
                    "INSERT INTO order_intents (order_id, account, run_id, decision_id,"
                    " market_id, side, stake_usd, worst_price, created_ts)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (order_id, account, run_id, decision_id, market_id, side,
                     _money(stake_usd), worst_price, created_ts),
                )
            except sqlite3.IntegrityError as err:
                # The constraint is the backstop for the check above.
                raise DuplicateEntryError(str(err)) from None

    def record_execution(self, report: ExecutionReport, *, ts: float) -> None:
        """Record what the broker did with an order; its intent must already be recorded.

        The intent's status becomes the report's.  Recording the same report again is a
        no-op.  An 'error' report means the outcome may be unknown (a timeout after sending), so
        it may be replaced once by the report reconciliation found; 'filled' and 'killed' are
        final and a different report for them raises ConflictError.
        """
        report_json = report.model_dump_json()
        with self._tx() as cur:
            intent = cur.execute(
                "SELECT market_id, side FROM order_intents WHERE order_id = ?",
                (report.order_id,),
            ).fetchone()
            if intent is None:
                raise UnknownRecordError(f"no order intent for order {report.order_id!r}")
            if intent["market_id"] != report.market_id or intent["side"] != report.side:
                raise ConflictError(
                    f"report for order {report.order_id!r} does not match its intent"
                )
            existing = cur.execute(
                "SELECT status, report_json, superseded_json FROM executions"
                " WHERE order_id = ?",
                (report.order_id,),
            ).fetchone()
            if existing is not None:
                if existing["report_json"] == report_json:
                    return
                if existing["status"] != "error" or existing["superseded_json"] is not None:
                    raise ConflictError(
                        f"order {report.order_id!r} already has another execution"
                    )
                cur.execute(
                    "UPDATE executions SET status = ?, broker = ?, shares = ?, avg_price = ?,"
                    " notional_usd = ?, fee_usd = ?, reason = ?, ts = ?, report_json = ?,"
                    " superseded_json = ? WHERE order_id = ?",
                    (report.status, report.broker, report.shares, report.avg_price,
                     _money(report.notional_usd), _money(report.fee_usd), report.reason, ts,
                     report_json, existing["report_json"], report.order_id),
                )
                cur.execute(
                    "UPDATE order_intents SET status = ? WHERE order_id = ?",
                    (report.status, report.order_id),
                )
                return
            cur.execute(
                "INSERT INTO executions (order_id, status, broker, shares, avg_price,"
                " notional_usd, fee_usd, reason, ts, report_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (report.order_id, report.status, report.broker, report.shares,
                 report.avg_price, _money(report.notional_usd), _money(report.fee_usd),
                 report.reason, ts, report_json),
            )
            cur.execute(
                "UPDATE order_intents SET status = ? WHERE order_id = ?",
                (report.status, report.order_id),
            )

    def pending_intents(self, *, account: str, include_errors: bool = False) -> list[OrderIntent]:
        """Intents with no execution: their outcome must be reconciled before trading on.

        With ``include_errors`` also those whose execution is an 'error' report not yet
        superseded: an exception after sending leaves the venue's outcome unknown.
        """
        statuses = ("pending", "error") if include_errors else ("pending",)
        marks = ", ".join("?" for _ in statuses)
        with self._read() as cur:
            rows = cur.execute(
                "SELECT i.* FROM order_intents i"
                " LEFT JOIN executions e ON e.order_id = i.order_id"
                f" WHERE i.account = ? AND i.status IN ({marks})"
                " AND (e.order_id IS NULL OR e.superseded_json IS NULL)"
                " ORDER BY i.created_ts, i.order_id",
                (account, *statuses),
            ).fetchall()
        return [_intent(r) for r in rows]

    def intent(self, order_id: str) -> OrderIntent | None:
        with self._read() as cur:
            row = cur.execute(
                "SELECT * FROM order_intents WHERE order_id = ?", (order_id,)
            ).fetchone()
        return None if row is None else _intent(row)

    def executions(self, *, account: str) -> list[ExecutionReport]:
        """Every recorded execution of the account, in intent order (for reconciliation)."""
        with self._read() as cur:
            rows = cur.execute(
                "SELECT e.report_json FROM executions e"
                " JOIN order_intents i ON i.order_id = e.order_id"
                " WHERE i.account = ? ORDER BY i.created_ts, i.order_id",
                (account,),
            ).fetchall()
        return [ExecutionReport.model_validate_json(r["report_json"]) for r in rows]

    # --- venue orders (live) ---

    def record_signed_order(
        self,
        *,
        order_id: str,
        venue: str,
        order_hash: str,
        token_id: str,
        order_type: str,
        amount_usd: str,
        worst_price: str,
        maker_amount: str,
        taker_amount: str,
        signed_ts: float,
    ) -> None:
        """Record the signed venue order of an intent; must commit BEFORE the order is posted.

        One signed order per intent and per hash: a second one raises DuplicateEntryError, so a
        caller that re-signs by mistake is stopped before it can post a second order.
        """
        with self._tx() as cur:
            if cur.execute(
                "SELECT 1 FROM order_intents WHERE order_id = ?", (order_id,)
            ).fetchone() is None:
                raise UnknownRecordError(f"no order intent for order {order_id!r}")
            try:
                cur.execute(
                    "INSERT INTO venue_orders (order_id, venue, order_hash, token_id,"
                    " order_type, amount_usd, worst_price, maker_amount, taker_amount,"
                    " signed_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (order_id, venue, order_hash, token_id, order_type, amount_usd,
                     worst_price, maker_amount, taker_amount, signed_ts),
                )
            except sqlite3.IntegrityError as err:
                raise DuplicateEntryError(str(err)) from None

    def record_venue_status(
        self, order_id: str, *, venue_status: str, trade_ids: tuple[str, ...] = (), ts: float
    ) -> None:
        """Remember the venue's latest status (and trade ids) of a signed order."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE venue_orders SET venue_status = ?, trade_ids_json = ?, updated_ts = ?"
                " WHERE order_id = ?",
                (venue_status, json.dumps(list(trade_ids)), ts, order_id),
            )
            if cur.rowcount != 1:
                raise UnknownRecordError(f"no signed order for order {order_id!r}")

    def signed_order(self, order_id: str) -> SignedOrderRecord | None:
        with self._read() as cur:
            row = cur.execute(
                "SELECT * FROM venue_orders WHERE order_id = ?", (order_id,)
            ).fetchone()
        return None if row is None else _signed(row)

    def signed_orders(self, *, account: str) -> list[SignedOrderRecord]:
        """Every signed venue order of the account, oldest first (the journal's venue ledger)."""
        with self._read() as cur:
            rows = cur.execute(
                "SELECT v.* FROM venue_orders v JOIN order_intents i ON i.order_id = v.order_id"
                " WHERE i.account = ? ORDER BY v.signed_ts, v.order_id",
                (account,),
            ).fetchall()
        return [_signed(r) for r in rows]

    # --- reconciliation and manual resets ---

    def record_reconciliation(
        self, *, account: str, order_id: str | None, outcome: str, detail: str, ts: float
    ) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO reconciliations (account, order_id, outcome, detail, ts)"
                " VALUES (?, ?, ?, ?, ?)",
                (account, order_id, outcome, detail, ts),
            )

    def reconciliations(self, *, account: str) -> list[ReconciliationRecord]:
        with self._read() as cur:
            rows = cur.execute(
                "SELECT * FROM reconciliations WHERE account = ? ORDER BY ts, reconciliation_id",
                (account,),
            ).fetchall()
        return [ReconciliationRecord(account=str(r["account"]), order_id=r["order_id"],
                                     outcome=str(r["outcome"]), detail=str(r["detail"]),
                                     ts=float(r["ts"])) for r in rows]

    def record_daily_loss_reset(self, *, account: str, reset_ts: float, note: str) -> None:
        """The manual reset of the daily loss limit: P&L before ``reset_ts`` stops counting.

        Only the operator's ``reset-daily-loss`` command calls this; no graph node can.
        """
        if not note.strip():
            raise ValueError("a daily loss reset needs a note saying why")
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO daily_loss_resets (account, reset_ts, note) VALUES (?, ?, ?)",
                (account, reset_ts, note.strip()),
            )

    def daily_loss_resets(self, *, account: str) -> list[DailyLossReset]:
        with self._read() as cur:
            rows = cur.execute(
                "SELECT * FROM daily_loss_resets WHERE account = ? ORDER BY reset_ts, reset_id",
                (account,),
            ).fetchall()
        return [DailyLossReset(account=str(r["account"]), reset_ts=float(r["reset_ts"]),
                               note=str(r["note"])) for r in rows]

    def accounts(self) -> list[str]:
        """Every account with an order intent, a run or a reset, sorted."""
        with self._read() as cur:
            rows = cur.execute(
                "SELECT account FROM order_intents UNION SELECT account FROM runs"
                " UNION SELECT account FROM daily_loss_resets ORDER BY account"
            ).fetchall()
        return [str(r["account"]) for r in rows]

    def intents(self, *, account: str, market_id: str | None = None) -> list[OrderIntent]:
        """Every order intent of the account (of one market window if given), oldest first."""
        where, args = "account = ?", [account]
        if market_id is not None:
            where, args = where + " AND market_id = ?", [account, market_id]
        with self._read() as cur:
            rows = cur.execute(
                f"SELECT * FROM order_intents WHERE {where} ORDER BY created_ts, order_id",
                args,
            ).fetchall()
        return [_intent(r) for r in rows]

    # --- settlement ---

    def record_settlement(
        self,
        *,
        account: str,
        market_id: str,
        outcome: Literal["up", "down"],
        outcome_verified: bool,
        settled_ts: float,
    ) -> list[SettledPosition]:
        """Settle the account's filled positions in a market; returns all settled ones there.

        payout = shares if the position's side won else 0; pnl = payout - notional - fee.
        Idempotent: positions already settled are not settled again.
        """
        if outcome not in ("up", "down"):
            raise ValueError(f"invalid outcome {outcome!r}")
        with self._tx() as cur:
            other = cur.execute(
                "SELECT outcome FROM settlements WHERE account = ? AND market_id = ?"
                " AND outcome != ? LIMIT 1",
                (account, market_id, outcome),
            ).fetchone()
            if other is not None:
                raise ConflictError(
                    f"market {market_id!r} already settled {other['outcome']!r}, not {outcome!r}"
                )
            rows = cur.execute(
                "SELECT i.order_id, i.side, e.shares, e.notional_usd, e.fee_usd"
                " FROM order_intents i JOIN executions e ON e.order_id = i.order_id"
                " LEFT JOIN settlements s ON s.order_id = i.order_id"
                " WHERE i.account = ? AND i.market_id = ? AND e.status = 'filled'"
                " AND s.order_id IS NULL",
                (account, market_id),
            ).fetchall()
            for r in rows:
                shares = float(r["shares"])
                payout = _money(shares if r["side"] == outcome else 0.0)
                pnl = _money(payout - float(r["notional_usd"]) - float(r["fee_usd"]))
                cur.execute(
                    "INSERT INTO settlements (order_id, account, market_id, side, outcome,"
                    " outcome_verified, shares, notional_usd, fee_usd, payout_usd, pnl_usd,"
                    " settled_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (r["order_id"], account, market_id, r["side"], outcome,
                     int(outcome_verified), shares, r["notional_usd"], r["fee_usd"],
                     payout, pnl, settled_ts),
                )
            settled = cur.execute(
                "SELECT * FROM settlements WHERE account = ? AND market_id = ?"
                " ORDER BY settled_ts, order_id",
                (account, market_id),
            ).fetchall()
        return [_settled(r) for r in settled]

    def unsettled_markets(self, *, account: str) -> list[str]:
        """Markets where the account holds a filled position that is not settled yet."""
        with self._read() as cur:
            rows = cur.execute(
                "SELECT i.market_id, MIN(i.created_ts) AS first_ts"
                " FROM order_intents i JOIN executions e ON e.order_id = i.order_id"
                " LEFT JOIN settlements s ON s.order_id = i.order_id"
                " WHERE i.account = ? AND e.status = 'filled' AND s.order_id IS NULL"
                " GROUP BY i.market_id ORDER BY first_ts, i.market_id",
                (account,),
            ).fetchall()
        return [str(r["market_id"]) for r in rows]

    def settlements(self, *, account: str) -> list[SettledPosition]:
        with self._read() as cur:
            rows = cur.execute(
                "SELECT * FROM settlements WHERE account = ? ORDER BY settled_ts, order_id",
                (account,),
            ).fetchall()
        return [_settled(r) for r in rows]

    # --- read models ---

    def ledger_view(self, *, account: str, day_start: float, now: float) -> LedgerView:
        """What the guard needs: entered windows, today's orders and P&L, the losing streak."""
        with self._read() as cur:
            # Every intent blocks its window, whatever its status (see module docstring).
            entered = frozenset(
                str(r["market_id"])
                for r in cur.execute(
                    "SELECT market_id FROM order_intents WHERE account = ?", (account,)
                )
            )
            orders_today = int(cur.execute(
                "SELECT COUNT(*) FROM order_intents"
                " WHERE account = ? AND created_ts >= ? AND created_ts <= ?",
                (account, day_start, now),
            ).fetchone()[0])
            # A manual reset today moves the start of the counted losses forward.
            last_reset = cur.execute(
                "SELECT MAX(reset_ts) FROM daily_loss_resets"
                " WHERE account = ? AND reset_ts <= ?",
                (account, now),
            ).fetchone()[0]
            counted_from = day_start if last_reset is None else max(day_start,
                                                                     float(last_reset))
            pnl_today = float(cur.execute(
                "SELECT COALESCE(SUM(pnl_usd), 0.0) FROM settlements"
                " WHERE account = ? AND settled_ts >= ? AND settled_ts <= ?",
                (account, counted_from, now),
            ).fetchone()[0])
            # Newest first; ties in settled_ts broken by entry time so the order is stable.
            history = cur.execute(
                "SELECT s.pnl_usd, s.settled_ts FROM settlements s"
                " JOIN order_intents i ON i.order_id = s.order_id"
                " WHERE s.account = ? AND s.settled_ts <= ?"
                " ORDER BY s.settled_ts DESC, i.created_ts DESC, s.order_id DESC",
                (account, now),
            ).fetchall()
        streak = 0
        for r in history:
            if float(r["pnl_usd"]) < 0:
                streak += 1
            else:
                break
        last_loss_ts = next(
            (float(r["settled_ts"]) for r in history if float(r["pnl_usd"]) < 0), None
        )
        return LedgerView(
            entered_market_ids=entered,
            orders_today=orders_today,
            realized_pnl_today=_money(pnl_today),
            consecutive_losses=streak,
            last_loss_ts=last_loss_ts,
        )

    def summary(self, *, run_id: str) -> RunSummary:
        """Counts and money of one run, from what the journal holds."""
        with self._read() as cur:
            self._require_run(cur, run_id)
            d = cur.execute(
                "SELECT COUNT(*) AS n, COALESCE(SUM(approved), 0) AS a"
                " FROM decisions WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            rejections: Counter[str] = Counter()
            for r in cur.execute(
                "SELECT rules_fired_json FROM decisions WHERE run_id = ? AND approved = 0",
                (run_id,),
            ):
                rejections.update(str(rule) for rule in json.loads(r["rules_fired_json"]))
            status: Counter[str] = Counter(
                {
                    str(r["status"]): int(r["n"])
                    for r in cur.execute(
                        "SELECT status, COUNT(*) AS n FROM order_intents WHERE run_id = ?"
                        " GROUP BY status",
                        (run_id,),
                    )
                }
            )
            money = cur.execute(
                "SELECT COALESCE(SUM(e.fee_usd), 0.0) AS fees,"
                " COALESCE(SUM(e.notional_usd), 0.0) AS staked"
                " FROM executions e JOIN order_intents i ON i.order_id = e.order_id"
                " WHERE i.run_id = ? AND e.status = 'filled'",
                (run_id,),
            ).fetchone()
            s = cur.execute(
                "SELECT COALESCE(SUM(s.pnl_usd < 0), 0) AS losses,"
                " COALESCE(SUM(s.pnl_usd >= 0), 0) AS wins,"
                " COALESCE(SUM(s.pnl_usd), 0.0) AS pnl"
                " FROM settlements s JOIN order_intents i ON i.order_id = s.order_id"
                " WHERE i.run_id = ?",
                (run_id,),
            ).fetchone()
        wins, losses = int(s["wins"]), int(s["losses"])
        return RunSummary(
            run_id=run_id,
            decisions=int(d["n"]),
            approved=int(d["a"]),
            filled=status["filled"],
            killed=status["killed"],
            errors=status["error"],
            pending=status["pending"],
            wins=wins,
            losses=losses,
            hit_rate=None if wins + losses == 0 else wins / (wins + losses),
            pnl_usd=_money(float(s["pnl"])),
            fees_usd=_money(float(money["fees"])),
            staked_usd=_money(float(money["staked"])),
            rejections=rejections,
        )

    # --- helpers ---

    @staticmethod
    def _require_run(cur: sqlite3.Cursor, run_id: str) -> None:
        if cur.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise UnknownRecordError(f"unknown run {run_id!r}")


def _intent(r: sqlite3.Row) -> OrderIntent:
    return OrderIntent(
        order_id=str(r["order_id"]),
        account=str(r["account"]),
        run_id=str(r["run_id"]),
        decision_id=str(r["decision_id"]),
        market_id=str(r["market_id"]),
        side=r["side"],
        stake_usd=float(r["stake_usd"]),
        worst_price=float(r["worst_price"]),
        created_ts=float(r["created_ts"]),
        status=str(r["status"]),
    )


def _settled(r: sqlite3.Row) -> SettledPosition:
    return SettledPosition(
        order_id=str(r["order_id"]),
        account=str(r["account"]),
        market_id=str(r["market_id"]),
        side=r["side"],
        outcome=r["outcome"],
        outcome_verified=bool(r["outcome_verified"]),
        shares=float(r["shares"]),
        notional_usd=float(r["notional_usd"]),
        fee_usd=float(r["fee_usd"]),
        payout_usd=float(r["payout_usd"]),
        pnl_usd=float(r["pnl_usd"]),
        settled_ts=float(r["settled_ts"]),
    )


def _signed(r: sqlite3.Row) -> SignedOrderRecord:
    return SignedOrderRecord(
        order_id=str(r["order_id"]),
        venue=str(r["venue"]),
        order_hash=str(r["order_hash"]),
        token_id=str(r["token_id"]),
        order_type=str(r["order_type"]),
        amount_usd=str(r["amount_usd"]),
        worst_price=str(r["worst_price"]),
        maker_amount=str(r["maker_amount"]),
        taker_amount=str(r["taker_amount"]),
        signed_ts=float(r["signed_ts"]),
        venue_status=None if r["venue_status"] is None else str(r["venue_status"]),
        trade_ids=tuple(str(t) for t in json.loads(r["trade_ids_json"])),
    )
