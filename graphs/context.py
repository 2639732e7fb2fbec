"""Per-run context injected into every node: the things that differ between Studio, the
live runner, and the evals (broker, clock, journal, models, limits).

Every field is typed by the protocol or record it holds.  ``None`` means "the default", and
the defaults that come from settings (limits, appetite, the LLM switch, the STOP file) are
resolved once, when the context is built: by the caller, or by LangGraph for a Studio run.
Two defaults stay lazy because building them costs I/O: the chat model and the sentiment
provider (``default_chat_model``, ``default_sentiment``), built once per process on first use.
No secrets here: model clients hold their own keys and limits come from settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

from langchain_core.language_models import BaseChatModel
from pydantic import ConfigDict
from pydantic.json_schema import SkipJsonSchema

from core.clock import Clock
from core.guard import GuardLimits
from core.records import AggregatedSentiment, LedgerView
from core.settings import default_settings
from tools import llm
from tools.broker import Broker
from tools.journal import Journal
from tools.paper_broker import PaperBroker


@runtime_checkable
class SentimentProvider(Protocol):
    """Scores the text known at ``as_of``; ``blocking`` ones fetch over the network."""

    def score(self, as_of: float) -> AggregatedSentiment: ...


@runtime_checkable
class LessonSource(Protocol):
    """Short notes from earlier settled windows (``tools.reflection.Reflector``)."""

    def lessons_for(self, account: str, as_of: float) -> list[tuple[str, str]]: ...


@dataclass
class Context:
    # Objects a caller injects (brokers, journals, models) are SkipJsonSchema: Studio's context
    # form shows only the plain fields (account, appetite, LLM switch, STOP file).
    __pydantic_config__ = ConfigDict(arbitrary_types_allowed=True)

    # Ledger namespace in the journal: one entry per window is enforced per account.
    account: str = "studio-paper"
    # None: GuardLimits.from_settings (what a Studio run gets).
    limits: SkipJsonSchema[GuardLimits | None] = None
    # RISK_LEVEL appetite (low/medium/high) for sizing; None: from settings.
    risk_appetite: str | None = None
    # None: nothing is journaled and the guard's ledger is empty.
    journal: SkipJsonSchema[Journal | None] = None
    # The journal's run this decision belongs to.
    run_id: str | None = None
    # None: a paper broker filling against the snapshot's book.
    broker: SkipJsonSchema[Broker | None] = None
    # None: the snapshot's as_of is "now" (pure replay semantics).
    clock: SkipJsonSchema[Clock | None] = None
    # None: the live sources whose keys are set, else the embedded recorded corpus.
    sentiment: SkipJsonSchema[SentimentProvider | None] = None
    # Chat models; None with use_llm means "build from settings".
    trader_model: SkipJsonSchema[BaseChatModel | None] = None
    risk_model: SkipJsonSchema[BaseChatModel | None] = None
    # None: use the LLM when OPENAI_API_KEY is set; False forces the deterministic policy.
    use_llm: bool | None = None
    # Kill-switch file; None: settings.stop_file.
    stop_file: str | None = None
    # Notes from earlier settled windows offered to the trader; None offers none.
    lessons: SkipJsonSchema[LessonSource | None] = None
    # When set, the guard judges by this ledger instead of reading the journal: a re-run of a
    # logged decision (``updown explain``) uses the ledger recorded in its verdict.
    ledger: SkipJsonSchema[LedgerView | None] = None
    # EXECUTION_STYLE: "taker" sends the approved order from the execute node; a maker style
    # leaves the order to the runner's maker desk (tools.maker), which owns resting orders.
    execution_style: str = "taker"

    def __post_init__(self) -> None:
        if (self.limits is None or self.risk_appetite is None or self.use_llm is None
                or self.stop_file is None):
            settings = default_settings()
            if self.limits is None:
                self.limits = GuardLimits.from_settings(settings)
            if self.risk_appetite is None:
                self.risk_appetite = settings.risk_level
            if self.use_llm is None:
                self.use_llm = settings.llm_enabled
            if self.stop_file is None:
                self.stop_file = str(settings.stop_file)
        if self.broker is None:
            self.broker = PaperBroker()

    # Resolved in __post_init__; these accessors only narrow the types for the nodes.
    @property
    def guard_limits(self) -> GuardLimits:
        assert self.limits is not None
        return self.limits

    @property
    def kill_switch(self) -> Path:
        assert self.stop_file is not None
        return Path(self.stop_file)

    @property
    def order_broker(self) -> Broker:
        assert self.broker is not None
        return self.broker

    @property
    def appetite(self) -> str:
        assert self.risk_appetite is not None
        return self.risk_appetite

    def now(self, as_of: float) -> float:
        """The decision's "now": the injected clock, else the snapshot's own time."""
        return float(self.clock.now()) if self.clock is not None else as_of

    def journaling(self) -> tuple[Journal | None, str]:
        """The journal the guard reads and the order path writes, and the run it writes under.
        May open a file: call it off the event loop."""
        return self.journal, self.run_id or ""


STUDIO_ACCOUNT = "studio-paper"


@dataclass
class StudioContext(Context):
    """What a Studio (``langgraph dev``) run gets when it names nothing: paper trading under the
    ``studio-paper`` account, journaled at JOURNAL_PATH in one run per server process, so the
    one-entry-per-window rule holds across Studio runs as it does in ``updown run``."""

    account: str = STUDIO_ACCOUNT

    def journaling(self) -> tuple[Journal | None, str]:
        if self.journal is not None:
            return super().journaling()
        return studio_journal()


@lru_cache(maxsize=1)
def studio_journal() -> tuple[Journal, str]:
    """The Studio server's journal and run, opened once per process on first use."""
    settings = default_settings()
    journal = Journal(settings.journal_path)
    run_id = journal.start_run(account=STUDIO_ACCOUNT, mode="paper", dataset=None,
                               config={"command": "langgraph dev"})
    return journal, run_id


@lru_cache(maxsize=1)
def default_chat_model() -> BaseChatModel:
    """The settings' chat model, built once per process (Studio, live runs)."""
    model: BaseChatModel = llm.make_chat_model(default_settings())
    return model


@lru_cache(maxsize=1)
def default_sentiment() -> SentimentProvider:
    """Studio and live: the live sources whose keys are set (with the recorded corpus beside
    them when "recorded" is listed); with no live source configured, the recorded corpus."""
    from tools.sentiment_live import default_provider

    return default_provider(default_settings())
