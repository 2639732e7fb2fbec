"""Stand-ins for ``updown explain``'s re-run: nothing is fetched, asked or sent.

``FixedSentiment`` gives a live record's logged sentiment back (live sources cannot be fetched
again as they were), ``RefusingBroker`` refuses every order, and ``ReplayedModel`` answers each
model question with the logged structured output, offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel

from core import policy
from core.records import (
    AggregatedSentiment,
    AIAnalysis,
    ExecutionReport,
    FairValueEstimate,
    IndicatorSignal,
    Side,
)
from core.snapshot import MarketSnapshot
from tools.llm import RiskReview


@dataclass(frozen=True, slots=True)
class FixedSentiment:
    """A live record's logged sentiment, given back for its decision time."""

    record: AggregatedSentiment

    def score(self, as_of: float) -> AggregatedSentiment:
        return self.record


class OrderRefused(RuntimeError):
    """explain reached the order path: it never places an order."""


class RefusingBroker:
    """The re-run's broker: refuses every order (the graph is stopped before execute anyway)."""

    name = "explain"

    def place_market_buy(self, *, order_id: str, snapshot: MarketSnapshot, side: Side,
                         stake_usd: float, worst_price: float) -> ExecutionReport:
        raise OrderRefused("updown explain never places an order")


class UnexpectedModelCall(Exception):
    """The re-run asked a model where the logged decision did not: the decision differs."""


@dataclass(frozen=True, slots=True)
class LoggedAnswer:
    """One model call as the record shows it: the parsed answer, or the note it failed with."""

    value: BaseModel | None
    note: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ReplayedModel:
    """A stand-in chat model answering each question with the logged answer, offline.

    It is shaped like what ``tools.llm.call_structured`` uses of a LangChain chat model
    (``with_structured_output(...).ainvoke``); a failure is given back as the failure that
    produces the logged note (timeout, 429, refusal, invalid output, error class)."""

    def __init__(self, model_name: str, answers: Mapping[str, LoggedAnswer]) -> None:
        self.model_name = model_name
        self.answers = dict(answers)
        self.calls = 0

    def with_structured_output(self, schema: type[BaseModel], **_: object) -> _Replayed:
        return _Replayed(self, self.answers.get(schema.__name__))


class _Replayed:
    def __init__(self, owner: ReplayedModel, answer: LoggedAnswer | None) -> None:
        self.owner, self.answer = owner, answer

    async def ainvoke(self, prompt: str) -> dict[str, Any]:
        self.owner.calls += 1
        answer = self.answer
        if answer is None:
            raise UnexpectedModelCall("the logged decision asked no model here")
        raw = SimpleNamespace(usage_metadata={"input_tokens": answer.prompt_tokens,
                                              "output_tokens": answer.completion_tokens},
                              additional_kwargs={})
        if answer.value is not None:
            return {"raw": raw, "parsed": answer.value, "parsing_error": None}
        note = answer.note or ""
        if note == "llm refused":
            raw.additional_kwargs = {"refusal": "refused (replayed)"}
            return {"raw": raw, "parsed": None, "parsing_error": None}
        if note.startswith("llm output invalid: "):
            name = note.removeprefix("llm output invalid: ")
            error = None if name == "empty" else type(name, (Exception,), {})()
            return {"raw": raw, "parsed": None, "parsing_error": error}
        if note == "llm call timed out":
            raise TimeoutError(note)
        if note == "llm rate limited (429)":
            import openai

            # Only its class is read (``tools.llm._failure_note``): no HTTP response to fake.
            raise openai.RateLimitError.__new__(openai.RateLimitError)
        if note.startswith("llm call failed: "):
            raise type(note.removeprefix("llm call failed: "), (Exception,), {})()
        raise UnexpectedModelCall(f"cannot replay the logged note {note!r}")


def _usage_tokens(usage: Mapping[str, Any] | None) -> tuple[int, int]:
    if not usage:
        return 0, 0
    return int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))


def replayed_model(record: Mapping[str, Any], snapshot: MarketSnapshot,
                   appetite: str, max_position_usd: float) -> ReplayedModel | None:
    """The stand-in for a record a model took part in; None when no model was asked."""
    risk, trader = record["risk"], record["trader"]
    answers: dict[str, LoggedAnswer] = {}
    names = [r["decided_by"] for r in (trader, risk) if r["decided_by"].startswith("llm:")]
    if risk.get("llm_usage") is not None:
        pt, ct = _usage_tokens(risk["llm_usage"])
        factors = list(risk["factors"])
        if risk["decided_by"].startswith("llm:"):
            # The node appends the model's factors to the deterministic assessment's.
            assessed = policy.assess_risk(
                snapshot, IndicatorSignal.model_validate(record["technical"]),
                FairValueEstimate.model_validate(record["fair_value"]),
                AggregatedSentiment.model_validate(record["sentiment"]),
                appetite=appetite, max_position_usd=max_position_usd)
            answers["RiskReview"] = LoggedAnswer(
                RiskReview(risk_level=risk["risk_level"],
                           factors=factors[len(assessed.factors):]), None, pt, ct)
        else:  # the call failed: its note is the last factor
            answers["RiskReview"] = LoggedAnswer(None, factors[-1] if factors else None, pt, ct)
    if trader.get("llm_usage") is not None:
        pt, ct = _usage_tokens(trader["llm_usage"])
        if trader.get("note") is None:
            answers["AIAnalysis"] = LoggedAnswer(
                AIAnalysis.model_validate(trader["analysis"]), None, pt, ct)
        else:
            answers["AIAnalysis"] = LoggedAnswer(None, trader["note"], pt, ct)
    if not answers and not names:
        return None
    return ReplayedModel(names[0].removeprefix("llm:") if names else "replayed", answers)
