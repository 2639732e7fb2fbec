"""LangSmith tracing end to end: the real client posts to a loopback ingest endpoint.

A decision that reaches ``execute`` runs in a fresh process with LANGSMITH_TRACING on and
LANGSMITH_ENDPOINT pointed at the loopback server; the model is the real ChatOpenAI against
the loopback OpenAI server.  A key-shaped canary is planted in a prompt-visible string (the
market id).  What LangSmith received must hold: the execute run's inputs and outputs are
absent, the execution report appears in no run, the canary and every configured secret are
nowhere in any request (only masks), and the runs' metadata (``configurable``) has no secret.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from evalkit import embedded_slice
from fakelangsmith import FakeLangSmith
from fakelangsmith import serve as serve_langsmith
from fakeopenai import FakeOpenAI
from fakeopenai import serve as serve_openai

from agent.tracing import HIDDEN
from core.logs import MASK
from core.snapshot import MarketSnapshot
from tools.fair_value import estimate_fair_value

pytestmark = pytest.mark.server
HERE = Path(__file__).resolve().parent
SUPPORT = HERE.parent / "support"
CANARY = "sk-canary-0f3e9b2c7a4d4e1f9a8b7c6d"
OPENAI_KEY = "sk-loopback-trace-key-1234567890abcdef"
LANGSMITH_KEY = "lsv2_pt_loopbackcanary0123456789abcdef"
TAVILY_KEY = "tvly-loopbackcanary0123456789"


@pytest.fixture
def servers() -> Iterator[tuple[FakeLangSmith, FakeOpenAI]]:
    with serve_langsmith() as ls, serve_openai() as oa:
        yield ls, oa


def test_execute_is_hidden_and_key_shaped_strings_are_masked(
        servers: tuple[FakeLangSmith, FakeOpenAI], tradable_snapshot: MarketSnapshot,
        tmp_path: Path) -> None:
    ls, oa = servers
    fair = estimate_fair_value(tradable_snapshot)
    assert fair is not None
    assert fair.best_side() is not None
    oa.trader_answer = {"decision": fair.best_side(), "confidence": 85, "risk_level": "low",
                        "reasoning": "Edge after fees on the best side."}
    oa.risk_answer = {"risk_level": "low", "factors": []}
    snap = tradable_snapshot.model_copy(
        update={"market_id": f"{tradable_snapshot.market_id} {CANARY}"})
    snap_file = tmp_path / "snapshot.json"
    snap_file.write_text(snap.model_dump_json())
    private_key = Account.create().key.hex()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "LANGSMITH_", "LANGCHAIN_"))}
    env.update(LANGSMITH_TRACING="true", LANGSMITH_ENDPOINT=ls.url,
               LANGSMITH_API_KEY=LANGSMITH_KEY, LANGSMITH_PROJECT="updown-loopback",
               OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=oa.base_url,
               TAVILY_API_KEY=TAVILY_KEY, POLYMARKET_PRIVATE_KEY=private_key,
               PYTHONPATH=os.pathsep.join([str(SUPPORT), str(SUPPORT.parents[1]),
                                           env.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(SUPPORT / "traced_decision.py"), str(snap_file)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"installed": True, "decision": fair.best_side(), "execution": "filled"}
    # The canary was prompt-visible: the model server received it.
    assert CANARY in json.dumps(oa.requests)

    raw = b"".join(ls.raw)
    assert raw, "nothing was traced"
    for secret in (CANARY, OPENAI_KEY, LANGSMITH_KEY, TAVILY_KEY,
                   private_key.removeprefix("0x")):
        assert secret.encode() not in raw, secret[:12]

    execute = ls.by_name("execute")
    assert execute, f"no execute run among {sorted({r.get('name') for r in ls.runs.values()})}"
    for run in execute:
        for part in ("inputs", "outputs"):
            assert run.get(part) in (None, {}, {"hidden": HIDDEN}), (part, run.get(part))
    # The execution report is in no run's inputs or outputs (the graph's output included).
    assert b'"order_id"' not in raw
    assert b'"avg_price"' not in raw
    # The model run traced the prompt, with the canary masked.
    llm_runs = [r for r in ls.runs.values() if r.get("run_type") == "llm"]
    assert llm_runs
    assert any(MASK in json.dumps(r.get("inputs")) for r in llm_runs)
    # The guard's verdict is still traced (only the execution path is hidden).
    assert ls.by_name("guard")
    assert any("verdict" in json.dumps(r.get("outputs")) for r in ls.by_name("guard"))
    # configurable reaches metadata: it holds the thread id and no secret.
    metas = [((r.get("extra") or {}).get("metadata") or {}) for r in ls.runs.values()]
    assert any(m.get("thread_id") == "traced-decision" for m in metas)


def test_updown_commands_trace_through_the_redacting_client(
        servers: tuple[FakeLangSmith, FakeOpenAI], tmp_path: Path) -> None:
    ls, _ = servers
    data = embedded_slice(tmp_path, 3)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "LANGSMITH_", "LANGCHAIN_"))}
    env.update(LANGSMITH_TRACING="true", LANGSMITH_ENDPOINT=ls.url,
               LANGSMITH_API_KEY=LANGSMITH_KEY, LANGSMITH_PROJECT="updown-loopback",
               AI_DECISION_LOG_PATH=str(tmp_path / "d.jsonl"), STOP_FILE=str(tmp_path / "STOP"))
    done = subprocess.run([str(Path(sys.executable).with_name("updown")), "run", "--replay",
                           str(data), "--journal", str(tmp_path / "j.db"), "--no-view"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    execute = ls.by_name("execute")
    assert execute, "the replay made no trade: nothing on the execution path to check"
    for run in execute:
        assert run.get("inputs") in (None, {}, {"hidden": HIDDEN})
        assert run.get("outputs") in (None, {}, {"hidden": HIDDEN})
    raw = b"".join(ls.raw)
    assert b'"order_id"' not in raw
    assert LANGSMITH_KEY.encode() not in raw
