"""``updown eval --trader llm`` and ``updown run`` end to end against a loopback OpenAI server.

The commands run as subprocesses with the real ChatOpenAI pointed at the loopback server by
OPENAI_BASE_URL and a dummy OPENAI_API_KEY.  The server answers like a cautious analyst that
reads the prompt's numbers (``fakeopenai.rule_trader``/``rule_risk``): some answers are up or
down, most are hold; nothing on our side knows them in advance.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from evalkit import embedded_slice
from fakeopenai import FakeOpenAI, serve

from feeds.recorded import EMBEDDED_DATASET_DIR

pytestmark = pytest.mark.server
UPDOWN = Path(sys.executable).with_name("updown")
DUMMY_KEY = "sk-loopback-dummy-key-000000000000"


@pytest.fixture
def rule_server() -> Iterator[FakeOpenAI]:
    with serve() as srv:
        srv.scenario = "rule"
        yield srv


def _env(srv: FakeOpenAI, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "LANGSMITH_", "LANGCHAIN_"))}
    env.update(OPENAI_BASE_URL=srv.base_url, OPENAI_API_KEY=DUMMY_KEY,
               JOURNAL_PATH=str(tmp_path / "updown.db"),
               AI_DECISION_LOG_PATH=str(tmp_path / "decisions.jsonl"),
               STOP_FILE=str(tmp_path / "STOP"))
    return env


def _updown(srv: FakeOpenAI, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # cwd is the test's directory: no .env of the developer's is read.
    done = subprocess.run([str(UPDOWN), *args], cwd=tmp_path, env=_env(srv, tmp_path),
                          capture_output=True, text=True, timeout=1500, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.timeout(1800)
def test_eval_llm_on_embedded_dataset_counts_calls_tokens_and_dollars(
        rule_server: FakeOpenAI, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    _updown(rule_server, tmp_path, "eval", "--dataset", str(EMBEDDED_DATASET_DIR),
            "--trader", "llm", "--json", str(out), "--no-progress")
    summary = json.loads(out.read_text())
    cost = summary["cost"]
    requests = rule_server.count()
    assert summary["trader"] == "llm"
    # Every request the server saw is counted, and nothing else.
    assert cost["llm_calls"] == requests > 0
    assert cost["prompt_tokens"] > 0
    assert cost["completion_tokens"] > 0
    assert cost["usd"] == pytest.approx(
        (cost["prompt_tokens"] * 0.15 + cost["completion_tokens"] * 0.60) / 1e6, abs=1e-6)
    assert cost["llm_calls_per_window"] == pytest.approx(requests / summary["windows"])
    # The budget: at most 2 calls per decision point on average (and never more than 2).
    assert cost["llm_calls_per_decision"] == pytest.approx(requests / summary["decisions"])
    assert cost["llm_calls_per_decision"] <= 2.0
    assert cost["max_llm_calls_per_decision"] <= 2
    # Realistic answers: the model both traded and held; no answer was invalid.
    trader = Counter(a["decision"] for a in rule_server.answers if a["schema"] == "AIAnalysis")
    assert trader["hold"] > 0
    assert trader["up"] + trader["down"] > 0
    assert len(rule_server.answers) == requests
    print(f"\neval --trader llm: {summary['decisions']} decisions, {summary['windows']} windows;"
          f" cost {json.dumps(cost)}; trader answers {dict(trader)}")


def test_run_replay_journals_llm_usage_per_decision(rule_server: FakeOpenAI,
                                                    tmp_path: Path) -> None:
    data = embedded_slice(tmp_path, 3)
    journal = tmp_path / "run.db"
    _updown(rule_server, tmp_path, "run", "--replay", str(data), "--journal", str(journal),
            "--no-view")
    requests = rule_server.count()
    assert requests > 0
    con = sqlite3.connect(journal)
    try:
        # Tokens and dollars per window, straight from the journal's decision records.
        rows = con.execute("""
            SELECT market_id,
                   SUM(COALESCE(json_extract(record_json, '$.risk.llm_usage.calls'), 0)
                     + COALESCE(json_extract(record_json, '$.trader.llm_usage.calls'), 0)),
                   SUM(COALESCE(json_extract(record_json, '$.risk.llm_usage.prompt_tokens'), 0)
                     + COALESCE(json_extract(record_json, '$.trader.llm_usage.prompt_tokens'),
                                0)),
                   SUM(COALESCE(json_extract(record_json, '$.risk.llm_usage.usd'), 0)
                     + COALESCE(json_extract(record_json, '$.trader.llm_usage.usd'), 0))
            FROM decisions GROUP BY market_id""").fetchall()
    finally:
        con.close()
    assert len(rows) == 3
    assert sum(r[1] for r in rows) == requests
    assert all(r[2] > 0 and r[3] > 0 for r in rows if r[1] > 0)
    print(f"\nupdown run journal, per window (market, calls, prompt tokens, usd): {rows}")
