"""Per-run context injected into every node: the things that differ between Studio, the
live runner, and the evals (broker, clock, journal, models, limits).  No secrets here: the
model clients hold their own keys and limits come from settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Context:
    # Ledger namespace in the journal: one entry per window is enforced per account.
    account: str = "studio-paper"
    # GuardLimits; None means "from settings" (what Studio gets).
    limits: Any = None
    # RISK_LEVEL appetite (low/medium/high) and the position cap used for sizing.
    risk_appetite: str | None = None
    # tools.journal.Journal; None in Studio (nothing is journaled there).
    journal: Any = None
    # The journal's run this decision belongs to.
    run_id: str | None = None
    # tools.broker.Broker; None means a paper broker filling against the snapshot's book.
    broker: Any = None
    # core.clock.Clock; None means the snapshot's as_of is "now" (pure replay semantics).
    clock: Any = None
    # Object with score(as_of) -> AggregatedSentiment; None means the embedded recorded corpus.
    sentiment: Any = None
    # Chat models; None with use_llm means "build from settings".
    trader_model: Any = None
    risk_model: Any = None
    # None: use the LLM when OPENAI_API_KEY is set; False forces the deterministic policy.
    use_llm: bool | None = None
    # Kill-switch file; None means settings.stop_file.
    stop_file: str | None = None
    # Object with lessons_for(account, as_of) -> [(tag, lesson)] (tools.reflection.Reflector):
    # notes from earlier settled windows offered to the trader; None offers none.
    lessons: Any = None
