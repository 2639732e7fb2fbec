"""Decisions with what they were based on (``updown decisions``, the dashboard's decision list).

Newest first, paged by keyset: each row carries its ``key`` (as_of, decision_id) and the next
page is ``before=rows[-1].key``, so page N costs the same as page 1 however many decisions
the journal holds (the schema-v3 indexes ``decisions_as_of`` and ``decisions_market_as_of``
deliver the order; only the rows of the page have their record's fields extracted).
``at_or_before`` picks the decision nearest at or before a time.

The fields shown come from the decision's full record (written by the runner): the agent's
P(up) (``fair_value.fair_up``), the book's Up mid when it was recorded
(``fair_value.market_up_mid``), the trader's confidence and every guard rule that fired
(rejects and shrinks, with their detail).  A record without them leaves them None / empty;
the rejecting rules then still come from the journal's own column.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, NamedTuple

from tools.journal.reads.common import check_page, rows


class DecisionKey(NamedTuple):
    """Where a page ends: pass it as ``before`` for the next (older) page."""

    as_of: float
    decision_id: str


@dataclass(frozen=True, slots=True)
class FiredRule:
    rule: str
    # 'reject' or 'shrink'.
    action: str
    detail: str


@dataclass(frozen=True, slots=True)
class DecisionRow:
    decision_id: str
    run_id: str
    market_id: str
    as_of: float
    decided_by: str
    # up | down | hold: what the trader decided, before the guard.
    decision: str
    confidence: int | None
    fair_up: float | None
    market_mid: float | None
    approved: bool
    # approved | rejected (a rule refused it) | hold (nothing was proposed).
    verdict: str
    rules_fired: tuple[FiredRule, ...]

    @property
    def key(self) -> DecisionKey:
        return DecisionKey(self.as_of, self.decision_id)


def decisions(
    conn: sqlite3.Connection,
    *,
    market_id: str | None = None,
    run_id: str | None = None,
    at_or_before: float | None = None,
    before: DecisionKey | None = None,
    limit: int = 50,
) -> list[DecisionRow]:
    """Decisions matching every given filter, newest first (ties by decision id, descending)."""
    check_page(limit)
    where: list[str] = []
    args: list[object] = []
    if market_id is not None:
        where.append("d.market_id = ?")
        args.append(market_id)
    if run_id is not None:
        where.append("d.run_id = ?")
        args.append(run_id)
    if at_or_before is not None:
        where.append("d.as_of <= ?")
        args.append(at_or_before)
    if before is not None:
        # A row value: SQLite walks the (as_of, decision_id) index from this key down.
        where.append("(d.as_of, d.decision_id) < (?, ?)")
        args.extend((before.as_of, before.decision_id))
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    found = rows(
        conn,
        "SELECT d.decision_id, d.run_id, d.market_id, d.as_of, d.decided_by, d.decision,"
        " d.approved, d.rules_fired_json,"
        " json_extract(d.record_json, '$.fair_value.fair_up') AS fair_up,"
        " json_extract(d.record_json, '$.fair_value.market_up_mid') AS market_mid,"
        " json_extract(d.record_json, '$.trader.analysis.confidence') AS confidence,"
        " json_extract(d.record_json, '$.verdict.rules_fired') AS verdict_rules"
        f" FROM decisions d{clause}"
        " ORDER BY d.as_of DESC, d.decision_id DESC LIMIT ?",
        [*args, limit],
    )
    return [_decision(r) for r in found]


def decision_at(conn: sqlite3.Connection, ts: float, *, market_id: str | None = None
                ) -> DecisionRow | None:
    """The decision nearest at or before ``ts`` (of one market if given); None before any."""
    found = decisions(conn, market_id=market_id, at_or_before=ts, limit=1)
    return found[0] if found else None


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _fired(verdict_rules: Any, rejected_json: str) -> tuple[FiredRule, ...]:
    if isinstance(verdict_rules, str):
        parsed = json.loads(verdict_rules)
        if isinstance(parsed, list):
            return tuple(
                FiredRule(rule=str(h.get("rule")), action=str(h.get("action", "reject")),
                          detail=str(h.get("detail", "")))
                for h in parsed if isinstance(h, dict)
            )
    # No verdict in the record: the journal's column holds the rejecting rules.
    return tuple(FiredRule(rule=str(rule), action="reject", detail="")
                 for rule in json.loads(rejected_json))


def _decision(r: sqlite3.Row) -> DecisionRow:
    approved = bool(r["approved"])
    fired = _fired(r["verdict_rules"], str(r["rules_fired_json"]))
    decision = str(r["decision"])
    if approved:
        verdict = "approved"
    elif any(f.action == "reject" for f in fired) or decision != "hold":
        verdict = "rejected"
    else:
        verdict = "hold"
    confidence = r["confidence"]
    return DecisionRow(
        decision_id=str(r["decision_id"]),
        run_id=str(r["run_id"]),
        market_id=str(r["market_id"]),
        as_of=float(r["as_of"]),
        decided_by=str(r["decided_by"]),
        decision=decision,
        confidence=confidence if isinstance(confidence, int) else None,
        fair_up=_number(r["fair_up"]),
        market_mid=_number(r["market_mid"]),
        approved=approved,
        verdict=verdict,
        rules_fired=fired,
    )
