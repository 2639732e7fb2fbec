"""One traced decision in a fresh process (LangSmith reads its environment once per process).

``python tests/traced_decision.py SNAPSHOT.json`` with LANGSMITH_* and OPENAI_* set by the
caller: installs the redacting tracing, runs the whole graph once on the snapshot with the
real ChatOpenAI (settings from the environment), flushes the traces and prints the outcome
as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from agent.tracing import flush_tracing, install_redacting_tracing
from core.guard import GuardLimits
from core.settings import load_settings
from core.snapshot import MarketSnapshot
from graphs.context import Context
from graphs.graph import graph
from tools import llm


def main(snapshot_path: str) -> None:
    snap = MarketSnapshot.model_validate_json(Path(snapshot_path).read_text())
    installed = install_redacting_tracing()
    model = llm.make_chat_model(load_settings(env_file=None))
    with tempfile.TemporaryDirectory() as private:
        ctx = Context(use_llm=True, trader_model=model, risk_model=model,
                      limits=GuardLimits(require_verified_price_to_beat=False),
                      stop_file=str(Path(private) / "STOP"))
        out = asyncio.run(graph.ainvoke(
            {"snapshot": snap}, context=ctx,
            config={"configurable": {"thread_id": "traced-decision"}}))
    flush_tracing()
    execution = out.get("execution")
    print(json.dumps({"installed": installed, "decision": out["trader"].analysis.decision,
                      "execution": execution.status if execution else None}))


if __name__ == "__main__":
    main(sys.argv[1])
