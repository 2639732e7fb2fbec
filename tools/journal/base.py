"""The journal's connection: one SQLite file, its transactions, errors and money rounding.

Every entity part of the journal (runs, orders, settlements, ledger) derives from
``JournalBase`` and uses ``_tx`` / ``_read``; nothing else opens a transaction.

Durability: WAL mode with ``synchronous=FULL``; every write method runs in one
``BEGIN IMMEDIATE`` transaction, so a crash leaves either all of a call's rows or none, and the
checks a method makes before writing cannot be raced by another process on the same file.

Money: stored as floats rounded to 1e-6 (USDC has 6 decimals).  Rounding every stored amount
keeps sums stable without the cost of Decimal columns, which SQLite does not have anyway.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

from tools.journal.errors import JournalError, UnknownRecordError
from tools.journal.schema import migrate

_MONEY_DP = 6


def money(x: float) -> float:
    return round(x, _MONEY_DP)


class JournalBase:
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
            migrate(self._conn, self._tx)
        except BaseException:
            self._conn.close()
            raise

    # --- lifecycle ---

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one read snapshot, for the read models in ``tools.journal.reads``.

        Held under the journal's lock, so keep the block short (one page of a query).
        """
        with self._read():
            yield self._conn

    @property
    def schema_version(self) -> int:
        with self._read() as cur:
            return int(cur.execute("PRAGMA user_version").fetchone()[0])

    @staticmethod
    def _require_run(cur: sqlite3.Cursor, run_id: str) -> None:
        if cur.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise UnknownRecordError(f"unknown run {run_id!r}")
