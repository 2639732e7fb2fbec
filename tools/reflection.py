"""Learning from outcomes: a short, bounded lesson per traded window after it settles.

``Reflector.on_settled`` is the hook the runners call with a ``SettlementEvent`` (the replay
runner after each settlement; the live runner the same way).  For each settled position it
gathers the entry's numbers from the journal (the order intent and its decision record), asks
the model for a ``Lesson`` (at most 200 characters and a tag) from those numbers only, and
falls back to a deterministic lesson when there is no model or the model abstains.  Lessons
are stored one per window (``tools.journal.lessons``); ``lessons_for`` offers the last few, settled
before the decision time, to the trader prompt as untrusted, bounded notes.

Reflection is off unless REFLECTION_ENABLED: evals never build a reflector, so their runs
stay reproducible.  A lesson cannot change anything but the text of the trader's prompt:
sizing, limits and mode are code the model never reaches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.settings import Settings
from tools import llm
from tools.journal.lessons import LessonStore, StoredLesson

LessonTag = Literal["edge", "timing", "volatility", "reference", "sentiment", "liquidity",
                    "other"]
RULE = "rule"
# Entries this close to the end are "late": the window had little time to move.
LATE_ENTRY_S = 240.0
THIN_EDGE = 0.05


class Lesson(BaseModel):
    """The reflection model's structured output: one short lesson and its tag."""

    model_config = ConfigDict(frozen=True)

    lesson: str = Field(min_length=1, max_length=llm.LESSON_MAX_CHARS)
    tag: LessonTag


@dataclass(frozen=True, slots=True)
class TradeFacts:
    """The numbers of one settled entry: from the settlement and the entry's decision."""

    account: str
    market_id: str
    side: str
    outcome: str
    outcome_verified: bool
    entry_price: float | None
    stake_usd: float
    fee_usd: float
    pnl_usd: float
    settled_ts: float
    fair_p: float | None = None
    edge: float | None = None
    confidence: int | None = None
    time_left_s: float | None = None
    risk_level: str | None = None


