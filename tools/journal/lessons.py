"""Lessons from settled windows: one short, bounded note per traded window, in SQLite.

The table lives in the journal's SQLite file (``CREATE TABLE IF NOT EXISTS``, its own
connection) but belongs to this module, outside the versioned schema of ``tools.journal.schema``
(a file without lessons is still a valid journal).  One lesson per
(account, window); writing it again is a no-op, so a restart that settles again changes
nothing.  Reads return only lessons settled at or before the asking decision's time, so a
replay never sees a lesson from its own future.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS lessons (
    account            TEXT NOT NULL,
    market_id          TEXT NOT NULL,
    settled_ts         REAL NOT NULL,
    tag                TEXT NOT NULL,
    lesson             TEXT NOT NULL CHECK (length(lesson) <= 200),
    written_by         TEXT NOT NULL,
    prompt_tokens      INTEGER NOT NULL DEFAULT 0,
    completion_tokens  INTEGER NOT NULL DEFAULT 0,
    usd                REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (account, market_id)
);
CREATE INDEX IF NOT EXISTS lessons_account_ts ON lessons(account, settled_ts);
"""


@dataclass(frozen=True, slots=True)
class StoredLesson:
    account: str
    market_id: str
    settled_ts: float
    tag: str
    lesson: str
    written_by: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0


class LessonStore:
    """The lessons table of one SQLite file (or ``":memory:"``); thread-safe."""

    def __init__(self, path: str | Path) -> None:
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False,
                                     timeout=10.0)
        self._lock = threading.Lock()
        try:
            self._conn.executescript(SCHEMA)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def add(self, lesson: StoredLesson) -> bool:
        """Store the window's lesson; False when the window already has one (kept as is)."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO lessons (account, market_id, settled_ts, tag, lesson,"
                " written_by, prompt_tokens, completion_tokens, usd)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (lesson.account, lesson.market_id, lesson.settled_ts, lesson.tag,
                 lesson.lesson, lesson.written_by, lesson.prompt_tokens,
                 lesson.completion_tokens, lesson.usd))
            return cur.rowcount == 1

    def recent(self, account: str, *, before_ts: float, n: int) -> list[StoredLesson]:
        """The account's last ``n`` lessons settled at or before ``before_ts``, newest first."""
        if n <= 0:
            return []
        with self._lock:
            rows = self._conn.execute(
                "SELECT account, market_id, settled_ts, tag, lesson, written_by, prompt_tokens,"
                " completion_tokens, usd FROM lessons WHERE account = ? AND settled_ts <= ?"
                " ORDER BY settled_ts DESC, market_id DESC LIMIT ?",
                (account, before_ts, n)).fetchall()
        return [StoredLesson(*row) for row in rows]
