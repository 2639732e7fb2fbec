"""Runs and decisions: what was run with which configuration, and every decision's full record."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from core.clock import SystemClock
from tools.journal.base import JournalBase
from tools.journal.errors import DuplicateRecordError, UnknownRecordError

# Config keys that look like credentials.  The caller promises to pass none; this is a second
# line of defence so a secret never reaches a file that is copied around for analysis.
_SECRET_KEY_PARTS = ("key", "secret", "passphrase", "token")


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


class Runs(JournalBase):
    """The ``runs`` and ``decisions`` tables."""

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