def _get(record: Mapping[str, Any] | None, *path: str) -> Any:
    node: Any = record
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _float(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def facts_for(position: Any, journal: Any) -> TradeFacts:
    """A ``tools.journal.SettledPosition`` with its entry's numbers from the journal (the
    decision record is missing when decisions were not journaled: those stay None)."""
    intent = journal.intent(position.order_id) if journal is not None else None
    record = journal.decision_record(intent.decision_id) if intent is not None else None
    side = position.side
    as_of, end = _float(_get(record, "snapshot", "as_of")), _float(
        _get(record, "snapshot", "window_end"))
    confidence = _get(record, "trader", "analysis", "confidence")
    return TradeFacts(
        account=position.account, market_id=position.market_id, side=side,
        outcome=position.outcome, outcome_verified=bool(position.outcome_verified),
        entry_price=position.notional_usd / position.shares if position.shares > 0 else None,
        stake_usd=position.notional_usd, fee_usd=position.fee_usd, pnl_usd=position.pnl_usd,
        settled_ts=position.settled_ts,
        fair_p=_float(_get(record, "trader", "proposal", "fair_p")),
        edge=_float(_get(record, "fair_value", f"edge_after_fees_{side}")),
        confidence=confidence if isinstance(confidence, int) else None,
        time_left_s=None if as_of is None or end is None else end - as_of,
        risk_level=_get(record, "risk", "risk_level"),
    )


def _n(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def prompt_fields(f: TradeFacts) -> dict[str, str]:
    return {
        "market_id": llm.bounded_text(f.market_id, 80), "side": f.side,
        "entry_price": _n(f.entry_price, ".3f"), "stake_usd": f"{f.stake_usd:.2f}",
        "fee_usd": f"{f.fee_usd:.4f}", "fair_p": _n(f.fair_p, ".3f"),
        "edge": _n(f.edge, "+.4f"),
        "confidence": "n/a" if f.confidence is None else str(f.confidence),
        "time_left_s": _n(f.time_left_s, ".0f"),
        "risk_level": f.risk_level if f.risk_level in ("low", "medium", "high") else "n/a",
        "outcome": f.outcome, "outcome_verified": str(f.outcome_verified).lower(),
        "pnl_usd": f"{f.pnl_usd:+.2f}",
    }


def rule_lesson(f: TradeFacts) -> Lesson:
    """The deterministic lesson: what the numbers say, no model needed."""
    won = f.outcome == f.side
    at = f"{f.side} at {_n(f.entry_price, '.2f')}, fair {_n(f.fair_p, '.2f')}, edge " \
         f"{_n(f.edge, '+.3f')}, {_n(f.time_left_s, '.0f')}s left"
    if won:
        text, tag = f"Won {at}: the edge held.", "edge"
    elif f.time_left_s is not None and f.time_left_s < LATE_ENTRY_S:
        text, tag = f"Lost {at}: late entries leave no time to recover.", "timing"
    elif f.edge is not None and f.edge < THIN_EDGE:
        text, tag = f"Lost {at}: a thin edge did not cover the risk.", "edge"
    else:
        text, tag = f"Lost {at}: the price crossed the price to beat.", "volatility"
    return Lesson(lesson=text[:llm.LESSON_MAX_CHARS], tag=tag)  # type: ignore[arg-type]


class Reflector:
    """Writes a lesson per settled entry and offers the recent ones to the trader."""

    def __init__(self, store: LessonStore, *, model: Any = None, lessons: int = 3) -> None:
        self.store = store
        self.model = model
        self.lessons = lessons

    async def reflect(self, facts: TradeFacts) -> StoredLesson:
        """The lesson for one entry (model first, rule when it is absent or abstains)."""
        lesson, by, usage = rule_lesson(facts), RULE, llm.LLMCall(None, None)
        if self.model is not None:
            usage = await llm.call_structured(
                self.model, Lesson, llm.render("reflection", prompt_fields(facts)))
            if isinstance(usage.value, Lesson):
                text = llm.bounded_text(usage.value.lesson)
                if text:
                    lesson = Lesson(lesson=text, tag=usage.value.tag)
                    by = f"llm:{getattr(self.model, 'model_name', 'llm')}"
        return StoredLesson(
            account=facts.account, market_id=facts.market_id, settled_ts=facts.settled_ts,
            tag=lesson.tag, lesson=lesson.lesson, written_by=by,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            usd=usage.usd(str(getattr(self.model, "model_name", ""))))

    async def on_settled(self, event: Any, *, journal: Any) -> list[StoredLesson]:
        """The runner's settlement hook: one lesson per settled position of the window
        (a window without an entry, or with an unknown outcome, teaches nothing here)."""
        written: list[StoredLesson] = []
        positions: Sequence[Any] = getattr(event, "positions", ())
        for position in positions:
            stored = await self.reflect(facts_for(position, journal))
            if self.store.add(stored):
                written.append(stored)
        return written

    def lessons_for(self, account: str, as_of: float) -> list[tuple[str, str]]:
        """(tag, lesson) of the account's last lessons settled at or before ``as_of``."""
        return [(s.tag, s.lesson)
                for s in self.store.recent(account, before_ts=as_of, n=self.lessons)]

    def close(self) -> None:
        self.store.close()


def reflector_for(settings: Settings, journal_path: str | Path, *, model: Any = None
                  ) -> Reflector | None:
    """The reflector `updown run` uses: None unless REFLECTION_ENABLED.  Lessons go to the
    journal's SQLite file; the model is the configured one when OPENAI_API_KEY is set."""
    if not settings.reflection_enabled:
        return None
    if model is None and settings.llm_enabled:
        model = llm.make_chat_model(settings)
    return Reflector(LessonStore(journal_path), model=model, lessons=settings.reflection_lessons)
